"""What can be subscribed to: the tables of the ``supabase_realtime`` publication and their columns.

Joins validate bindings against it (unknown table, bad filter column or value) and the authorizer
needs each table's primary key. It is loaded at start and reloaded when a join names a table it does
not know (at most once per second), so ``alter publication supabase_realtime add table ...`` takes
effect without a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

__all__ = ["PUBLICATION", "Catalog", "TableInfo"]

PUBLICATION = "supabase_realtime"

_QUERY = """
select pt.schemaname, pt.tablename, a.attname, t.typname, coalesce(a.attnum = any(i.indkey), false)
from pg_publication_tables pt
join pg_class c on c.relname = pt.tablename
join pg_namespace n on n.oid = c.relnamespace and n.nspname = pt.schemaname
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_type t on t.oid = a.atttypid
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where pt.pubname = %s
order by pt.schemaname, pt.tablename, a.attnum
"""


@dataclass(frozen=True)
class TableInfo:
    """A published table.

    Attributes:
        columns: column name → type name (``pg_type.typname``), in attribute order.
        primary_key: the primary key's columns, in attribute order.
    """

    schema: str
    table: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]


class Catalog:
    """The published tables, cached."""

    def __init__(self, pool: AsyncConnectionPool, *, min_reload_interval: float = 1.0) -> None:
        self._pool = pool
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._loaded_at = float("-inf")
        self._min_interval = min_reload_interval

    async def load(self) -> None:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_QUERY, (PUBLICATION,))).fetchall()
            await conn.rollback()
        tables: dict[tuple[str, str], tuple[dict[str, str], list[str]]] = {}
        for schema, table, column, type_name, in_pk in rows:
            columns, pk = tables.setdefault((schema, table), ({}, []))
            columns[column] = type_name
            if in_pk:
                pk.append(column)
        self._tables = {
            key: TableInfo(key[0], key[1], columns, tuple(pk)) for key, (columns, pk) in tables.items()
        }
        self._loaded_at = time.monotonic()

    def is_published(self, schema: str, table: str) -> bool:
        return (schema, table) in self._tables

    def get(self, schema: str, table: str) -> TableInfo | None:
        return self._tables.get((schema, table))

    async def match(self, schema: str, table: str) -> list[TableInfo]:
        """Published tables matching a binding's schema/table (``*`` wildcards), reloading once if
        nothing matches and the cache is older than the reload interval."""
        found = self._match(schema, table)
        if not found and time.monotonic() - self._loaded_at >= self._min_interval:
            await self.load()
            found = self._match(schema, table)
        return found

    def _match(self, schema: str, table: str) -> list[TableInfo]:
        return [info for (s, t), info in self._tables.items() if schema in ("*", s) and table in ("*", t)]
