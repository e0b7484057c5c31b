"""``python -m embeddings FOLDER --model SPEC --layers L1,L2 --out DIR``: see
:mod:`explain.cli.embeddings` (every command line lives in :mod:`explain.cli`)."""

from __future__ import annotations

import sys

from explain.cli.embeddings import main

if __name__ == "__main__":
    sys.exit(main())
