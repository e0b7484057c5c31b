"""``python -m explain.evaluation --model SPEC --data DATA --out DIR``: see
:mod:`explain.cli.evaluate`."""

from __future__ import annotations

import sys

from ..cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
