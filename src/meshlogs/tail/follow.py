"""``meshlogs tail``: follow one run, gap-free (ARCHITECTURE §5), and exit with its outcome.

The loop::

    check the run (REST): unknown or hidden -> exit 2; finished or --no-follow -> backfill, exit
    repeat:
        open a channel (INSERT run_logs run_id=eq.RUN, UPDATE workflow_runs id=eq.RUN), token set first
        on SUBSCRIBED: read the status, then backfill seq > last in pages until an empty page
        merge live rows by seq (:mod:`meshlogs.tail.merge`); a gap triggers a backfill
        status final -> one last backfill, exit 0 (succeeded) or 1 (failed, canceled)
        channel lost (socket closed, CHANNEL_ERROR, TIMED_OUT, CLOSED) -> close, back off, repeat,
            and say what the resync restored: "reconnected — 12 lines restored"

Reading the status *before* each backfill matters: lines are committed before the run's final status,
so a backfill that starts after seeing "succeeded" sees every line. While idle for a while the follower
also re-reads the status, so a missed UPDATE cannot leave it waiting forever.

Lines go to ``out`` (filtered, rendered); status lines to ``err``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Final, TextIO, TypeVar

import aiohttp

from meshlogs.tail.api import AuthFailed, LoginSession, SupabaseApi, TailError, Unavailable
from meshlogs.tail.live import ChannelLost, JoinRefused, LiveChannel, LiveEvent, LiveRow, StatusChanged
from meshlogs.tail.merge import Merged, Merger
from meshlogs.tail.render import FINAL_STATUSES, LineFilter, LogRow, Renderer, exit_code_for, parse_row

__all__ = ["TailOptions", "run_tail"]

T = TypeVar("T")

#: Seconds between reconnect attempts (then the last value, with ±20 % jitter).
RECONNECT_DELAYS: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
#: With no event for this long, re-read the run's status (and backfill if a gap is open).
IDLE_CHECK: Final = 15.0
#: While reconnecting, repeat an unchanged "still disconnected" line at most this often (seconds).
STILL_DOWN_EVERY: Final = 30.0
#: Refresh a login session this long before its access token expires (at most half its lifetime).
REFRESH_MARGIN: Final = 60.0


@dataclass(frozen=True)
class TailOptions:
    """What to follow and how (the CLI builds this from its flags).

    Attributes:
        url: server base URL.
        anon_key: API key for ``apikey``.
        run_id: the run.
        email, password: log in with these (Supabase Auth password grant).
        access_token: use this token instead of logging in (``MESHLOGS_ACCESS_TOKEN``).
        after: print lines with seq greater than this (``--since-seq``).
        follow: False prints what exists and exits (``--no-follow``).
        line_filter: ``--level`` / ``--step`` / ``--grep``.
        renderer: text or JSON, colours.
    """

    url: str
    anon_key: str
    run_id: str
    email: str | None = None
    password: str | None = None
    access_token: str | None = None
    after: int = 0
    follow: bool = True
    line_filter: LineFilter = field(default_factory=LineFilter)
    renderer: Renderer = field(default_factory=lambda: Renderer(color=False))


async def run_tail(options: TailOptions, out: TextIO, err: TextIO) -> int:
    """Follow (or print) the run; return the exit code: 0 succeeded, 1 failed/canceled.

    Raises:
        TailError: usage or access problem (exit code 2), including :class:`AuthFailed`.
    """
    connector = aiohttp.TCPConnector(limit=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = SupabaseApi(options.url, options.anon_key, session)
        return await Follower(api, options, out, err).run()


def _delays() -> Iterator[float]:
    yield from RECONNECT_DELAYS
    while True:
        yield RECONNECT_DELAYS[-1] * random.uniform(0.8, 1.2)


class Follower:
    """One ``tail`` invocation: the merge state, the output, the reconnect loop."""

    def __init__(self, api: SupabaseApi, options: TailOptions, out: TextIO, err: TextIO) -> None:
        self.api = api
        self.options = options
        self.out = out
        self.err = err
        self.merger: Merger[LogRow] = Merger(lambda row: row.seq, after=options.after)
        self.events: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self.login: LoginSession | None = None
        self._refresh_due = float("inf")
        self.generation = 0

    # -- top level ----------------------------------------------------------------------------------

    async def run(self) -> int:
        await self._authenticate()
        status = await self._status_or_fail()
        if not self.options.follow or status in FINAL_STATUSES:
            # A live run keeps growing: print what exists now, not a chase after its writer.
            upto = None if status in FINAL_STATUSES else await self._unavailable_is_fatal(self._last_seq())
            await self._unavailable_is_fatal(self._backfill_until_current(upto))
            return self._finish(status)
        return await self._follow()

    async def _last_seq(self) -> int:
        return await self.api.last_seq(self.options.run_id)

    async def _unavailable_is_fatal(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except Unavailable as exc:
            raise TailError(str(exc)) from None

    async def _authenticate(self) -> None:
        opts = self.options
        try:
            if opts.email is not None:
                self._adopt(await self.api.login(opts.email, opts.password or ""))
            elif opts.access_token:
                self.api.access_token = opts.access_token
        except Unavailable as exc:
            raise TailError(str(exc)) from None

    async def _status_or_fail(self) -> str:
        try:
            status = await self.api.run_status(self.options.run_id)
        except Unavailable as exc:
            raise TailError(str(exc)) from None
        if status is None:
            hint = (
                ""
                if self.login is not None or self.options.access_token
                else " (not logged in: use --email/--password or set MESHLOGS_ACCESS_TOKEN)"
            )
            raise TailError(f"run {self.options.run_id} not found, or you are not allowed to see it{hint}")
        return status

    def _finish(self, status: str) -> int:
        run = self.options.run_id
        if status in FINAL_STATUSES:
            self._status(f"run {run} {status} ({self.merger.last} lines)")
        elif not self.options.follow:
            self._status(f"run {run} is {status} ({self.merger.last} lines so far)")
        return exit_code_for(status)

    # -- following ----------------------------------------------------------------------------------

    async def _follow(self) -> int:
        delays = _delays()
        lost_reason: str | None = None
        said, said_at = "", 0.0  # last "still disconnected" reason, and when: say it again rarely
        while True:
            self.generation += 1
            channel = LiveChannel(
                self.options.url,
                self.api.anon_key,
                self.api.access_token,
                self.options.run_id,
                self.events,
                self.generation,
            )
            try:
                outcome = await self._session(channel, lost_reason is not None)
            except (Unavailable, JoinRefused) as exc:
                outcome = str(exc)
                if isinstance(exc, JoinRefused):
                    # A refused join may be a token problem: REST says so clearly (exit 2).
                    with contextlib.suppress(Unavailable):
                        await self.api.run_status(self.options.run_id)
                if lost_reason is None:
                    self._status(f"cannot follow live ({outcome}) — retrying")
                    lost_reason = outcome
                elif outcome != said or time.monotonic() - said_at > STILL_DOWN_EVERY:
                    self._status(f"still disconnected ({outcome}) — retrying")
                    said, said_at = outcome, time.monotonic()
                await asyncio.sleep(next(delays))
                continue
            finally:
                await channel.close()
            if isinstance(outcome, int):
                return outcome
            delays = _delays()
            said = ""
            self._status(f"connection lost ({outcome}) — reconnecting")
            lost_reason = outcome

    async def _session(self, channel: LiveChannel, reconnecting: bool) -> int | str:
        """Open, resync, consume; the exit code when the run ended, else why the channel was lost."""
        await channel.open()
        restored, status = await self._resync()
        if reconnecting:
            self._status(f"reconnected — {restored} {'line' if restored == 1 else 'lines'} restored")
        if status in FINAL_STATUSES:
            return self._finish(status)
        return await self._consume(channel)

    async def _resync(self) -> tuple[int, str]:
        status = await self.api.run_status(self.options.run_id)
        if status is None:
            raise TailError(f"you are no longer allowed to see run {self.options.run_id}")
        return await self._backfill_until_current(), status

    async def _consume(self, channel: LiveChannel) -> int | str:
        while True:
            timeout = IDLE_CHECK
            if self.login is not None:
                until_refresh = self._refresh_at() - time.time()
                if until_refresh <= 0:
                    await self._refresh(channel)
                    continue
                timeout = min(timeout, until_refresh)
            try:
                event = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                if self.login is not None and time.time() >= self._refresh_at():
                    continue
                status = await self.api.run_status(self.options.run_id)
                if status is None:
                    raise TailError(f"you are no longer allowed to see run {self.options.run_id}") from None
                if status in FINAL_STATUSES:
                    await self._backfill_until_current()
                    return self._finish(status)
                await self._fill_gaps()
                continue
            if event.generation != channel.generation:
                continue  # a late event of a closed connection
            if isinstance(event, LiveRow):
                self._take_live(event)
                if self.merger.needs_backfill:
                    await self._fill_gaps()
            elif isinstance(event, StatusChanged):
                if event.status in FINAL_STATUSES:
                    await self._backfill_until_current()
                    return self._finish(event.status)
            elif isinstance(event, ChannelLost):
                return event.reason

    def _take_live(self, event: LiveRow) -> None:
        try:
            row = parse_row(event.record)
        except ValueError:
            return
        if row.run_id and row.run_id != self.options.run_id:
            return
        self._emit(self.merger.offer_live(row))

    async def _fill_gaps(self) -> None:
        restored = await self._backfill_until_current()
        if restored:
            self._status(
                f"gap in the live stream — {restored} {'line' if restored == 1 else 'lines'} restored"
            )

    def _refresh_at(self) -> float:
        return self._refresh_due

    def _adopt(self, login: LoginSession) -> None:
        """Use a new session; plan its refresh (fixed now: a moving target would never arrive)."""
        self.login = login
        lifetime = max(0.0, login.expires_at - time.time())
        self._refresh_due = login.expires_at - min(REFRESH_MARGIN, lifetime / 2)

    async def _refresh(self, channel: LiveChannel) -> None:
        assert self.login is not None
        if self.login.refresh_token is None:
            raise AuthFailed("the access token expired and the login gave no refresh token; log in again")
        try:
            self._adopt(await self.api.refresh(self.login.refresh_token))
        except Unavailable:
            self._refresh_due = time.time() + 5  # try again shortly; the old token may still be valid
            return
        await channel.set_token(self.login.access_token)

    # -- backfill -----------------------------------------------------------------------------------

    async def _backfill_until_current(self, upto: int | None = None) -> int:
        """Read ``seq > last`` in pages until an empty page (or past ``upto``); repeat while rows
        are held. Returns how many lines came from the server."""
        restored = 0
        for _ in range(5):  # converges in 1-2 rounds; bounded for a server that misbehaves
            mark = self.merger.mark()
            while True:
                before = self.merger.last
                if upto is not None and before >= upto:
                    break
                page = await self.api.log_page(self.options.run_id, before)
                if not page:
                    break
                rows = []
                for record in page:
                    with contextlib.suppress(ValueError):
                        rows.append(parse_row(record))
                rows.sort(key=lambda r: r.seq)
                merged = self.merger.offer_backfill(rows)
                restored += merged.restored
                self._emit(merged)
                if self.merger.last == before:
                    raise TailError(f"{self.api.url} ignores the seq filter on run_logs; cannot page")
            self._emit(self.merger.settle(mark))
            if not self.merger.needs_backfill:
                break
        return restored

    # -- output -------------------------------------------------------------------------------------

    def _emit(self, merged: Merged[LogRow]) -> None:
        for hole in merged.holes:
            what = f"seq {hole.first}" if hole.size == 1 else f"seq {hole.first}–{hole.last}"
            self._status(f"{what} no longer stored on the server (skipped)")
        if not merged.rows:
            return
        keep = self.options.line_filter.matches
        render = self.options.renderer.render
        shown = [render(row) for row in merged.rows if keep(row)]
        if shown:
            self.out.write("".join(shown))
            self.out.flush()

    def _status(self, message: str) -> None:
        self.err.write(f"meshlogs: {message}\n")
        self.err.flush()
