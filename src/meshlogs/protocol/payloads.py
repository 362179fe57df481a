"""Validation of ``phx_join`` payloads into typed, frozen values.

Supabase validates the same payload with Ecto embedded schemas (``realtime_web/channels/payloads/``):
unknown keys are ignored (clients add ``version``, ``postgres_changes_options``, ``replay`` ...),
booleans may arrive as strings (``"true"``, any case: its ``FlexibleBoolean``), ``null`` means "not
set", and ``null`` entries in ``postgres_changes`` are dropped. Where Supabase logs an invalid payload
and joins anyway with whatever it could cast, we refuse the join with an
:class:`~meshlogs.errors.InvalidJoinPayloadError` that names the field: a client that sends
``ack: 3`` learns about it instead of silently getting defaults.

Two deliberate differences from the current Supabase server, both documented in PROTOCOL.md:

* ``presence.enabled`` missing means **true** (clients older than realtime-js 2.12 omit it and the
  server treated that as enabled until 2026-03). The cost is one extra ``presence_state`` push.
* an unknown postgres_changes ``event`` is an error (Supabase silently widens it to ``*``).

Each binding keeps the client's map verbatim (:attr:`PostgresChangeBinding.raw`), because the join
reply must echo it unchanged (clients compare ``event``, ``schema``, ``table``, ``filter``
positionally and strictly), and gets a deterministic non-zero 31-bit :attr:`~PostgresChangeBinding.id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from meshlogs.errors import InvalidJoinPayloadError

__all__ = [
    "CHANGE_EVENTS",
    "BroadcastConfig",
    "ChangeEvent",
    "JoinConfig",
    "JoinPayload",
    "PostgresChangeBinding",
    "PresenceConfig",
    "binding_id",
    "parse_join_payload",
]

ChangeEvent = Literal["*", "INSERT", "UPDATE", "DELETE"]
"""The event a postgres_changes binding listens to, normalized to upper case."""

CHANGE_EVENTS: Final[Mapping[str, ChangeEvent]] = {
    "*": "*",
    "INSERT": "INSERT",
    "UPDATE": "UPDATE",
    "DELETE": "DELETE",
}

_ID_MASK = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    """``config.broadcast``.

    Attributes:
        ack: reply ``ok`` to each broadcast push (``send()`` then resolves on the reply).
        self_broadcast: deliver the sender's own broadcasts back to it (``self`` on the wire).
        replication_ready: the client wants a ``system`` "Replication connection established" push.
    """

    ack: bool = False
    self_broadcast: bool = False
    replication_ready: bool = False


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    """``config.presence``.

    Attributes:
        key: the presence key; ``""`` means the server picks one.
        enabled: send ``presence_state`` after the join (missing ⇒ true, see module docstring).
    """

    key: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True, eq=False)
class PostgresChangeBinding:
    """One element of ``config.postgres_changes``.

    Attributes:
        event: ``*``, ``INSERT``, ``UPDATE`` or ``DELETE`` (the client's value, upper-cased).
        schema: schema name or ``*``; ``public`` when only ``table`` was given.
        table: table name or ``*``; ``*`` when only ``schema`` was given.
        filter: the raw filter string (parse it with :func:`meshlogs.protocol.filters.parse_filter`,
            which needs the table's column types), or ``None``.
        select: columns to restrict the payload to (``select`` or ``columns`` on the wire), or
            ``None`` for all.
        raw: the client's map exactly as received; the join reply echoes it plus ``id``. Do not
            mutate it.
        id: the binding id sent in the join reply and in every ``postgres_changes`` ``ids`` list:
            a JSON integer in ``1 .. 2**31 - 1``.
    """

    event: ChangeEvent
    schema: str
    table: str
    filter: str | None
    select: tuple[str, ...] | None
    raw: dict[str, Any]
    id: int


@dataclass(frozen=True, slots=True, eq=False)
class JoinConfig:
    """``config`` of a ``phx_join`` payload."""

    broadcast: BroadcastConfig
    presence: PresenceConfig
    postgres_changes: tuple[PostgresChangeBinding, ...]
    private: bool


@dataclass(frozen=True, slots=True, eq=False)
class JoinPayload:
    """A validated ``phx_join`` payload.

    Attributes:
        config: the channel configuration (defaults when the client sent none).
        access_token: the user's JWT from ``access_token`` (or the legacy ``user_token``); ``None``
            when absent, ``null``, or an ``sb_...`` API key, in which case the connect-time token
            applies (supabase-js 2.119 may join before it has resolved the session).
    """

    config: JoinConfig
    access_token: str | None


def binding_id(raw: Mapping[str, Any]) -> int:
    """The deterministic id of a binding map: a non-zero 31-bit integer.

    Identical maps share an id (as Supabase's ``:erlang.phash2`` does), so a client that registers
    the same binding twice gets both callbacks. Non-zero because both clients test ``id`` for
    truthiness; an integer because Python validates ``id: int``.

    Args:
        raw: the binding map as the client sent it.

    Returns:
        An integer in ``1 .. 2**31 - 1``.
    """
    canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(canonical, digest_size=8).digest()
    return int.from_bytes(digest, "big") % _ID_MASK + 1


def _fail(path: str, message: str) -> InvalidJoinPayloadError:
    return InvalidJoinPayloadError(f"{path}: {message}")


def _map(value: object, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise _fail(path, "unable to parse, expected a map")


def _bool(value: object, default: bool, path: str) -> bool:
    # Supabase's FlexibleBoolean: true/false, or the strings "true"/"false" in any case.
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    raise _fail(path, "unable to parse, expected boolean")


def _optional_str(value: object, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _fail(path, "unable to parse, expected string")


def _presence_key(value: object, path: str) -> str:
    # Supabase keeps the key untyped; clients send strings, users sometimes numbers.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _fail(path, "unable to parse, expected string")


def _select(binding: dict[str, Any], path: str) -> tuple[str, ...] | None:
    key = "select" if "select" in binding else "columns"
    value = binding.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(col, str) for col in value):
        raise _fail(f"{path}.{key}", "expected a list of column name strings")
    return tuple(value) if value else None


def _binding(raw: dict[str, Any], path: str) -> PostgresChangeBinding:
    event_value = raw.get("event")
    if event_value is None:
        event: ChangeEvent = "*"
    elif isinstance(event_value, str) and event_value.upper() in CHANGE_EVENTS:
        event = CHANGE_EVENTS[event_value.upper()]
    else:
        raise _fail(f"{path}.event", 'expected one of "*", "INSERT", "UPDATE", "DELETE"')
    schema = _optional_str(raw.get("schema"), f"{path}.schema")
    table = _optional_str(raw.get("table"), f"{path}.table")
    filter_ = _optional_str(raw.get("filter"), f"{path}.filter")
    if schema is None and table is None:
        raise _fail(path, "provide at least a `schema` or a `table` to subscribe to")
    schema = "public" if schema is None else schema
    table = "*" if table is None else table
    if filter_ is not None and filter_.strip() and (schema == "*" or table == "*"):
        raise _fail(f"{path}.filter", "a filter needs an explicit schema and table")
    select = _select(raw, path)
    if select is not None and (schema == "*" or table == "*"):
        raise _fail(
            f"{path}.select",
            "column selection is not supported for wildcard subscriptions; "
            "provide an explicit schema and table name",
        )
    return PostgresChangeBinding(
        event=event,
        schema=schema,
        table=table,
        filter=filter_,
        select=select,
        raw=raw,
        id=binding_id(raw),
    )


def _unique_ids(bindings: list[PostgresChangeBinding]) -> tuple[PostgresChangeBinding, ...]:
    # Identical maps share an id on purpose; two *different* maps that collide on the 31-bit hash
    # would make one binding's callbacks fire for the other's changes, so probe to a free id.
    by_id: dict[int, bytes] = {}
    result = []
    for binding in bindings:
        canonical = orjson.dumps(binding.raw, option=orjson.OPT_SORT_KEYS)
        ident = binding.id
        while ident in by_id and by_id[ident] != canonical:
            ident = ident % _ID_MASK + 1
        by_id[ident] = canonical
        if ident != binding.id:
            binding = PostgresChangeBinding(
                event=binding.event,
                schema=binding.schema,
                table=binding.table,
                filter=binding.filter,
                select=binding.select,
                raw=binding.raw,
                id=ident,
            )
        result.append(binding)
    return tuple(result)


def _postgres_changes(value: object) -> tuple[PostgresChangeBinding, ...]:
    path = "config.postgres_changes"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, "unable to parse, expected an array of maps")
    bindings = []
    # Supabase drops null entries before anything else; so do we, so positions match its reply.
    for index, raw in enumerate(item for item in value if item is not None):
        if not isinstance(raw, dict):
            raise _fail(f"{path}[{index}]", "unable to parse, expected a map")
        bindings.append(_binding(raw, f"{path}[{index}]"))
    return _unique_ids(bindings)


def _access_token(payload: dict[str, Any]) -> str | None:
    # Supabase prefers `user_token` (legacy) over `access_token` when both are strings.
    token: str | None = None
    for key in ("access_token", "user_token"):
        value = payload.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _fail(key, "unable to parse, expected string")
        token = value
    if token is not None and (token.startswith("sb_") or not token):
        return None
    return token


def parse_join_payload(payload: object) -> JoinPayload:
    """Validate a ``phx_join`` payload.

    Args:
        payload: the decoded JSON payload of the join message.

    Returns:
        The typed payload. A payload without ``config`` (Supabase's legacy API) gets the defaults:
        no postgres bindings, broadcast without ack/self, presence enabled with a server key.

    Raises:
        InvalidJoinPayloadError: a field has the wrong type; the message names it, e.g.
            ``config.broadcast.ack: unable to parse, expected boolean``.
    """
    if not isinstance(payload, dict):
        raise _fail("payload", "unable to parse, expected a map")
    config = _map(payload.get("config"), "config")
    broadcast = _map(config.get("broadcast"), "config.broadcast")
    presence = _map(config.get("presence"), "config.presence")
    return JoinPayload(
        config=JoinConfig(
            broadcast=BroadcastConfig(
                ack=_bool(broadcast.get("ack"), False, "config.broadcast.ack"),
                self_broadcast=_bool(broadcast.get("self"), False, "config.broadcast.self"),
                replication_ready=_bool(
                    broadcast.get("replication_ready"), False, "config.broadcast.replication_ready"
                ),
            ),
            presence=PresenceConfig(
                key=_presence_key(presence.get("key"), "config.presence.key"),
                enabled=_bool(presence.get("enabled"), True, "config.presence.enabled"),
            ),
            postgres_changes=_postgres_changes(config.get("postgres_changes")),
            private=_bool(config.get("private"), False, "config.private"),
        ),
        access_token=_access_token(payload),
    )
