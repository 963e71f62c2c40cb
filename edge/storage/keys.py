"""API keys with roles (viewer < operator < admin), stored hashed.

A token reads ``qc_<key_id>_<secret>``. The key_id is public and finds the row; only
sha256(salt + secret) is stored, with a random salt per key, and compared in constant time. The
token is shown once, when the key is made; it is never stored or logged. The routes' checks are
edge.api.auth; ``qc keys`` is edge.cli.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from edge.storage.tables import api_keys_table

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
TOKEN_PREFIX = "qc_"


class KeyRefused(ValueError):
    """A key that cannot be made or revoked as asked (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or the anonymous viewer of an open station."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


ANONYMOUS = Principal(name="anonymous", role="viewer")


@dataclass(frozen=True)
class KeyInfo:
    name: str
    role: str
    key_id: str
    created_at: datetime
    revoked_at: datetime | None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=timezone.utc)


class KeyStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, name: str, role: str) -> str:
        """Make a key and return its token (the only time it exists in clear)."""
        if role not in RANK:
            raise KeyRefused(f"role {role!r} is not one of {', '.join(ROLES)}")
        if not name or len(name) > 128:
            raise KeyRefused("a key needs a name of 1 to 128 characters")
        t = api_keys_table
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        with self.engine.begin() as conn:
            taken = conn.execute(
                select(t.c.key_id).where(t.c.name == name, t.c.revoked_at.is_(None))
            ).first()
            if taken is not None:
                raise KeyRefused(f"an active key named {name!r} exists; revoke it first")
            conn.execute(
                t.insert().values(
                    key_id=key_id, name=name, role=role, salt=salt,
                    secret_sha256=_digest(salt, secret), created_at=_now(),
                )
            )
        return f"{TOKEN_PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        t = api_keys_table
        query = select(t.c.name, t.c.role, t.c.key_id, t.c.created_at, t.c.revoked_at).order_by(
            t.c.created_at, t.c.key_id
        )
        with self.engine.connect() as conn:
            return [
                KeyInfo(r.name, r.role, r.key_id, _aware(r.created_at), _aware(r.revoked_at))
                for r in conn.execute(query)
            ]

    def revoke(self, name: str) -> int:
        """Revoke the active key of that name; the row stays, for the record."""
        t = api_keys_table
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t).where(t.c.name == name, t.c.revoked_at.is_(None)).values(revoked_at=_now())
            ).rowcount
        if not n:
            raise KeyRefused(f"no active key named {name!r}")
        return n

    def verify(self, token: str) -> Principal | None:
        """The key's principal, or None for an unknown, malformed or revoked token."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not sep or not key_id or not secret:
            return None
        t = api_keys_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.key_id == key_id, t.c.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        if not hmac.compare_digest(_digest(row.salt, secret), row.secret_sha256):
            return None
        return Principal(name=row.name, role=row.role)


# -- FastAPI dependencies --------------------------------------------------------------------------
