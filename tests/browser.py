"""Debian's headless Chromium, driven by Selenium through Debian's chromedriver.

Used to render the HTML report the way a person opening it would see it. The browser runs
with no network proxy and the page forbids every fetch itself, so nothing leaves the machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not shutil.which(path):
            return f"{path} is missing: apt-get install {package} (scripts/bootstrap does)"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--no-proxy-server",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 0) -> None:
    """A PNG of the page: its top ``height`` pixels, or all of it (up to 6000) when 0."""
    with chromium(width, height or 900) as driver:
        driver.get(page.resolve().as_uri())
        if not height:
            full = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(int(full) + 40, 6000))
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
