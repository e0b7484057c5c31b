"""A self-contained HTML presentation of explanations: one slide per image, images embedded,
no external files or scripts, opens offline in any browser (arrow keys or buttons to move)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .render import to_png


@dataclass
class Slide:
    """One image and what to say about it.

    Attributes:
        title: short heading, e.g. the file name or the predicted class.
        sentence: the plain-language explanation.
        overlay: ``(H, W, 3)`` uint8 picture shown large (the map over the image).
        original: ``(H, W, 3)`` uint8 picture shown small beside it (optional).
        facts: short "label: value" lines shown under the picture (optional).
    """

    title: str
    sentence: str
    overlay: np.ndarray
    original: np.ndarray | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)


def _data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(to_png(image)).decode("ascii")


_STYLE = """
body{margin:0;font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
background:#f6f7f9;color:#1f2328}
header{padding:18px 32px;background:#fff;border-bottom:1px solid #e3e5e8;display:flex;
justify-content:space-between;align-items:center}
header h1{font-size:20px;margin:0}
.slide{display:none;padding:28px 32px;max-width:1100px;margin:0 auto}
.slide.active{display:block}
.slide h2{margin:0 0 14px 0;font-size:26px}
.pics{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.pics img{image-rendering:auto;border-radius:10px;box-shadow:0 2px 10px rgba(0,0,0,.12);
background:#fff}
.big{width:min(620px,90vw)}
.small{width:min(240px,40vw)}
.sentence{font-size:22px;line-height:1.45;margin:22px 0 10px 0;max-width:900px}
.facts{color:#57606a;font-size:15px}
nav{display:flex;gap:10px;align-items:center}
button{font-size:16px;padding:6px 16px;border-radius:8px;border:1px solid #c9ced4;
background:#fff;cursor:pointer}
"""

_SCRIPT = """
let i=0;const s=document.querySelectorAll('.slide');const c=document.getElementById('count');
function show(k){i=(k+s.length)%s.length;s.forEach((e,j)=>e.classList.toggle('active',j===i));
c.textContent=(i+1)+' / '+s.length;}
document.getElementById('prev').onclick=()=>show(i-1);
document.getElementById('next').onclick=()=>show(i+1);
document.addEventListener('keydown',e=>{if(e.key==='ArrowRight')show(i+1);
if(e.key==='ArrowLeft')show(i-1);});show(0);
"""


def presentation_html(slides: Sequence[Slide], title: str = "What the model looked at") -> str:
    """The whole presentation as one HTML document (a string)."""
    if not slides:
        raise ValueError("A presentation needs at least one slide.")
    parts = []
    for number, slide in enumerate(slides, start=1):
        pics = f'<img class="big" alt="explanation {number}" src="{_data_uri(slide.overlay)}">'
        if slide.original is not None:
            pics += (
                f'<img class="small" alt="original image {number}" '
                f'src="{_data_uri(slide.original)}">'
            )
        facts = "<br>".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in slide.facts)
        parts.append(
            f'<section class="slide"><h2>{html.escape(slide.title)}</h2>'
            f'<div class="pics">{pics}</div>'
            f'<p class="sentence">{html.escape(slide.sentence)}</p>'
            f'<p class="facts">{facts}</p></section>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>{html.escape(title)}</h1><nav><button id="prev">&larr; Previous</button>'
        f'<span id="count"></span><button id="next">Next &rarr;</button></nav></header>'
        + "".join(parts)
        + f"<script>{_SCRIPT}</script></body></html>"
    )
