"""The Present page's slides and its HTML export, made from the store of results (no widget
here: the export runs on a download's own thread)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from explain import METHOD_INFO, ModelHandle, top_classes
from explain.narrative import describe
from explain.progress import Progress
from explain.render import overlay
from explain.report import Slide, presentation_html

from . import results
from .sources import Picture

CMAP, ALPHA = "jet", 0.45
TITLE = "What the model looked at"
ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")


def today() -> str:
    """The date shown on the page and in the export, e.g. ``"3 December 2026"``."""
    day = datetime.date.today()
    return f"{day.day} {day:%B %Y}"


def _verdict(label: str, ranked: list[str]) -> str:
    """Whether the model's answer is right: its first guess, one of its next guesses (ImageNet
    has near-identical classes, such as tabby and tiger cat), or none of its five."""
    lowered = [name.lower() for name in ranked]
    if label.lower() not in lowered:
        return "the model is wrong"
    rank = lowered.index(label.lower())
    return "the model is right" if rank == 0 else f"the model's {ORDINALS[rank]} guess"


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
        best = top_classes(probs, 5, handle.labels)
        names, shares = best.labels, best.probabilities
        heat = result.maps[layer][0]
        view = results.model_view(self.model_key, handle, picture)
        sentence = describe(
            names[0],
            float(shares[0]),
            heat,
            CMAP,
            second=(names[1], float(shares[1])) if len(names) > 1 else None,
        )
        facts = [("Image", picture.name)]
        if picture.label is not None:
            facts.append(("Correct answer", f"{picture.label} ({_verdict(picture.label, names)})"))
        facts.append(("Map", f"{METHOD_INFO[self.method].title} at {layer}"))
        return Slide(
            title=names[0].replace("_", " ").capitalize(),
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
