"""Which explanation methods a page offers for the model in use: the attention methods
(attention rollout, Chefer's relevancy, LeGrad) only for vision transformers, whose blocks
attend over patch tokens; a method the library rules out for the model beforehand
(:func:`explain.applicable_methods`: CAM on a CLIP model, say) is left out with its reason;
every other method is offered (one that still cannot run, CAM without a pooled linear head
say, says why in the page)."""

from __future__ import annotations

from collections.abc import Sequence

from explain import METHOD_INFO, ModelHandle, applicable_methods
from explain.cams.attention_pass import candidate_blocks

#: Method kinds that read a transformer's attention.
ATTENTION = "attention"


def is_transformer(handle: ModelHandle) -> bool:
    """Whether the model has transformer blocks over patch tokens (attention methods apply)."""
    return bool(candidate_blocks(handle))


def offered(handle: ModelHandle, kinds: Sequence[str] | None = None) -> list[str]:
    """The methods to offer for ``handle`` (registry order), of ``kinds`` only when given."""
    attention = is_transformer(handle)
    ruled_out = _ruled_out(handle)
    return [
        name
        for name, info in METHOD_INFO.items()
        if (kinds is None or info.kind in kinds)
        and (info.kind != ATTENTION or attention)
        and name not in ruled_out
    ]


def _ruled_out(handle: ModelHandle) -> dict[str, str]:
    """``name -> why not`` for the non-attention methods the library rules out for this model
    (the attention methods are told apart by :func:`is_transformer`)."""
    names = [n for n, info in METHOD_INFO.items() if info.kind != ATTENTION]
    return applicable_methods(handle, names)[1]


def not_offered_note(handle: ModelHandle) -> str | None:
    """One line on the methods left out for this model, or None when none is."""
    lines = [
        f"{METHOD_INFO[name].title} is not offered: {why.partition(chr(10))[0]}"
        for name, why in _ruled_out(handle).items()
    ]
    titles = [info.title for info in METHOD_INFO.values() if info.kind == ATTENTION]
    if titles and not is_transformer(handle):
        listed = ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else titles[0]
        lines.append(
            f"{listed} read a vision transformer's attention; {handle.name} has no attention "
            "blocks, so they are not offered for it."
        )
    return " ".join(lines) or None
