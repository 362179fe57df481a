"""The PostgREST-compatible subset served at ``/rest/v1``: reads with filters, RPC, simple writes.

Layers, outermost first:

- :mod:`~meshlogs.rest.routes` — aiohttp handlers: API key and JWT, one transaction per request under
  the caller's role and claims, streamed JSON bodies.
- :mod:`~meshlogs.rest.sqlbuild` — composes the SQL (``psycopg.sql`` only, values always bound).
- :mod:`~meshlogs.rest.catalog` — the schema cache: which tables, columns and functions exist in
  ``public`` (read from ``pg_catalog``, reloaded when a name is missing).
- :mod:`~meshlogs.rest.query` — pure parser for PostgREST's query-string syntax and headers.
- :mod:`~meshlogs.rest.errors` — PostgREST's error shape and status codes.
"""

from __future__ import annotations
