"""Errors of the embeddings package: each says what was wrong and what to do (``str(error)``)."""

from __future__ import annotations

from explain.errors import DatasetError, ExplainError

__all__ = ["DatasetError", "ProjectionError"]


class ProjectionError(ExplainError, ValueError):
    """Features that cannot be projected as asked (too few points, unknown method, ...)."""
