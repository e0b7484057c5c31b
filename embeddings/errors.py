"""Errors of the embeddings package: each says what was wrong and what to do (``str(error)``)."""

from __future__ import annotations

from explain.errors import ExplainError


class DatasetError(ExplainError, ValueError):
    """A dataset that cannot be used: missing, empty, an unsafe archive, no images in it."""


class ProjectionError(ExplainError, ValueError):
    """Features that cannot be projected as asked (too few points, unknown method, ...)."""
