"""Checks on parsed JSON request bodies shared by the REST and Auth endpoints."""

from __future__ import annotations

from typing import Any

__all__ = ["has_nul"]


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys included) holds NUL, which Postgres text and
    jsonb cannot store: both APIs refuse such bodies up front with a clear error instead."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
