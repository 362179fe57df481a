"""Mounts the realtime gateway on the app (see :mod:`meshlogs.realtime.gateway`)."""

from __future__ import annotations

from meshlogs.realtime.gateway import add_routes

__all__ = ["add_routes"]
