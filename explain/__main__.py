"""``python -m explain IMAGE... --model SPEC --out DIR``: see :mod:`explain.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
