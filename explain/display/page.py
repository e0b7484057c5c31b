"""What a notebook shows for a result: a :class:`View` (HTML pieces, Plotly figures, a PNG and
a plain-text form), and the HTML helpers the views are made of.

Only Pillow and (for figures) Plotly: no matplotlib. Pictures are embedded in the HTML as
base64 data, so a view needs no file and no network; a saved page inlines plotly.js once.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Inline styles (notebook front ends may drop <style> blocks of untrusted outputs).
FONT = "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif"
MUTED = "color: #57606a"


def is_figure(part: Any) -> bool:
    """A Plotly figure (checked without importing Plotly)."""
    return hasattr(part, "to_html") and hasattr(part, "to_plotly_json")


@dataclass
class View:
    """A result as a notebook shows it.

    Attributes:
        parts: HTML fragments (``str``) and Plotly figures, in the order shown.
        text: the plain-text form (``repr``, and what :func:`~explain.display.show` prints
            outside a notebook).
        png: one picture of the whole view (a grid of overlays), or None.
    """

    parts: list[Any]
    text: str
    png: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return self.text

    @property
    def figures(self) -> list[Any]:
        """The Plotly figures among the parts."""
        return [part for part in self.parts if is_figure(part)]

    def html(self, plotlyjs: bool | str = True) -> str:
        """One HTML fragment; ``plotlyjs`` as Plotly's ``include_plotlyjs`` for the first figure
        (``True``: plotly.js inlined once, works offline)."""
        out, included = [], False
        for part in self.parts:
            if is_figure(part):
                out.append(
                    part.to_html(
                        full_html=False,
                        include_plotlyjs=False if included else plotlyjs,
                        config={"displaylogo": False},
                    )
                )
                included = True
            else:
                out.append(part)
        return f'<div style="{FONT}">' + "\n".join(out) + "</div>"

    def save(self, path: str | Path, title: str = "Grad-CAM Explorer") -> Path:
        """A standalone HTML page of the view (works offline); returns its path."""
        path = Path(path)
        page = (
            f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head>\n<body style='margin: 24px'>{self.html()}</body></html>\n"
        )
        path.write_text(page, encoding="utf-8")
        return path

    # -- Jupyter ----------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        return self.html()

    def _repr_png_(self) -> bytes | None:
        return self.png

    def _ipython_display_(self) -> None:
        """Each part as its own output: HTML as it is, figures through Plotly's renderer."""
        from IPython.display import display

        first = True
        for part in self.parts:
            if is_figure(part):
                display(part)
                continue
            bundle = {"text/html": f'<div style="{FONT}">{part}</div>'}
            if first:
                bundle["text/plain"] = self.text
                if self.png is not None:
                    bundle["image/png"] = self.png
            display(bundle, raw=True)
            first = False


# -- HTML pieces ------------------------------------------------------------------------------
def data_uri(picture: np.ndarray, fmt: str = "JPEG") -> str:
    """An ``(H, W, 3)`` uint8 picture as a ``data:`` URI (JPEG quality 90 without chroma
    subsampling, or PNG)."""
    buf = io.BytesIO()
    image = Image.fromarray(np.asarray(picture, dtype=np.uint8))
    if fmt.upper() == "PNG":
        image.save(buf, format="PNG", optimize=True)
    else:
        image.save(buf, format="JPEG", quality=90, subsampling=0)  # 4:4:4: small tiles stay sharp
    kind = "png" if fmt.upper() == "PNG" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heading(text: str, detail: str = "") -> str:
    """A title line, with a muted detail after it."""
    tail = (
        f' <span style="{MUTED}; font-weight: 400">{html.escape(detail)}</span>' if detail else ""
    )
    return f'<div style="font-weight: 600; margin: 4px 0 6px">{html.escape(text)}{tail}</div>'


def notes_list(notes: list[str]) -> str:
    """Notes as a small muted list ("" when there are none)."""
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return f'<ul style="{MUTED}; font-size: 0.85em; margin: 6px 0">{items}</ul>'


def sentence_list(sentences: list[str], bold: list[str] | None = None) -> str:
    """Sentences as a list, an optional bold lead-in before each."""
    lead = bold or [""] * len(sentences)
    items = "".join(
        f"<li>{f'<b>{html.escape(b)}</b>: ' if b else ''}{html.escape(s)}</li>"
        for b, s in zip(lead, sentences, strict=True)
    )
    return f'<ul style="margin: 6px 0">{items}</ul>'
