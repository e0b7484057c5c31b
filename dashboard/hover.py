"""Image thumbnails that follow the mouse over a Plotly chart's points.

Plotly's hover box shows text only; a small script, added with ``st.html``, listens to the
chart's ``plotly_hover`` events and shows the thumbnail of the point's row (``customdata[0]``)
next to the cursor. The thumbnails are made here, from the images themselves (no user text
enters the script but through ``json.dumps``).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping

import numpy as np
import streamlit as st
from PIL import Image

THUMB_SIDE = 96

_SCRIPT = """
<script>
(() => {
  window.__gceThumbs = window.__gceThumbs || {};
  window.__gceThumbs[%(chart)s] = %(thumbs)s;
  let tip = document.getElementById("gce-hover-thumb");
  if (!tip) {
    tip = document.createElement("img");
    tip.id = "gce-hover-thumb";
    tip.alt = "";
    tip.style.cssText = "position:fixed;z-index:100000;pointer-events:none;display:none;" +
      "width:%(side)dpx;height:%(side)dpx;object-fit:contain;background:#fff;" +
      "border:2px solid #fff;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.35)";
    document.body.appendChild(tip);
  }
  const hook = (gd, chart) => {
    if (gd.__gceHover || typeof gd.on !== "function") return;
    gd.__gceHover = true;
    gd.on("plotly_hover", (ev) => {
      const point = ev && ev.points && ev.points[0];
      const row = point && point.customdata ? point.customdata[0] : undefined;
      const src = (window.__gceThumbs[chart] || {})[row];
      if (!src) return;
      const e = ev.event || {};
      const box = gd.getBoundingClientRect();
      let x = (e.clientX !== undefined ? e.clientX : box.left + 20) + 18;
      let y = (e.clientY !== undefined ? e.clientY : box.top + 20) - %(side)d - 12;
      if (x + %(side)d > window.innerWidth) x -= %(side)d + 36;
      if (y < 0) y += %(side)d + 36;
      tip.src = src;
      tip.style.left = x + "px";
      tip.style.top = y + "px";
      tip.style.display = "block";
    });
    gd.on("plotly_unhover", () => { tip.style.display = "none"; });
  };
  const scan = () => {
    for (const chart of Object.keys(window.__gceThumbs)) {
      document.querySelectorAll(".st-key-" + chart + " .js-plotly-plot")
        .forEach((gd) => hook(gd, chart));
    }
  };
  scan();
  if (!window.__gceHoverObserver) {
    window.__gceHoverObserver = new MutationObserver(scan);
    window.__gceHoverObserver.observe(document.body, { childList: true, subtree: true });
  }
})();
</script>
"""


def thumbnail_uri(image: np.ndarray, side: int = THUMB_SIDE) -> str:
    """A small JPEG of an ``(H, W, 3)`` uint8 image as a ``data:`` URI."""
    picture = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def hover_thumbnails(chart_key: str, thumbs: Mapping[int, str]) -> None:
    """Show ``thumbs[row]`` next to the cursor over the points of the chart drawn with
    ``key=chart_key`` (a key made of letters, digits, ``_`` and ``-``)."""
    script = _SCRIPT % {
        "chart": json.dumps(chart_key),
        "thumbs": json.dumps({int(k): v for k, v in thumbs.items()}),
        "side": THUMB_SIDE,
    }
    st.html(script, unsafe_allow_javascript=True)
