"""SQL access to meshlogs' tables, one module per thing stored."""

from __future__ import annotations
