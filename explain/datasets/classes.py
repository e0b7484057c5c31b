"""Class names as a dataset gives them -> a model's class indices.

A name matches a model label case-insensitively, then with ``_``, ``-`` and runs of spaces read
as one space; a WordNet id (``n01440764``, as ImageNet folders are named) maps through the
ImageNet-1k order when the model has 1,000 classes; a whole number names the class of that
index. Used for folder classes (evaluation and embeddings alike) and for annotated objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ExplainError
from .annotations import ObjectAnnotation


def loose_name(name: str | None) -> str:
    """``"Golden_Retriever"`` -> ``"golden retriever"``: lower case, ``_``/``-`` as spaces."""
    return " ".join((name or "").lower().replace("_", " ").replace("-", " ").split())


class LabelMap:
    """Finds a model's class index for a dataset class name or an annotated object.

    An object's index is taken as is when the model has it (and agrees with a name given
    beside it); a name goes through :meth:`by_name`. What found no class is counted for
    :meth:`notes`.

    Args:
        model: a model handle (its ``labels``) or the model's class names.
    """

    def __init__(self, model: Any):
        self.labels = [str(label) for label in getattr(model, "labels", model)]
        self.exact: dict[str, int] = {}
        self.loose: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            self.exact.setdefault(label.lower(), i)
            self.loose.setdefault(loose_name(label), i)
        self.wnids: dict[str, int] | None = None
        self.unknown: dict[str, int] = defaultdict(int)
        self.conflicts = 0

    def _wnid(self, text: str) -> int | None:
        if not (len(text) == 9 and text[0] == "n" and text[1:].isdigit()):
            return None
        if self.wnids is None:
            self.wnids = {}
            if len(self.labels) == 1000:
                from ..builtin.imagenet import imagenet_wnids

                try:
                    self.wnids = {w: i for i, w in enumerate(imagenet_wnids())}
                except ExplainError:  # timm (which ships the list) is missing
                    self.wnids = {}
        return self.wnids.get(text)

    def by_name(self, name: str) -> int | None:
        """The class index a name stands for, or None."""
        text = name.strip()
        key = text.lower()
        if key in self.exact:
            return self.exact[key]
        found = self.loose.get(loose_name(text))
        if found is None:
            found = self._wnid(text)
        if found is None and text.isdigit() and int(text) < len(self.labels):
            found = int(text)
        return found

    def classes(self, names: Sequence[str]) -> np.ndarray:
        """``(len(names),)`` int64: the model's class of each dataset class name, -1 where
        none."""
        found = [self.by_name(name) for name in names]
        return np.array([-1 if f is None else f for f in found], dtype=np.int64)

    def __call__(self, obj: ObjectAnnotation) -> int:
        """The model's class index of ``obj``, or -1 (remembered for :meth:`notes`)."""
        named = self.by_name(obj.name) if obj.name else None
        if isinstance(obj.label, int):
            in_range = 0 <= obj.label < len(self.labels)
            if in_range and (
                named is None or loose_name(self.labels[obj.label]) == loose_name(obj.name)
            ):
                return obj.label
            if named is not None:
                self.conflicts += 1
                return named
            self.unknown[f"index {obj.label}"] += 1
            return -1
        if isinstance(obj.label, str):
            found = self.by_name(obj.label)
            if found is not None:
                return found
            self.unknown[obj.label] += 1
        return -1

    def notes(self) -> list[str]:
        """What found no class, and the disagreements, in sentences for a report."""
        out = []
        if self.unknown:
            shown = ", ".join(repr(k) for k in list(self.unknown)[:5])
            more = " ..." if len(self.unknown) > 5 else ""
            out.append(
                f"{sum(self.unknown.values())} object(s) of {len(self.unknown)} class(es) the "
                f"model does not have ({shown}{more}): their images have no known label."
            )
        if self.conflicts:
            out.append(
                f"{self.conflicts} object(s) had a class index that disagrees with their class "
                "name: the name was used."
            )
        return out


def match_classes(label_names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """For each dataset class, the model's class of the same name (see :class:`LabelMap`),
    else -1.

    Returns:
        ``(len(label_names),)`` int64.
    """
    return LabelMap(class_names).classes(label_names)
