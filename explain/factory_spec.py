"""Factory arguments in a model spec: ``pkg.module:factory(depth=56, num_classes=10)``.

Values are Python literals read with :func:`ast.literal_eval` (numbers, strings, booleans,
``None``, tuples, lists, dicts): nothing in a spec is ever executed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

from .errors import ModelLoadError

_WITH_ARGS = re.compile(r"(?P<ref>[^()]+?)\s*\((?P<args>.*)\)\s*", re.DOTALL)
_KEY = re.compile(r"[A-Za-z_]\w*")
_HELP = "write keyword arguments with literal values, e.g. 'pkg.module:factory(depth=56)'."


def split_factory_args(spec: str) -> tuple[str, dict[str, Any]]:
    """``"m:f(depth=56)"`` -> ``("m:f", {"depth": 56})``; a spec without parentheses comes back
    as is with no arguments.

    Raises:
        ModelLoadError: positional arguments, a value that is not a literal, or bad syntax.
    """
    match = _WITH_ARGS.fullmatch(spec.strip())
    if match is None:
        if "(" in spec or ")" in spec:
            raise ModelLoadError(f"Unbalanced parentheses in the model spec {spec!r}.", hint=_HELP)
        return spec.strip(), {}
    ref, text = match["ref"], match["args"]
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError as exc:
        raise ModelLoadError(
            f"Cannot read the arguments in {spec!r}: {exc.msg}.", hint=_HELP
        ) from exc
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ModelLoadError(f"Only keyword arguments are allowed in {spec!r}.", hint=_HELP)
    kwargs = {}
    for keyword in call.keywords:
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError as exc:
            raise ModelLoadError(
                f"The value of {keyword.arg!r} in {spec!r} is not a Python literal.", hint=_HELP
            ) from exc
    return ref, kwargs


def parse_model_args(items: Iterable[str]) -> dict[str, Any]:
    """``["depth=56", "name=resnet"]`` -> ``{"depth": 56, "name": "resnet"}``: each value is a
    Python literal, or else the text itself.

    Raises:
        ModelLoadError: an item without ``=`` or with a key that is not a Python name.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ModelLoadError(
                f"--model-arg {item!r} is not KEY=VALUE.", hint="e.g. --model-arg depth=56"
            )
        try:
            out[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key] = value.strip()  # a bare word: the text itself
    return out


def format_factory_args(ref: str, kwargs: dict[str, Any]) -> str:
    """``("m:f", {"depth": 56})`` -> ``"m:f(depth=56)"`` (sorted keys: one spec per model)."""
    if not kwargs:
        return ref
    return f"{ref}({', '.join(f'{k}={kwargs[k]!r}' for k in sorted(kwargs))})"
