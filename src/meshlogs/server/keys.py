"""Typed keys for what the aiohttp application carries, shared by every route module."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from meshlogs.config import Settings

__all__ = ["DATABASE_URL", "JWT_SECRET", "POOL", "SETTINGS"]

SETTINGS = web.AppKey("meshlogs.settings", Settings)
#: The libpq URL of the database this server runs against (embedded or configured).
DATABASE_URL = web.AppKey("meshlogs.database_url", str)
JWT_SECRET = web.AppKey("meshlogs.jwt_secret", str)
#: Pool of superuser connections; every user query runs inside ``SET LOCAL ROLE`` + claims.
POOL = web.AppKey("meshlogs.pool", AsyncConnectionPool)
