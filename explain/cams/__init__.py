"""The class-activation-map family: one engine, many methods (see ``methods.py``)."""

from .core import CamResult, first_component, normalize_maps, upsample
from .engine import check_method, compute_cams
from .guided import guided_backprop
from .methods import METHOD_INFO, METHOD_LIST, METHODS, CamMethod

__all__ = [
    "METHODS",
    "METHOD_INFO",
    "METHOD_LIST",
    "CamMethod",
    "CamResult",
    "check_method",
    "compute_cams",
    "first_component",
    "guided_backprop",
    "normalize_maps",
    "upsample",
]
