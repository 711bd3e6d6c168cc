"""The base of every error the library raises on purpose.

Each one's message names the input at fault and, where there is one, the fix, so a caller
can show it as it is. ``except MultiarchError`` catches what the harness reports; anything
else is a defect in the harness (or a third-party library's own error) and stays loud.
"""

from __future__ import annotations


class MultiarchError(Exception):
    """An input, an engine or a registry the harness could not work with, said in one message."""
