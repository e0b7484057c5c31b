"""The class-activation-map family: one engine, many methods.

``base.py`` says what a method is and holds the registry; ``forward.py`` is the pass every
CAM method shares; each method lives in the module named after its idea (``gradient.py``,
``shapley.py``, ``finer.py``, ``kernel.py``, ``perturbation.py``, ``cam.py``, ``fullgrad.py``,
``guided.py``, ``transformer.py``), and ``methods.py`` lists the built-in ones; the attention
methods read attention probabilities captured by ``attention.py`` in the pass of
``attention_pass.py``; ``smoothing.py`` wraps any method; ``engine.py`` runs them;
``compare.py`` runs several (``"all"``), skipping those that do not apply to the model.
"""

from ..layers import resolve_layers
from .base import (
    KINDS,
    METHOD_INFO,
    METHODS,
    CamMethod,
    CamRequest,
    RawMaps,
    check_method,
    register_method,
    unregister_method,
)
from .compare import MethodResults, applicable_methods, compute_methods, method_names
from .core import (
    CamResult,
    first_component,
    normalize_maps,
    summed_maps,
    upsample,
    upsample_normalized,
    weighted_maps,
)
from .engine import compute_cams
from .forward import LayerPass, as_input, batched_grads, run_pass
from .gradient import WeightedActivations
from .guided import guided_backprop
from .methods import BUILTIN, METHOD_LIST

__all__ = [
    "BUILTIN",
    "KINDS",
    "METHODS",
    "METHOD_INFO",
    "METHOD_LIST",
    "CamMethod",
    "CamRequest",
    "CamResult",
    "LayerPass",
    "MethodResults",
    "RawMaps",
    "WeightedActivations",
    "applicable_methods",
    "as_input",
    "batched_grads",
    "check_method",
    "compute_cams",
    "compute_methods",
    "first_component",
    "guided_backprop",
    "method_names",
    "normalize_maps",
    "register_method",
    "resolve_layers",
    "run_pass",
    "summed_maps",
    "unregister_method",
    "upsample",
    "upsample_normalized",
    "weighted_maps",
]
