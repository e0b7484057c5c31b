"""The Present page's slides and its HTML export, made from the store of results (no widget
here: the export runs on a download's own thread)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from explain import METHOD_INFO, ModelHandle
from explain.narrative import describe
from explain.render import overlay
from explain.report import Slide, presentation_html

from . import results
from .results import Progress
from .sources import Picture

CMAP, ALPHA = "jet", 0.45
TITLE = "What the model looked at"


def today() -> str:
    """The date shown on the page and in the export, e.g. ``"3 December 2026"``."""
    day = datetime.date.today()
    return f"{day.day} {day:%B %Y}"


@dataclass(frozen=True)
class Deck:
    """What a presentation shows: a model, pictures, the map's method and layer, the slide
    on screen and the date."""

    handle: ModelHandle
    model_key: str
    pictures: tuple[Picture, ...]
    method: str
    layer: str
    index: int = 0
    date: str = ""

    def slide(self, index: int, progress: Progress | None = None) -> Slide:
        """The slide of picture ``index``: the top class's map (shared with the Explain
        page)."""
        handle, picture, layer = self.handle, self.pictures[index], self.layer
        result = results.cams(
            self.model_key,
            handle,
            picture,
            self.method,
            (layer,),
            None,  # the top class: the same map the Explain page shows first
            progress=progress,
        )
        probs = results.remember_probs(self.model_key, picture, result.probs[0])
        order = probs.argsort()[::-1]
        top, second = int(order[0]), int(order[1]) if len(order) > 1 else None
        heat = result.maps[layer][0]
        view = results.model_view(self.model_key, handle, picture)
        sentence = describe(
            handle.labels[top],
            float(probs[top]),
            heat,
            CMAP,
            second=(handle.labels[second], float(probs[second])) if second is not None else None,
        )
        facts = [("Image", picture.name)]
        if picture.label is not None:
            right = picture.label.lower() == handle.labels[top].lower()
            verdict = "the model is right" if right else "the model is wrong"
            facts.append(("Correct answer", f"{picture.label} ({verdict})"))
        facts.append(("Map", f"{METHOD_INFO[self.method].title} at {layer}"))
        return Slide(
            title=handle.labels[top].replace("_", " ").capitalize(),
            sentence=sentence,
            overlay=overlay(view, heat, ALPHA, CMAP),
            original=view,
            facts=facts,
        )

    def html(self) -> str:
        """Every slide in one HTML file that opens on the slide on screen."""
        slides = [self.slide(i) for i in range(len(self.pictures))]
        return presentation_html(
            slides, TITLE, model=self.handle.name, date=self.date, cmap=CMAP, start=self.index
        )
