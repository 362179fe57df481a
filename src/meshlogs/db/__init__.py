"""Postgres plumbing: the embedded server, connection URLs and migrations."""

from __future__ import annotations
