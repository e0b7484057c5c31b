"""What a metric declares about itself, so that a table, a chart or a dashboard can show any
metric without special cases (as in Quantus): its name and title, what it measures, its
category, its direction ("higher" or "lower" is better), its unit and how to print it.

One type for the whole project: the evaluation metrics of explanations
(:data:`explain.evaluation.METRICS`) and the layer metrics of embeddings
(:data:`embeddings.METRICS`) are both :class:`MetricInfo`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

DIRECTIONS: tuple[str, ...] = ("higher", "lower")
#: The arrow shown beside a metric: which way is better.
ARROWS: dict[str, str] = {"higher": "↑", "lower": "↓"}
#: Units of stored values: a percentage (0-100), a share (0-1, shown as a percentage), or a
#: plain number (an area under a probability curve, a correlation, ...).
UNITS: tuple[str, ...] = ("%", "fraction", "")


@dataclass(frozen=True)
class MetricInfo:
    """Metadata of one metric.

    Attributes:
        name: registry key, also the column or ``metric`` value of result tables.
        title: short display name.
        category: what kind of quality it measures (each registry has its own list).
        direction: ``"higher"`` or ``"lower"``: which values are better.
        description: what the number means, in plain words (one or two sentences).
        unit: of the stored values: ``"%"`` (0-100), ``"fraction"`` (a share 0-1, shown as a
            percentage) or ``""`` (a plain number).
        decimals: digits after the point when shown (in the display unit).
        value_range: the values the metric can take (stored unit).
        unit_label: the unit in words as shown after the title (``"% of images"``); default
            ``"%"`` for percentages and fractions, nothing for plain numbers.
        reference: where the metric comes from.
        group: evaluation only: which computation produces it (metrics of one group share
            model calls).
        needs_masks: evaluation only: computed only where object masks (or boxes) exist.
        has_curve: evaluation only: per-image curves are kept.
    """

    name: str
    title: str
    category: str
    direction: str
    description: str
    unit: str = ""
    decimals: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    unit_label: str = ""
    reference: str = ""
    group: str = ""
    needs_masks: bool = False
    has_curve: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of its values (same as ``value_range``)."""
        return self.value_range

    @property
    def arrow(self) -> str:
        """``"↑"`` when higher is better, ``"↓"`` when lower is."""
        return ARROWS[self.direction]

    @property
    def scale(self) -> float:
        """Factor from stored to shown values: 100 for a fraction, else 1."""
        return 100.0 if self.unit == "fraction" else 1.0

    @property
    def display_unit(self) -> str:
        """The unit written after the title: :attr:`unit_label`, else ``"%"`` or nothing."""
        return self.unit_label or ("%" if self.unit in ("%", "fraction") else "")

    @property
    def column_title(self) -> str:
        """``"Average Drop (%) ↓"``: the title, its unit and which way is better."""
        unit = f" ({self.display_unit})" if self.display_unit else ""
        return f"{self.title}{unit} {self.arrow}"

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than value ``b`` for this metric."""
        return a > b if self.higher_is_better else a < b

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (NaN ignored; NaN when there is none)."""
        finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not finite:
            return math.nan
        return max(finite) if self.higher_is_better else min(finite)

    def format(self, value: float | None, *, signed: bool = False, unit: bool = True) -> str:
        """``value`` (stored unit) as shown: scaled, rounded to :attr:`decimals`, with ``"%"``
        after percentages when ``unit``; ``"–"`` for a missing value.

        Examples: Average Drop 12.345 -> ``"12.3%"``; pointing game 0.8125 -> ``"81.2%"``;
        deletion AUC 0.12345 -> ``"0.123"``.
        """
        if value is None or not math.isfinite(float(value)):
            return "–"
        shown = float(value) * self.scale
        text = f"{shown:+.{self.decimals}f}" if signed else f"{shown:.{self.decimals}f}"
        return text + ("%" if unit and self.unit in ("%", "fraction") else "")
