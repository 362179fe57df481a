"""The /auth/v1 tests use the same running server and HTTP helper as the /rest/v1 tests."""

from __future__ import annotations

from tests.rest.conftest import Api, api, http, server, world

__all__ = ["Api", "api", "http", "server", "world"]
