"""Token-bucket rate limiting with bounded memory, for the Auth endpoints.

Pure: time is passed in. Each key (e.g. ``"pw:<ip>:<email>"``) has a bucket of ``capacity`` tokens that
refills continuously over ``period`` seconds. At most ``max_keys`` buckets are kept; when a new key
arrives at the bound the least recently used bucket is dropped (overflow policy). Dropping a bucket
forgets its debt, so callers pair a fine key (IP + email) with a coarse one (IP alone): creating enough
fresh keys to evict one's own bucket costs more requests than the coarse bucket allows.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by string.

    Args:
        capacity: requests allowed in a burst (and per ``period`` on average).
        period: seconds for a bucket to refill completely.
        max_keys: most buckets remembered (least recently used evicted first).
    """

    def __init__(self, capacity: int, period: float, max_keys: int = 10_000) -> None:
        if capacity < 1 or period <= 0 or max_keys < 1:
            raise ValueError("capacity, period and max_keys must be positive")
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        """Take one token from ``key``'s bucket; False (and nothing taken) when it is empty."""
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
