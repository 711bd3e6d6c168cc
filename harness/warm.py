"""Read registry images' layers into the cache in a process of its own.

    python -m harness.warm --cache DIR [--insecure] [--max-layer-bytes N] REF@DIGEST ...

The audit of a layer is Python work: run in a thread of the test process, it would hold
the interpreter lock the tests need to drive their containers. A run starts this beside
itself instead (:meth:`harness.Harness.prepare_images`), for each platform's manifest in
the order the run tests them: the blobs and layer indexes land in the cache, and the test
process reads them from there. A layer being read here is locked in the cache
(:meth:`harness.layers.IndexCache.reading`), so the test process waits for it rather than
reading it twice. Nothing here is a verdict: a failure is met again, and reported, by the
test process; this process only says it on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from .errors import MultiarchError
from .reference import Reference
from .registry import Registry
from .sources import RegistrySource

#: How much lower than the run this process asks to be scheduled (nice(1)).
NICENESS = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--max-layer-bytes", type=int)
    parser.add_argument("manifests", nargs="*", metavar="REF@DIGEST")
    args = parser.parse_args(argv)
    # Below the tests and the engine: the CPU they leave is what this takes, and each layer
    # it has read is there before its platform's checks ask (the first, at once).
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    registry = Registry(args.cache, insecure=args.insecure)
    failed = 0
    for pinned in args.manifests:
        try:
            ref = Reference.parse(pinned)
            name, _, digest = pinned.rpartition("@")
            limit = {"layer_limit": args.max_layer_bytes} if args.max_layer_bytes else {}
            RegistrySource(name, ref, registry, **limit).filesystem(digest)
        except (MultiarchError, OSError, ValueError) as exc:
            failed += 1
            print(f"harness.warm: {pinned}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
