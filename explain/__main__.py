"""``python -m explain IMAGE... --model SPEC --out DIR``: see :mod:`explain.cli.explain`."""

from __future__ import annotations

import sys

from .cli.explain import main

if __name__ == "__main__":
    sys.exit(main())
