"""A self-contained HTML presentation of explanations: one slide per image, images embedded,
no external files or scripts, opens offline in any browser (arrow keys or buttons to move)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .narrative import legend_words
from .render import colormap_css, to_png


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


def legend_html(cmap: str = "jet") -> str:
    """A colour legend for maps drawn with ``cmap``: a bar from low to high, with what each
    end means in words under it ("red = mattered most"). Inline styles only: it works in any
    page."""
    low, high = legend_words(cmap)
    return (
        '<div class="gce-legend" style="max-width:420px;font-size:14px;color:#444">'
        f'<div style="height:14px;border-radius:7px;background:{colormap_css(cmap)}"></div>'
        '<div style="display:flex;justify-content:space-between;gap:12px;margin-top:3px">'
        f"<span>{html.escape(low)}</span><span><b>{html.escape(high)}</b></span></div></div>"
    )


_STYLE = """
body{margin:0;font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
background:#f6f7f9;color:#1f2328}
header{padding:18px 32px;background:#fff;border-bottom:1px solid #e3e5e8;display:flex;
justify-content:space-between;align-items:center}
header h1{font-size:20px;margin:0}
header .meta{color:#57606a;font-size:14px;margin-top:2px}
.slide{display:none;padding:16px 32px;max-width:1100px;margin:0 auto}
.slide.active{display:block}
.slide h2{margin:0 0 10px 0;font-size:26px}
.pics{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.pics img{image-rendering:auto;border-radius:10px;box-shadow:0 2px 10px rgba(0,0,0,.12);
background:#fff}
.big{height:min(52vh,620px);max-width:90vw;object-fit:contain}
.small{height:min(22vh,240px);max-width:40vw;object-fit:contain}
.sentence{font-size:22px;line-height:1.4;margin:14px 0 8px 0;max-width:900px}
.facts{color:#57606a;font-size:15px}
.gce-legend{margin:10px 0 0 0}
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
if(e.key==='ArrowLeft')show(i-1);});show(START);
"""


def presentation_html(
    slides: Sequence[Slide],
    title: str = "What the model looked at",
    *,
    model: str | None = None,
    date: str | None = None,
    cmap: str | None = "jet",
    start: int = 0,
) -> str:
    """The whole presentation as one HTML document (a string).

    Args:
        slides: one per image, in order.
        title: the heading of every page.
        model: the model's name, shown under the title.
        date: when the maps were made (any text), shown under the title.
        cmap: the colour map of the overlays: a legend of it is shown on every slide
            (``None``: no legend).
        start: the slide shown first (0-based), e.g. the one on screen when exporting.
    """
    if not slides:
        raise ValueError("A presentation needs at least one slide.")
    legend = legend_html(cmap) if cmap else ""
    meta = " · ".join(html.escape(x) for x in (f"Model: {model}" if model else "", date) if x)
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
            f"{legend}"
            f'<p class="sentence">{html.escape(slide.sentence)}</p>'
            f'<p class="facts">{facts}</p></section>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><div><h1>{html.escape(title)}</h1><div class="meta">{meta}</div></div>'
        '<nav><button id="prev">&larr; Previous</button>'
        '<span id="count"></span><button id="next">Next &rarr;</button></nav></header>'
        + "".join(parts)
        + f"<script>{_SCRIPT.replace('START', str(int(start) % len(slides)))}</script>"
        + "</body></html>"
    )
