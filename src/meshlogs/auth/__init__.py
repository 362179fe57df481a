"""Authentication: JWT keys and tokens, password hashing, and (later) the /auth/v1 endpoints."""

from __future__ import annotations
