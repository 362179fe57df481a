"""Password hashing with argon2id (argon2-cffi), the one place passwords are touched."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "needs_rehash", "verify_password"]

# Library defaults (RFC 9106 "low memory" profile): about 50 ms per hash on these machines, which is
# what slows down password guessing; the token endpoint is also rate limited.
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash string (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; False for a mismatch or an unusable stored hash."""
    if not stored_hash:
        # Still spend the time of a verification so that unknown users are not faster.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
