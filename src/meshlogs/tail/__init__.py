"""``meshlogs tail``: follow one workflow run in the terminal, gap-free, over the Supabase protocols.

- :mod:`~meshlogs.tail.merge`: the pure seq merge (drop ``seq <= last``, append ``last + 1``, hold and
  backfill after a gap).
- :mod:`~meshlogs.tail.render`: pure row parsing, filters, text and JSON lines.
- :mod:`~meshlogs.tail.api`: Auth login/refresh and REST reads (aiohttp).
- :mod:`~meshlogs.tail.live`: the realtime channel (official ``realtime`` client).
- :mod:`~meshlogs.tail.follow`: the loop that ties them together and returns the exit code.
"""

from __future__ import annotations

from meshlogs.tail.api import AuthFailed, TailError
from meshlogs.tail.follow import TailOptions, run_tail
from meshlogs.tail.merge import Hole, Merged, Merger
from meshlogs.tail.render import LineFilter, LogRow, Renderer, parse_levels, parse_row

__all__ = [
    "AuthFailed",
    "Hole",
    "LineFilter",
    "LogRow",
    "Merged",
    "Merger",
    "Renderer",
    "TailError",
    "TailOptions",
    "parse_levels",
    "parse_row",
    "run_tail",
]
