"""The schema cache: tables, views, columns and functions of the exposed schema, from ``pg_catalog``.

Every identifier a client names (table, column, function, argument) is checked here before any SQL is
composed, so an unknown name is a PostgREST-shaped 4xx and never reaches the database as text. Only
schema ``public`` is exposed, as on Supabase. The cache loads lazily and reloads (at most once per
second) when a name is missing, so tables created after startup appear without a restart, the way
PostgREST reloads on ``NOTIFY pgrst``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from meshlogs.rest.errors import column_not_found, table_not_found

__all__ = ["SCHEMA", "Catalog", "CatalogCache", "Column", "Function", "FunctionArg", "Table"]

SCHEMA = "public"

_TABLES_SQL = """
select c.relname, c.relkind, a.attname, a.atttypid::int, format_type(a.atttypid, a.atttypmod),
       t.typcategory::text,
       coalesce((select array_agg(pa.attname::text order by k.ord)
                 from pg_constraint pk
                 cross join lateral unnest(pk.conkey) with ordinality as k(attnum, ord)
                 join pg_attribute pa on pa.attrelid = pk.conrelid and pa.attnum = k.attnum
                 where pk.conrelid = c.oid and pk.contype = 'p'), '{}')
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_type t on t.oid = a.atttypid
where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p', 'f')
order by c.relname, a.attnum
"""

_FUNCTIONS_SQL = """
select p.oid::int, p.proname, p.pronargs, p.pronargdefaults, p.proretset,
       coalesce(p.proargnames, '{}')::text[], coalesce(p.proargmodes::text[], '{}'),
       array(select x::int from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) x),
       rt.typtype::text, format_type(p.prorettype, null), p.provolatile::text
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
where n.nspname = %s and p.prokind = 'f'
order by p.proname, p.oid
"""

_JSON_OIDS = {114: "json", 3802: "jsonb"}


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_name: str
    is_text: bool


@dataclass(frozen=True)
class Table:
    name: str
    kind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    by_name: dict[str, Column] = field(compare=False, repr=False)

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Raises:
            RestError: 42703 (400) when the table has no such column.
        """
        col = self.by_name.get(name)
        if col is None:
            raise column_not_found(self.name, name, self.by_name)
        return col


@dataclass(frozen=True)
class FunctionArg:
    name: str
    type_oid: int
    has_default: bool

    @property
    def json_kind(self) -> str | None:
        """``"json"``/``"jsonb"`` when the argument takes JSON, else None."""
        return _JSON_OIDS.get(self.type_oid)


@dataclass(frozen=True)
class Function:
    oid: int
    name: str
    args: tuple[FunctionArg, ...]
    returns_set: bool
    return_kind: str  # pg_type.typtype of the result: b (base), c (composite), p (pseudo: void, record)...
    return_type: str
    volatility: str

    @property
    def returns_void(self) -> bool:
        return self.return_type == "void"


@dataclass(frozen=True)
class Catalog:
    tables: dict[str, Table]
    functions: dict[str, tuple[Function, ...]]


async def load_catalog(pool: AsyncConnectionPool[Any]) -> Catalog:
    """Read the exposed schema from ``pg_catalog`` (as the pool's superuser: names only, no data)."""
    async with pool.connection() as conn, conn.transaction():
        table_rows = await (await conn.execute(_TABLES_SQL, (SCHEMA,))).fetchall()
        function_rows = await (await conn.execute(_FUNCTIONS_SQL, (SCHEMA,))).fetchall()
    grouped: dict[str, tuple[str, list[Column], tuple[str, ...]]] = {}
    for relname, relkind, attname, typoid, typname, typcat, pk in table_rows:
        entry = grouped.setdefault(relname, (relkind, [], tuple(pk)))
        entry[1].append(Column(attname, typoid, typname, typcat == "S"))
    tables = {
        name: Table(name, kind, tuple(cols), pk, {c.name: c for c in cols})
        for name, (kind, cols, pk) in grouped.items()
    }
    functions: dict[str, list[Function]] = {}
    for oid, name, nargs, ndefaults, retset, names, modes, types, rtype, rname, vol in function_rows:
        args: list[tuple[str, int]] = []
        for i, typ in enumerate(types):
            mode = modes[i] if modes else "i"
            if mode in {"i", "b", "v"}:
                args.append((names[i] if i < len(names) else "", typ))
        args = args[:nargs]
        first_default = nargs - ndefaults
        fargs = tuple(
            FunctionArg(arg_name, typ, i >= first_default) for i, (arg_name, typ) in enumerate(args)
        )
        functions.setdefault(name, []).append(Function(oid, name, fargs, retset, rtype, rname, vol))
    return Catalog(tables, {k: tuple(v) for k, v in functions.items()})


class CatalogCache:
    """The current :class:`Catalog`, loaded on first use and reloaded when a name is missing.

    Args:
        pool: returns the pool to read from (the app's pool only exists once the app has started).
    """

    def __init__(
        self, pool: Callable[[], AsyncConnectionPool[Any]], *, min_reload_interval: float = 1.0
    ) -> None:
        self._pool = pool
        self._catalog: Catalog | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self.min_reload_interval = min_reload_interval

    async def get(self) -> Catalog:
        if self._catalog is None:
            await self.reload(force=True)
        assert self._catalog is not None
        return self._catalog

    async def reload(self, *, force: bool = False) -> bool:
        """Reload unless it was reloaded less than a second ago; True if it reloaded."""
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < self.min_reload_interval:
                return False
            if force and self._catalog is not None and time.monotonic() - self._loaded_at < 0.05:
                return False
            self._catalog = await load_catalog(self._pool())
            self._loaded_at = time.monotonic()
            return True

    async def table(self, name: str) -> Table:
        """The table or view ``public.<name>``.

        Raises:
            RestError: PGRST205 (404) when it does not exist, even after a reload.
        """
        catalog = await self.get()
        table = catalog.tables.get(name)
        if table is None and await self.reload():
            catalog = await self.get()
            table = catalog.tables.get(name)
        if table is None:
            raise table_not_found(SCHEMA, name, catalog.tables)
        return table

    async def functions(self, name: str) -> tuple[Function, ...]:
        """Every overload of ``public.<name>`` (empty if none, after a reload)."""
        catalog = await self.get()
        found = catalog.functions.get(name, ())
        if not found and await self.reload():
            found = (await self.get()).functions.get(name, ())
        return found
