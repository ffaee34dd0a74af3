"""The one-round-trip read for a call, and the admin side's reads and atomic writes.

The schema (key names, fields) is agi/schema.py's. A write and its audit record go in
one MULTI: there is no change without its record, and no record of a refused change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agi.config import Config
from agi.resp import (
    SENTINEL_SCHEME,
    RedisTarget,
    RespError,
    RespTimeout,
    hgetall_many,
)
from agi.schema import (
    F_DID,
    F_SCHEMA,
    SCHEMA_VERSION,
    audit_key,
    company_key,
    did_field,
    ext_key,
    index_key,
)

# Not typing.TYPE_CHECKING: importing typing costs a process-AGI call 2 ms (about 4 %);
# type checkers honour a module's own TYPE_CHECKING by its name.
TYPE_CHECKING = False
if TYPE_CHECKING:  # redis-py stays out of the call path's imports
    from redis.client import Pipeline

# What an admin write adds to the audit stream, given the hash before and after it
# (after: None when the extension is deleted).
Audit = Callable[[dict[str, str], "dict[str, str] | None"], dict[str, str]]
# Admin commands are interactive: a little more patience than a live call gets.
ADMIN_TIMEOUT_S = 3.0


class StoreError(Exception):
    """Redis is unreachable, too slow or refused us. The message never holds a secret."""


class StoreTimeout(StoreError):
    """The call's deadline passed before Redis answered."""


class DidTaken(ValueError):
    """The DID an extension write would give it already belongs to another extension."""

    def __init__(self, did: str, owner: str):
        super().__init__(f"{did} is already the DID of extension {owner}")
        self.did = did
        self.owner = owner


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print or log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The LAST "@": a password may hold "@", "/", "?" or "#" unencoded, and then the
    # URL's own structure can't be trusted to say where it ends.
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        rest = f"{user}:***@{hostpart}"
    # redis-py also takes credentials as query parameters (?password=...).
    base, question, query = rest.partition("?")
    if question:
        query = "&".join(f"{key}=***" if key.lower() in ("password", "username") and eq
                         else f"{key}{eq}{value}"
                         for key, eq, value in (item.partition("=")
                                                for item in query.split("&")))
        rest = f"{base}?{query}"
    return f"{scheme}://{rest}"


def read_call_settings(config: Config, ext: str, deadline: float) -> tuple[dict, dict]:
    """The extension hash and the company hash, in one round trip on a new connection
    (process AGI), before `deadline`. FastAGI reads on its loop (agi/resp_async.py)."""
    keys = [ext_key(config.prefix, ext), company_key(config.prefix)]
    try:
        fields, company = hgetall_many(config.redis_url, keys, deadline)
    except RespTimeout as exc:
        raise StoreTimeout(str(exc)) from None
    except RespError as exc:
        raise StoreError(str(exc)) from None
    return fields, company


class AdminStore:
    """Reads and atomic writes for the CLI, through redis-py."""

    def __init__(self, config: Config):
        import redis  # deferred: ~150 ms, and only admin commands need it

        self._redis_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                              redis.exceptions.AuthenticationError,
                              redis.exceptions.ResponseError)
        self._watch_error = redis.exceptions.WatchError
        self._response_error = redis.exceptions.ResponseError
        self.config = config
        self.prefix = config.prefix
        timeouts = {"socket_connect_timeout": ADMIN_TIMEOUT_S,
                    "socket_timeout": ADMIN_TIMEOUT_S}
        try:
            if config.redis_url.startswith(SENTINEL_SCHEME + "://"):
                self.client = _sentinel_master(config.redis_url, timeouts)
            else:
                self.client = redis.Redis.from_url(config.redis_url, retry=None,
                                                   decode_responses=True, **timeouts)
        except ValueError:  # its message may quote a piece of the URL: the password
            raise StoreError("CALLROUTE_REDIS_URL is malformed (percent-encode a password "
                             "holding '/', '?', '#' or '@')") from None

    def close(self) -> None:
        """Release the connection: a long-lived process (FastAGI) makes one store per
        feature request."""
        self.client.close()

    def _call(self, what: str, func: Callable):
        try:
            return func()
        except self._redis_errors as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            password = self.client.connection_pool.connection_kwargs.get("password")
            if password:
                detail = detail.replace(password, "***")
            raise StoreError(f"cannot {what}: Redis at {redact_url(self.config.redis_url)} "
                             f"failed ({detail})") from None

    def probe(self) -> tuple[float, str, tuple[str, int] | None]:
        """(seconds one PING took, the server's version, the master's address when it is
        found through Sentinel, else None), for `callroute doctor`."""
        def run() -> tuple[float, str, tuple[str, int] | None]:
            pool = self.client.connection_pool
            master = pool.get_master_address() if hasattr(pool, "get_master_address") \
                else None
            self.client.ping()  # connects (and authenticates): only the next one is timed
            started = time.perf_counter()
            self.client.ping()
            elapsed = time.perf_counter() - started
            return elapsed, self.client.info("server").get("redis_version", ""), master

        return self._call("reach Redis", run)

    def get_extension(self, ext: str) -> dict[str, str]:
        return self._call("read the extension",
                          lambda: self.client.hgetall(ext_key(self.prefix, ext)))

    def get_company(self) -> dict[str, str]:
        return self._call("read the company settings",
                          lambda: self.client.hgetall(company_key(self.prefix)))

    def list_extensions(self) -> list[str]:
        members = self._call("list extensions",
                             lambda: self.client.smembers(index_key(self.prefix)))
        return sorted(members, key=lambda e: (len(e), e))

    def stored_extensions(self) -> list[str]:
        """Every extension that has a hash, in the index or not (a hash written by hand
        without the admin layer is not), found by SCAN."""
        start = ext_key(self.prefix, "")
        pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in start) + "*"
        keys = self._call("scan extensions", lambda: list(
            self.client.scan_iter(match=pattern, count=1000, _type="hash")))
        return sorted((key[len(start):] for key in keys), key=lambda e: (len(e), e))

    def all_extensions(self, exts: list[str] | None = None) -> dict[str, dict[str, str]]:
        """Every extension's hash (or those of `exts`), fetched in one pipeline.

        A key that is not a hash (written by something else) reads as no settings,
        which is what its calls get too (they ring the default phone): one such key
        must not hide every other extension from a list, nor refuse every new DID.
        wrong_types() names it."""
        exts = self.list_extensions() if exts is None else exts

        def fetch() -> list:
            pipe = self.client.pipeline(transaction=False)
            for ext in exts:
                pipe.hgetall(ext_key(self.prefix, ext))
            replies = pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception) and not self._wrong_type(reply):
                    raise reply
            return [{} if isinstance(reply, Exception) else reply for reply in replies]

        return dict(zip(exts, self._call("read extensions", fetch), strict=True))

    def wrong_types(self, exts: list[str]) -> dict[str, str]:
        """The extensions of `exts` whose key holds something else than a hash, with
        its Redis type (string, list...)."""
        def fetch() -> list:
            pipe = self.client.pipeline(transaction=False)
            for ext in exts:
                pipe.type(ext_key(self.prefix, ext))
            return pipe.execute()

        types = self._call("read key types", fetch)
        return {ext: kind for ext, kind in zip(exts, types, strict=True)
                if kind not in ("hash", "none")}

    def _wrong_type(self, error: Exception) -> bool:
        return isinstance(error, self._response_error) and str(error).startswith("WRONGTYPE")

    def update_extension(self, ext: str,
                         change: Callable[[dict[str, str]], dict[str, str] | None],
                         audit: Audit | None = None) -> tuple[dict, dict]:
        """Apply `change` to the extension's fields atomically (WATCH/MULTI); (old, new).

        `change` gets the current fields (empty if absent) and returns the complete new
        hash, or None to delete it. It may raise to abort; then nothing is written. The
        hash is replaced inside one MULTI, so a call never reads a half-written change;
        the audit record (if any) is added in the same MULTI.

        The company's DID map changes in the same MULTI: the extension's DID maps to it
        (rewritten on every write, which also indexes DIDs stored before the map existed)
        and a DID it no longer has stops mapping to it. DidTaken if the map gives the new
        DID to another extension.
        """
        key = ext_key(self.prefix, ext)
        company = company_key(self.prefix)

        def attempt() -> tuple[dict, dict]:
            while True:
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key, company)
                        old = self._hash_or_nothing(pipe, key)
                        new = change(dict(old))
                        old_did = old.get(F_DID, "")
                        new_did = (new or {}).get(F_DID, "")
                        if new_did:
                            owner = pipe.hget(company, did_field(new_did))
                            if owner not in (None, ext):
                                raise DidTaken(new_did, owner)
                        stale = old_did and old_did != new_did and pipe.hget(
                            company, did_field(old_did)) == ext
                        pipe.multi()
                        pipe.delete(key)
                        if new is None:
                            pipe.srem(index_key(self.prefix), ext)
                        else:
                            new = {**new, F_SCHEMA: SCHEMA_VERSION}
                            pipe.hset(key, mapping=new)
                            pipe.sadd(index_key(self.prefix), ext)
                        if stale:
                            pipe.hdel(company, did_field(old_did))
                        if new_did:
                            pipe.hset(company, did_field(new_did), ext)
                        if audit is not None:
                            self.add_audit(pipe, audit(dict(old), new))
                        pipe.execute()
                        return dict(old), new or {}
                    except self._watch_error:
                        continue

        return self._call("update the extension", attempt)

    def _hash_or_nothing(self, pipe: Pipeline, key: str) -> dict[str, str]:
        """The hash at `key` (read under WATCH), or {} where a key of another type
        stands: the write's MULTI deletes it first, so 'callroute ext add' repairs it."""
        try:
            return pipe.hgetall(key)
        except self._response_error as exc:
            if self._wrong_type(exc):
                return {}
            raise

    def update_company(self, change: Callable[[dict[str, str]], dict[str, str | None]],
                       audit: Audit | None = None) -> dict[str, str]:
        """Set the company fields `change` returns (None: delete the field), given the
        current hash; atomically, with the audit record in the same MULTI. The new hash."""
        key = company_key(self.prefix)

        def attempt() -> dict[str, str]:
            while True:
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)
                        old = pipe.hgetall(key)
                        changes = change(dict(old))
                        new = {k: v for k, v in {**old, **changes}.items() if v is not None}
                        kept = {k: v for k, v in changes.items() if v is not None}
                        gone = [k for k, v in changes.items() if v is None and k in old]
                        pipe.multi()
                        if kept:
                            pipe.hset(key, mapping=kept)
                        if gone:
                            pipe.hdel(key, *gone)
                        if audit is not None:
                            self.add_audit(pipe, audit(dict(old), new))
                        pipe.execute()
                        return new
                    except self._watch_error:
                        continue

        return self._call("update the company settings", attempt)

    def add_audit(self, pipe: Pipeline, record: dict[str, str]) -> None:
        """Queue `record` on `pipe`, the MULTI of the write it describes."""
        pipe.xadd(audit_key(self.prefix), record, maxlen=self.config.audit_max,
                  approximate=True)

    def read_audit(self, count: int, before: str = "") -> list[tuple[str, dict[str, str]]]:
        """Up to `count` audit records (id, fields), newest first, older than the record
        id `before` if given."""
        newest = f"({before}" if before else "+"
        return self._call("read the audit trail", lambda: self.client.xrevrange(
            audit_key(self.prefix), max=newest, min="-", count=count))


def _sentinel_master(url: str, timeouts: dict):
    """A client that always writes to the current master, found through Sentinel."""
    from redis.sentinel import Sentinel

    try:
        target = RedisTarget(url)
    except RespError as exc:
        raise StoreError(str(exc)) from None
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=dict(timeouts), **timeouts)
    return sentinel.master_for(target.service, db=target.db, password=target.password,
                               username=target.username, decode_responses=True)
