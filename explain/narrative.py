"""Plain words for a result: one or two sentences a non-specialist can read.

"The model is 92 % sure this is a tabby cat. It looked mostly at the upper left of the image,
highlighted in red." Where it looked comes from the map itself (where its mass and peak lie),
not from any knowledge of object parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The colour in which each colour map shows its highest values, for the sentence.
HIGH_COLOUR = {
    "jet": "red",
    "turbo": "red",
    "inferno": "bright yellow",
    "viridis": "yellow",
    "magma": "light yellow",
    "plasma": "yellow",
    "hot": "white",
    "gray": "white",
}

#: The colour in which each colour map shows its lowest values.
LOW_COLOUR = {
    "jet": "dark blue",
    "turbo": "dark blue",
    "inferno": "black",
    "viridis": "dark purple",
    "magma": "black",
    "plasma": "dark blue",
    "hot": "black",
    "gray": "black",
}

_REGIONS = (
    ("upper left", "top", "upper right"),
    ("left side", "centre", "right side"),
    ("lower left", "bottom", "lower right"),
)


@dataclass(frozen=True)
class Focus:
    """Where a map puts its weight.

    Attributes:
        region: "upper left", "top", ..., "centre", ..., "lower right" (a 3 x 3 grid).
        share: fraction of the map's mass inside that cell.
        spread: fraction of the image where the map is at least half its maximum.
        peak: (row, column) of the maximum, as fractions of height and width.
    """

    region: str
    share: float
    spread: float
    peak: tuple[float, float]


def focus_of(heat: np.ndarray) -> Focus | None:
    """Summarise a ``(H, W)`` map in [0, 1]; ``None`` for an empty (all-zero) map."""
    m = np.clip(np.nan_to_num(np.asarray(heat, np.float64)), 0, None)
    total = m.sum()
    if total <= 0:
        return None
    h, w = m.shape
    rows = np.array_split(np.arange(h), 3)
    cols = np.array_split(np.arange(w), 3)
    cells = np.array([[m[np.ix_(r, c)].sum() for c in cols] for r in rows]) / total
    r, c = np.unravel_index(int(cells.argmax()), cells.shape)
    name = _REGIONS[r][c]
    pr, pc = np.unravel_index(int(m.argmax()), m.shape)
    spread = float((m >= 0.5 * m.max()).mean())
    return Focus(name, float(cells[r, c]), spread, (pr / max(h - 1, 1), pc / max(w - 1, 1)))


def legend_words(cmap: str = "jet") -> tuple[str, str]:
    """What the two ends of a colour map mean, in words:
    ``("dark blue = mattered least", "red = mattered most")`` for ``"jet"``."""
    low = LOW_COLOUR.get(cmap, "the darkest colour")
    high = HIGH_COLOUR.get(cmap, "the brightest colour")
    return f"{low} = mattered least", f"{high} = mattered most"


def _percent(probability: float) -> str:
    pct = probability * 100
    return f"{pct:.0f} %" if pct >= 1 else "less than 1 %"


def verdict(label: str, probability: float) -> str:
    """The first sentence: what the model thinks and how sure it is."""
    thing, pct = _article(label), _percent(probability)
    if probability >= 0.95:
        return f"The model is very sure ({pct}) that this is {thing}."
    if probability >= 0.7:
        return f"The model is {pct} sure that this is {thing}."
    if probability >= 0.4:
        return f"The model thinks this is {thing}, but is only {pct} sure."
    return f"The model is unsure; its best guess is {thing}, at only {pct}."


def describe(
    label: str,
    probability: float,
    heat: np.ndarray,
    cmap: str = "jet",
    second: tuple[str, float] | None = None,
) -> str:
    """One or two plain sentences about a prediction and its map.

    Args:
        label: the class explained.
        probability: the model's probability for it.
        heat: ``(H, W)`` map in [0, 1].
        cmap: the colour map the picture uses (to name the highlight colour).
        second: the runner-up ``(label, probability)``, mentioned when close.
    """
    sentence = verdict(label, probability)
    if second is not None and second[1] >= 0.5 * probability and second[1] >= 0.1:
        sentence += f" Its second guess is {_article(second[0])} ({_percent(second[1])})."
    focus = focus_of(heat)
    colour = HIGH_COLOUR.get(cmap, "the brightest colour")
    if focus is None:
        return sentence + " No part of the image stood out for this answer."
    if focus.spread > 0.5:
        where = "It used most of the image rather than one spot"
    elif focus.share >= 0.4:
        where = f"It looked mostly at the {focus.region} of the image"
    else:
        where = f"It looked at several places, most of all the {focus.region}"
    return f"{sentence} {where}, highlighted in {colour}."


def _article(label: str) -> str:
    text = label.replace("_", " ").strip()
    if not text:
        return "this class"
    if text[0].isupper() and not text.isupper() and " " not in text:
        return text  # a proper name
    return ("an " if text[0].lower() in "aeiou" else "a ") + text
