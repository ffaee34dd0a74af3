"""Web accounts: users with roles, bearer tokens and the login brute-force guard.

Everything lives in Redis next to the extensions, so the CLI and every callroute-web
process share it and a revocation takes effect at the next request. Passwords are
argon2id hashes; tokens are stored only as their SHA-256 digest (a token is 256 random
bits, so a fast digest is enough and lookups stay one round trip) with a Redis TTL.
argon2 and redis-py are imported here only, never by the call path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agi import schema
from agi.admin import audit
from agi.admin.inputs import Actor
from agi.guard import is_extension
from agi.schema import credentials_key, user_key, users_key
from agi.store import AdminStore, StoreError, redact_url

ROLE_ADMIN, ROLE_USER = "admin", "user"
ROLES = (ROLE_ADMIN, ROLE_USER)
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
PASSWORD_LENGTH = (12, 1024)
TOKEN_HOURS_DEFAULT = 12
TOKEN_HOURS_MAX = 24 * 366
# Brute force: this many failures per username or per address lock both out for the window.
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60

F_ROLE, F_EXTENSIONS, F_PASSWORD, F_CREATED = "role", "extensions", "password", "created"


def token_key(prefix: str, token: str) -> str:
    """The key of a token (or session) secret: its digest, never the secret itself."""
    return schema.token_key(prefix, hashlib.sha256(token.encode()).hexdigest())


def failures_key(prefix: str, kind: str, value: str) -> str:
    # Hashed: the username or address an attacker sends is never used raw in a key.
    return schema.login_failures_key(prefix, kind,
                                     hashlib.sha256(value.encode()).hexdigest()[:32])


class AccountError(ValueError):
    """Refused account input or operation; `code` and `field` as in the API's errors."""

    def __init__(self, code: str, field: str, message: str):
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class User:
    name: str
    role: str
    extensions: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    def may_access(self, ext: str) -> bool:
        return self.is_admin or ext in self.extensions

    def to_json(self) -> dict:
        return {"username": self.name, "role": self.role, "extensions": list(self.extensions)}


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise AccountError("invalid_username", "username",
                           f"{name[:40]!r} is not a user name (lowercase letters, digits, "
                           "'.', '_' or '-', at most 32, starting with a letter or digit)")
    return name


def check_password(password: str) -> str:
    low, high = PASSWORD_LENGTH
    if not low <= len(password) <= high or not password.isprintable():
        raise AccountError("weak_password", "password",
                           f"a password must be {low} to {high} printable characters")
    return password


def check_role(role: str, extensions: list[str]) -> tuple[str, tuple[str, ...]]:
    if role not in ROLES:
        raise AccountError("invalid_choice", "role", f"role must be one of {', '.join(ROLES)}")
    for ext in extensions:
        if not is_extension(ext):
            raise AccountError("invalid_extension", "extensions",
                               f"{ext[:40]!r} is not a valid extension")
    return role, tuple(dict.fromkeys(extensions))


def generate_password() -> str:
    """144 random bits, URL-safe: easy to paste, never worth guessing."""
    return secrets.token_urlsafe(18)


class Accounts:
    """Users, tokens and login failures in Redis, through the admin store's client."""

    def __init__(self, store: AdminStore):
        import redis
        from argon2 import PasswordHasher

        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)
        self.store = store
        self.client = store.client
        self.prefix = store.prefix
        self._url = store.config.redis_url
        self._hasher = PasswordHasher()  # argon2id, the library's current parameters

    @functools.cached_property
    def dummy_hash(self) -> str:
        """Verified when the user is unknown, so both answers take the same time. Made on
        first use: CLI commands never need it, callroute-web makes it at start-up."""
        return self._hasher.hash(generate_password())

    def _call(self, what: str, func: Callable):
        try:
            return func()
        except self._errors as exc:
            raise StoreError(f"cannot {what}: Redis at {redact_url(self._url)} failed "
                             f"({type(exc).__name__})") from None

    # ---- users -----------------------------------------------------------------------------

    def get_user(self, name: str) -> User | None:
        fields = self._call("read the user", lambda: self.client.hgetall(
            user_key(self.prefix, name))) if USERNAME.fullmatch(name) else {}
        return user_from_fields(name, fields) if fields else None

    def list_users(self) -> list[User]:
        names = sorted(self._call("list users", lambda: self.client.smembers(
            users_key(self.prefix))))
        return [user for user in map(self.get_user, names) if user is not None]

    def add_user(self, name: str, role: str, extensions: list[str], password: str, *,
                 actor: Actor) -> User:
        check_username(name)
        role, exts = check_role(role, extensions)
        hashed = self._hasher.hash(check_password(password))
        fields = {F_ROLE: role, F_EXTENSIONS: json.dumps(list(exts)), F_PASSWORD: hashed,
                  F_CREATED: _iso(datetime.now(UTC))}
        record = _account_record(actor, audit.USER_ADD, name, {F_ROLE: role,
                                                         F_EXTENSIONS: fields[F_EXTENSIONS]})

        def write() -> bool:
            if not self.client.hsetnx(user_key(self.prefix, name), F_ROLE, role):
                return False
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(user_key(self.prefix, name), mapping=fields)
            pipe.sadd(users_key(self.prefix), name)
            self.store.add_audit(pipe, record)
            pipe.execute()
            return True

        if not self._call("add the user", write):
            raise AccountError("exists", "username", f"user {name} already exists")
        return User(name, role, exts)

    def remove_user(self, name: str, *, actor: Actor) -> None:
        """Delete the user and, in the same MULTI, every token and session it holds, and
        the audit record."""
        user = self.get_user(name)
        if user is None:
            raise AccountError("not_found", "username", f"user {name[:40]} does not exist")
        record = _account_record(actor, audit.USER_REMOVE, name, {
            F_ROLE: user.role, F_EXTENSIONS: json.dumps(list(user.extensions))}, removed=True)
        self._revoke_all(name, delete_user=True, record=record)

    def set_password(self, name: str, password: str, *, actor: Actor) -> None:
        """A new password ends every token and session made with the old one. The audit
        record says that it changed, never what it is."""
        if self.get_user(name) is None:
            raise AccountError("not_found", "username", f"user {name[:40]} does not exist")
        hashed = self._hasher.hash(check_password(password))
        record = audit.recorder(actor, audit.USER_PASSWORD, "")(
            {"user": name, F_PASSWORD: "old"}, {"user": name, F_PASSWORD: "new"})

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(user_key(self.prefix, name), F_PASSWORD, hashed)
            self.store.add_audit(pipe, record)
            pipe.execute()

        self._call("set the password", write)
        self._revoke_all(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs. Unknown users cost one argon2 verify too."""
        from argon2.exceptions import InvalidHashError, VerificationError

        fields = self._call("read the user", lambda: self.client.hgetall(
            user_key(self.prefix, name))) if USERNAME.fullmatch(name) else {}
        try:
            self._hasher.verify(fields.get(F_PASSWORD) or self.dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return user_from_fields(name, fields) if fields.get(F_PASSWORD) else None

    # ---- tokens ----------------------------------------------------------------------------

    def create_token(self, name: str, hours: float = TOKEN_HOURS_DEFAULT) -> tuple[str, datetime]:
        if not 0 < hours <= TOKEN_HOURS_MAX:
            raise AccountError("out_of_range", "expires",
                               f"a token lasts more than 0 and at most {TOKEN_HOURS_MAX} hours")
        if self.get_user(name) is None:
            raise AccountError("not_found", "username", f"user {name[:40]} does not exist")
        return self.issue(name, timedelta(hours=hours))

    def issue(self, name: str, lifetime: timedelta, **extra: str) -> tuple[str, datetime]:
        """A new secret for `name` (API token, or a page session with `extra` fields)."""
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC).replace(microsecond=0) + lifetime
        key = token_key(self.prefix, token)
        creds = credentials_key(self.prefix, name)
        seconds = max(1, int(lifetime.total_seconds()))

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping={"user": name, "expires": _iso(expires), **extra})
            pipe.expire(key, seconds)
            pipe.sadd(creds, key)
            pipe.expire(creds, TOKEN_HOURS_MAX * 3600)
            pipe.execute()

        self._call("store the token", write)
        return token, expires

    def token_user(self, token: str) -> User | None:
        """The live user a token belongs to, or None (unknown, expired, revoked, removed)."""
        if not 20 <= len(token) <= 128:
            return None
        name = self._call("read the token", lambda: self.client.hget(
            token_key(self.prefix, token), "user"))
        return self.get_user(name) if name else None

    def revoke_token(self, token: str) -> bool:
        key = token_key(self.prefix, token)
        name = self._call("read the token", lambda: self.client.hget(key, "user"))
        if not name:
            return False

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.srem(credentials_key(self.prefix, name), key)
            pipe.execute()

        self._call("revoke the token", write)
        return True

    def revoke_all(self, name: str) -> int:
        if self.get_user(name) is None:
            raise AccountError("not_found", "username", f"user {name[:40]} does not exist")
        return self._revoke_all(name)

    def _revoke_all(self, name: str, *, delete_user: bool = False,
                    record: dict[str, str] | None = None) -> int:
        creds = credentials_key(self.prefix, name)

        def write() -> int:
            keys = list(self.client.smembers(creds))
            pipe = self.client.pipeline(transaction=True)
            if keys:
                pipe.delete(*keys)
            pipe.delete(creds)
            if delete_user:
                pipe.delete(user_key(self.prefix, name))
                pipe.srem(users_key(self.prefix), name)
            if record is not None:
                self.store.add_audit(pipe, record)
            pipe.execute()
            return len(keys)

        return self._call("revoke the tokens", write)

    # ---- brute force -----------------------------------------------------------------------

    def locked_for(self, name: str, address: str) -> int:
        """Seconds until `name` or `address` may try again; 0 when not locked."""
        keys = [failures_key(self.prefix, "user", name), failures_key(self.prefix, "addr",
                                                                        address)]

        def read() -> list:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            return pipe.execute()

        values = self._call("read login failures", read)
        waits = [ttl for count, ttl in zip(values[::2], values[1::2], strict=True)
                 if count and int(count) >= MAX_FAILURES]
        return max([max(ttl, 1) for ttl in waits], default=0)

    def record_failure(self, name: str, address: str) -> None:
        """Count a failure; the one that reaches the limit starts a full lockout window."""
        for key in (failures_key(self.prefix, "user", name),
                    failures_key(self.prefix, "addr", address)):
            def bump(key: str = key) -> None:
                pipe = self.client.pipeline(transaction=True)
                pipe.incr(key)
                pipe.expire(key, LOCKOUT_S, nx=True)
                count = pipe.execute()[0]
                if count >= MAX_FAILURES:
                    self.client.expire(key, LOCKOUT_S)

            self._call("count the login failure", bump)

    def clear_failures(self, name: str) -> None:
        self._call("clear login failures", lambda: self.client.delete(
            failures_key(self.prefix, "user", name)))


def user_from_fields(name: str, fields: dict[str, str]) -> User:
    """The User of a stored `user:NAME` hash (corrupt values read as no extensions)."""
    try:
        exts = json.loads(fields.get(F_EXTENSIONS) or "[]")
    except ValueError:
        exts = []
    role = fields.get(F_ROLE)
    return User(name, role if role in ROLES else ROLE_USER,
                tuple(e for e in exts if isinstance(e, str)) if isinstance(exts, list) else ())


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _account_record(actor: Actor, action: str, name: str, account: dict[str, str], *,
                    removed: bool = False) -> dict[str, str]:
    """The audit record of an account write: the account's role and extensions (never its
    password hash) appearing, or disappearing when `removed`."""
    shown = {"user": name, **account}
    before, after = (shown, None) if removed else ({}, shown)
    return audit.recorder(actor, action, "")(before, after)
