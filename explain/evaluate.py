"""``python -m explain.evaluate --model SPEC --data DATA --out DIR``: the evaluation command line
(the same as ``python -m explain.evaluation``; see :mod:`explain.cli.evaluate`).

``explain.evaluate`` is also the library function :func:`explain.evaluation.evaluate`. Python binds
an imported submodule onto its package under the same name, which would replace the function; so
when this file is imported rather than run, it stands in ``sys.modules`` for the function itself
and the package keeps the function whatever is imported first.
"""

from __future__ import annotations

import sys

from .evaluation import evaluate as _evaluate

if __name__ == "__main__":
    from .cli.evaluate import main

    sys.exit(main())
else:
    sys.modules[__name__] = _evaluate  # type: ignore[assignment]
