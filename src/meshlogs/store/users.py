"""Users in ``auth.users``: created by ``meshlogs users add``, signup, or the demo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from meshlogs.auth.passwords import hash_password

__all__ = ["User", "create_user", "find_user_by_email", "normalize_email"]


@dataclass(frozen=True)
class User:
    id: str
    email: str
    encrypted_password: str | None


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively, as Supabase Auth does."""
    return email.strip().lower()


def find_user_by_email(conn: psycopg.Connection[Any], email: str) -> User | None:
    row = conn.execute(
        "select id::text, email, encrypted_password from auth.users where lower(email) = %s",
        (normalize_email(email),),
    ).fetchone()
    return None if row is None else User(row[0], row[1], row[2])


def create_user(conn: psycopg.Connection[Any], email: str, password: str) -> User:
    """Insert a confirmed user with an argon2id password hash."""
    row = conn.execute(
        "insert into auth.users (id, email, encrypted_password, email_confirmed_at, aud, role)"
        " values (gen_random_uuid(), %s, %s, now(), 'authenticated', 'authenticated')"
        " returning id::text, email",
        (normalize_email(email), hash_password(password)),
    ).fetchone()
    assert row is not None
    return User(row[0], row[1], None)
