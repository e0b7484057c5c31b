"""Evaluations and bias findings as a notebook shows them: styled tables (best value of each
column starred, verdicts coloured), the verdicts in words, and the mean curves (Plotly).

The tables and figures are those of :mod:`explain.evaluation.figures`; this module only lays
them out.
"""

from __future__ import annotations

import html
from typing import Any

from .page import View, heading, notes_list, sentence_list


def evaluation_view(result: Any, subset: str = "all") -> View:
    """An :class:`~explain.evaluation.EvaluationResult`: the leaderboard (methods x metrics in
    display units, best starred), the paired-test verdicts, and one curve figure per metric
    with curves (deletion, insertion, ROAD, sanity checks).

    Args:
        result: what :func:`~explain.evaluation.evaluate` returned.
        subset: the images the tables are about (``"all"``, ``"small objects"``).
    """
    from ..evaluation import figures
    from ..evaluation.base import METRICS

    if subset not in result.subsets:
        from ..errors import ExplainError

        raise ExplainError(
            f"This result has no subset {subset!r}.", hint=f"use one of {result.subsets}."
        )
    p = result.params
    board = figures.leaderboard_table(result, subset)
    title = f"Evaluation of {p.get('model', 'a model')}"
    data, count = str(p.get("data", "")), str(p.get("images", "?"))
    detail = data if count in data else f"{data}, {count} images"  # a description may count
    detail += f", subset {subset}" if subset != "all" else ""
    parts: list[Any] = []
    top = heading(title, detail)
    if board.empty:
        top += "<p>Nothing was measured.</p>"
    else:
        styled = figures.styled_leaderboard(board, titles=True)
        top += styled.to_html() + (
            f'<div style="font-size: 0.85em">Mean over the images; {figures.BEST_MARK} the best '
            "value of each column (arrows: which way is better).</div>"
        )
    verdicts = figures.verdict_table(result, subset)
    if not verdicts.empty:
        top += heading("Against the baselines", "paired test over images")
        top += figures.styled_verdicts(verdicts).hide(axis="index").to_html()
    top += notes_list(list(result.notes))
    parts.append(top)
    with_curves = {metric for (_, _, metric) in result.curves}
    parts += [figures.curves_figure(result, m) for m in METRICS if m in with_curves]
    text = [f"{title} ({detail})"]
    if not board.empty:
        text.append(board.round(3).to_string())
    text += result.sentences(subset)
    return View(parts, "\n".join(text))


def bias_view(found: Any) -> View:
    """A :class:`~explain.evaluation.BiasStudy` (its table in words and percent, and one
    verdict per model) or a :class:`~explain.evaluation.BiasReport` (its verdict and numbers)."""
    from ..evaluation import figures

    if hasattr(found, "verdicts"):  # a study of several models
        table = figures.bias_table(found)
        formats = {name: fmt for name, (fmt, _) in figures.BIAS_COLUMNS.items()}
        styled = table.style.format({k: (lambda v, f=f: f % v) for k, f in formats.items()})
        styled = styled.hide(axis="index")
        models = list(found.verdicts)
        names = [figures.BIAS_MODELS.get(m, m) for m in models]
        sentences = [found.verdicts[m] for m in models]
        body = heading("Does the model rely on the marker?")
        body += sentence_list(sentences, [f"{a} ({m})" for a, m in zip(names, models, strict=True)])
        body += styled.to_html()
        text = [f"{m}: {s}" for m, s in zip(models, sentences, strict=True)]
        return View([body], "\n".join([*text, table.to_string(index=False)]))
    body = heading(found.verdict, f"{found.method} at {found.layer}")
    body += f"<p>{html.escape(found.details)}</p>"
    return View([body], f"{found.verdict}\n{found.details}")
