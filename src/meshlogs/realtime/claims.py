"""Who a subscriber is, as far as RLS is concerned: the role and claims of a verified JWT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Claims"]

# Claims that change with every token of the same session but never change what RLS lets a user see
# in meshlogs' policies (they read auth.uid() only). Leaving them out of the grouping key lets a user's
# refreshed token share cached decisions with the old one.
_VOLATILE = frozenset({"exp", "iat", "nbf", "jti", "session_id"})


@dataclass(frozen=True)
class Claims:
    """Verified JWT claims. ``key`` groups subscribers whose RLS view is the same.

    Attributes:
        role: ``anon``, ``authenticated`` or ``service_role`` (checked by token verification).
        sub: the user id for ``authenticated``, else None.
        raw: every claim, as set into ``request.jwt.claims`` for RLS.
        expires_at: ``exp`` as a Unix time, when present.
    """

    role: str
    sub: str | None
    raw: dict[str, Any] = field(compare=False, hash=False)
    expires_at: float | None = field(default=None, compare=False, hash=False)
    key: str = field(default="", compare=False)

    @classmethod
    def from_jwt(cls, claims: dict[str, Any]) -> Claims:
        stable = {k: v for k, v in claims.items() if k not in _VOLATILE}
        key = orjson.dumps(stable, option=orjson.OPT_SORT_KEYS).decode()
        exp = claims.get("exp")
        return cls(
            role=str(claims["role"]),
            sub=str(claims["sub"]) if claims.get("sub") else None,
            raw=dict(claims),
            expires_at=float(exp) if isinstance(exp, int | float) else None,
            key=key,
        )

    @property
    def bypasses_rls(self) -> bool:
        return self.role == "service_role"

    def claims_json(self) -> str:
        return orjson.dumps(self.raw).decode()
