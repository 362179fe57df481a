"""HS256 JWTs: the anon and service_role API keys, user access tokens, and their verification.

Supabase signs every key and token with one project secret; so do we, which is what lets supabase-js
and the Python clients talk to meshlogs unchanged. The secret comes from ``MESHLOGS_JWT_SECRET`` or is
generated once and kept in ``DATA_DIR/jwt_secret`` (mode 0600), so restarts keep issued tokens valid.

Verification is deliberately narrow: only HS256 (``alg: none`` and RS/ES confusion are refused by
PyJWT's algorithm allow-list), ``exp`` is required, and the ``role`` claim must be one of the three
Supabase roles. The role ends up in ``SET LOCAL ROLE``, so a forged ``role: postgres`` must never pass.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Final

import jwt

from meshlogs.config import Settings
from meshlogs.errors import TokenError

__all__ = [
    "API_KEY_EXP",
    "API_KEY_IAT",
    "ROLES",
    "load_jwt_secret",
    "mint_access_token",
    "mint_api_key",
    "verify_token",
]

ROLES: Final = frozenset({"anon", "authenticated", "service_role"})
ALGORITHM: Final = "HS256"
#: API keys are fixed for a given secret (fixed iat and exp, like Supabase's ten-year keys), so
#: ``meshlogs keys`` prints the same keys every time and configs that embed them keep working.
API_KEY_IAT: Final = 1767225600  # 2026-01-01T00:00:00Z
API_KEY_EXP: Final = 4102444800  # 2100-01-01T00:00:00Z
ISSUER: Final = "meshlogs"


def load_jwt_secret(settings: Settings) -> str:
    """The signing secret: the configured one, or the one kept in the data dir (created if absent)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt_secret"
    try:
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting together agree on one secret (the loser re-reads it).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    return secret


def mint_api_key(secret: str, role: str) -> str:
    """The API key (``apikey`` header / query parameter) for ``anon`` or ``service_role``."""
    if role not in {"anon", "service_role"}:
        raise ValueError(f"API keys are for anon or service_role, not {role!r}")
    claims = {"iss": ISSUER, "role": role, "iat": API_KEY_IAT, "exp": API_KEY_EXP}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_access_token(
    secret: str,
    *,
    user_id: str,
    email: str | None,
    ttl: int,
    session_id: str | None = None,
    now: float | None = None,
) -> str:
    """A user access token shaped like Supabase Auth's (``sub``, ``role``, ``aud``, ``exp``, ``email``)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    iat = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email or "",
        "phone": "",
        "iat": iat,
        "exp": iat + ttl,
        "session_id": session_id or str(uuid.uuid4()),
        "is_anonymous": False,
        "aal": "aal1",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, now: float | None = None, leeway: int = 0) -> dict[str, Any]:
    """Verify a key or access token and return its claims.

    Raises:
        TokenError: malformed, wrong algorithm, bad signature, expired, missing/unknown role, or an
            ``authenticated`` token without ``sub``/``aud``. The message is safe to return to clients.
    """
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise TokenError("invalid JWT: empty or oversized token", "malformed")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"], "verify_aud": False, "verify_iat": False},
            leeway=leeway if now is None else leeway + (time.time() - now),
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("JWT has expired", "expired", expired_at=_unverified_exp(token)) from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("invalid JWT: only HS256 tokens are accepted", "malformed") from None
    except jwt.InvalidSignatureError:
        raise TokenError("invalid JWT: signature does not match", "signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"invalid JWT: missing claim {exc.claim!r}", "missing_claims") from None
    except jwt.DecodeError:
        raise TokenError("invalid JWT: DecodeError", "malformed") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid JWT: {type(exc).__name__}") from None
    role = claims.get("role")
    if role is None:
        raise TokenError("invalid JWT: missing claim 'role'", "missing_claims")
    if role not in ROLES:
        raise TokenError("invalid JWT: role claim must be anon, authenticated or service_role")
    if role == "authenticated":
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("invalid JWT: authenticated tokens need a sub claim")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if "authenticated" not in auds:
            raise TokenError("invalid JWT: audience must be 'authenticated'")
    return claims


def _unverified_exp(token: str) -> float | None:
    """The ``exp`` of a token already known to be expired (for "expired N seconds ago")."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None
