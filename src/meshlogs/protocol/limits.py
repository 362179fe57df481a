"""Per-connection limits and the sliding-window counter that enforces rates with a passed-in clock.

Defaults follow Supabase Realtime (``config/runtime.exs``, ``api/tenant.ex``) where meshlogs has no
reason to differ: 100 channels per socket, 100 joins per second, 60 s idle timeout (Phoenix's
WebSocket default). The frame limit is 1 MiB instead of Supabase's 5 MB: meshlogs carries log lines
and small broadcasts, and every byte of the limit is memory a client can make us hold per frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Limits", "RateWindow"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one Realtime connection.

    Attributes:
        max_frame_bytes: largest inbound frame; larger ones close the socket with 1009.
        max_channels: channels (joining or joined) per socket; one more join is refused with
            ``ChannelRateLimitReached: Too many channels``.
        max_joins_per_second: ``phx_join`` messages per socket in any one-second window; one more
            is refused with ``ClientJoinRateLimitReached: Too many joins per second`` and the
            socket is closed (Supabase drops the socket too).
        idle_timeout: seconds without any inbound frame after which the server should close the
            socket (clients heartbeat every 25 s).
    """

    max_frame_bytes: int = 1 << 20
    max_channels: int = 100
    max_joins_per_second: int = 100
    idle_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_channels", "max_joins_per_second"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
        if not self.idle_timeout > 0:
            raise ValueError("Limits.idle_timeout must be positive")


class RateWindow:
    """At most ``limit`` events in any ``window``-second span, measured with caller-supplied times.

    Memory is bounded by ``limit`` timestamps. Times come from the caller (a monotonic clock in
    production, plain numbers in tests); if they go backwards the window only gets stricter until
    time catches up.
    """

    __slots__ = ("_times", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Record one event at ``now`` if it fits.

        Args:
            now: the current time in seconds.

        Returns:
            Whether the event is within the limit (and was recorded).
        """
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True
