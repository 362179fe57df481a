"""The postgres_changes subscriptions of every connection, indexed so a change finds its subscribers
without scanning them all.

Subscriptions live under their ``(schema, table)`` (wildcards ``*`` under their own keys). Inside a
table, a subscription with an ``eq``/``in`` filter is filed under ``(column, canonical value)`` — the
console's ``run_id=eq.<run>`` — so a log line costs one dict lookup per filtered column, whatever the
number of runs being watched; other subscriptions (no filter, ``gt``...) are checked one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from meshlogs.capture.txbuilder import Change, ChangeKind
from meshlogs.protocol.filters import Filter, index_value

__all__ = ["Subscription", "SubscriptionIndex"]


@dataclass(eq=False)
class Subscription:
    """One ``postgres_changes`` binding of one joined channel.

    Attributes:
        owner: the channel state it belongs to (opaque here; compared by identity).
        binding_id: the id echoed to the client, sent in every event's ``ids``.
        events: the change kinds wanted (``INSERT``/``UPDATE``/``DELETE``).
        schema, table: what it watches; ``*`` is a wildcard.
        filter: the parsed filter, if any.
        select: columns to keep in the payload, or None for all.
    """

    owner: Any
    binding_id: int
    events: frozenset[str]
    schema: str
    table: str
    filter: Filter | None = None
    select: tuple[str, ...] | None = None

    def wants(self, change: Change) -> bool:
        if change.kind.value not in self.events:
            return False
        if self.filter is None:
            return True
        row = change.old_record if change.kind is ChangeKind.DELETE else change.record
        return row is not None and self.filter.matches(row)


@dataclass
class _TableSubscriptions:
    scan: set[Subscription] = field(default_factory=set)
    by_value: dict[str, dict[Hashable, set[Subscription]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )

    def empty(self) -> bool:
        return not self.scan and not any(self.by_value.values())


class SubscriptionIndex:
    """All subscriptions of the process. Not thread-safe: owned by the event loop."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], _TableSubscriptions] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, sub: Subscription) -> None:
        table = self._tables.setdefault((sub.schema, sub.table), _TableSubscriptions())
        values = sub.filter.index_values if sub.filter is not None else None
        if values is None:
            table.scan.add(sub)
        else:
            assert sub.filter is not None
            for value in values:
                table.by_value[sub.filter.column][value].add(sub)
        self._count += 1

    def remove(self, sub: Subscription) -> None:
        key = (sub.schema, sub.table)
        table = self._tables.get(key)
        if table is None:
            return
        values = sub.filter.index_values if sub.filter is not None else None
        removed = False
        if values is None:
            if sub in table.scan:
                table.scan.discard(sub)
                removed = True
        else:
            assert sub.filter is not None
            column = table.by_value.get(sub.filter.column, {})
            for value in values:
                bucket = column.get(value)
                if bucket is not None and sub in bucket:
                    bucket.discard(sub)
                    removed = True
                    if not bucket:
                        del column[value]
            if not column:
                table.by_value.pop(sub.filter.column, None)
        if removed:
            self._count -= 1
        if table.empty():
            del self._tables[key]

    def tables(self) -> Iterator[tuple[str, str]]:
        return iter(self._tables)

    def match(self, change: Change) -> list[Subscription]:
        """Every subscription that wants this change (events and filter checked)."""
        found: list[Subscription] = []
        row = change.old_record if change.kind is ChangeKind.DELETE else change.record
        types = dict(change.columns)
        for key in ((change.schema, change.table), (change.schema, "*"), ("*", "*")):
            table = self._tables.get(key)
            if table is None:
                continue
            for sub in table.scan:
                if sub.wants(change):
                    found.append(sub)
            if row is None or not table.by_value:
                continue
            for column, buckets in table.by_value.items():
                column_type = types.get(column)
                if column_type is None:
                    continue
                value = index_value(column_type, row.get(column))
                if value is None:
                    continue
                for sub in buckets.get(value, ()):
                    if sub.wants(change):
                        found.append(sub)
        return found
