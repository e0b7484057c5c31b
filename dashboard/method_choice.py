"""Which explanation methods a page offers for the model in use: the attention methods
(attention rollout, Chefer's relevancy, LeGrad) only for vision transformers, whose blocks
attend over patch tokens; every other method for every model (one that still cannot run on a
model, CAM without a pooled linear head say, says why in the page)."""

from __future__ import annotations

from collections.abc import Sequence

from explain import METHOD_INFO, ModelHandle
from explain.cams.attention_pass import candidate_blocks

#: Method kinds that read a transformer's attention.
ATTENTION = "attention"


def is_transformer(handle: ModelHandle) -> bool:
    """Whether the model has transformer blocks over patch tokens (attention methods apply)."""
    return bool(candidate_blocks(handle))


def offered(handle: ModelHandle, kinds: Sequence[str] | None = None) -> list[str]:
    """The methods to offer for ``handle`` (registry order), of ``kinds`` only when given."""
    attention = is_transformer(handle)
    return [
        name
        for name, info in METHOD_INFO.items()
        if (kinds is None or info.kind in kinds) and (info.kind != ATTENTION or attention)
    ]


def not_offered_note(handle: ModelHandle) -> str | None:
    """One line on the methods left out for this model, or None when none is."""
    if is_transformer(handle):
        return None
    titles = [info.title for info in METHOD_INFO.values() if info.kind == ATTENTION]
    if not titles:
        return None
    listed = ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else titles[0]
    return (
        f"{listed} read a vision transformer's attention; {handle.name} has no attention "
        "blocks, so they are not offered for it."
    )
