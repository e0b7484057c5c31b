"""``python -m explain.cli COMMAND ...``: see :mod:`explain.cli`."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
