"""A minimal Redis client for the per-call path: one pipelined round trip, hard deadline.

redis-py costs about 150 ms to import here (it pulls in asyncio), more than the rest of
a call put together. The call path needs only AUTH, SELECT and HGETALL, so it speaks
RESP itself; the admin CLI and long-running servers use redis-py.
"""

import socket
import time
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """The store could not answer in time or answered with an error (message has no secret)."""


class RespReplyError(RespError):
    """Redis answered with an error reply: the connection itself was working."""


class RespTimeout(RespError):
    """The deadline passed before Redis connected or answered (the metrics tell a slow
    store from a dead one by this type)."""


SENTINEL_SCHEME = "redis+sentinel"


class RedisTarget:
    """Where and how to connect, parsed from a redis://, rediss://, unix:// URL, or a
    redis+sentinel://[:password@]host:port[,host:port...]/service[/db] URL."""

    __slots__ = ("db", "host", "password", "path", "port", "sentinels", "service", "tls",
                 "username")

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
            raise RespError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        self.sentinels: list[tuple[str, int]] = []
        self.service = ""
        query = dict(item.partition("=")[::2] for item in parts.query.split("&") if item)
        if parts.scheme == SENTINEL_SCHEME:
            self._parse_sentinel(parts.netloc.rpartition("@")[2], parts.path)
            return
        if parts.scheme == "unix":
            self.path, self.host, self.port = parts.path, "", 0
            db_text = query.get("db", "0")
        else:
            self.path = ""
            self.host = parts.hostname or "127.0.0.1"
            try:
                self.port = parts.port or 6379
            except ValueError:
                raise RespError("invalid port in Redis URL") from None
            db_text = parts.path.lstrip("/") or query.get("db", "0")
        if not db_text.isdigit():
            raise RespError("invalid database number in Redis URL")
        self.db = int(db_text)

    def _parse_sentinel(self, hosts: str, path: str) -> None:
        self.path, self.host, self.port = "", "", 0
        for item in hosts.split(","):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise RespError("sentinel addresses must be host:port, comma-separated")
            self.sentinels.append((host.strip("[]"), int(port)))
        service, _, db_text = path.strip("/").partition("/")
        if not service or not (db_text or "0").isdigit():
            raise RespError("a redis+sentinel URL ends with /service or /service/db")
        self.service, self.db = service, int(db_text or "0")


def _command(*words: str) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# Bounds on what one call reads. A real reply is two flat hashes (HGETALL), or for
# Sentinel an array of flat arrays. Past these, a broken or hostile server (or proxy)
# makes the call fall back at once, not recurse, allocate or wait for nonsense.
MAX_DEPTH = 2  # arrays inside arrays (SENTINEL replicas); a third level is refused
MAX_ARRAY_LENGTH = 65_536  # elements: 32,768 fields in one hash (the company's DID map)
MAX_BULK_BYTES = 256 * 1024  # one field or value
MAX_REPLY_BYTES = 1024 * 1024  # everything one reader receives, all replies together
_MAX_DIGITS = 19  # a length or integer this long is already beyond every bound above


def _unreadable(detail: str) -> RespError:
    return RespError(f"Redis sent an unreadable reply ({detail})")


def _number(text: bytes, what: str) -> int:
    """A RESP length or integer: ASCII digits, maybe a minus (int() also takes " 1", "1_0")."""
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or len(digits) > _MAX_DIGITS:
        raise _unreadable(f"non-numeric {what}")
    return int(text)


def _length(text: bytes, limit: int, what: str) -> int:
    """A bulk or array length: -1 (nil) or 0..limit."""
    size = _number(text, what)
    if size > limit:
        raise _unreadable(f"{what} {size} over the limit of {limit}")
    if size < -1:
        raise _unreadable(f"negative {what}")
    return size


class _Reader:
    """Reads RESP2 replies from a socket, never past the deadline or the bounds above;
    anything malformed raises RespError (the caller's FALLBACK), never another error. The
    buffer is consumed by position: slicing off each line would copy the rest each time."""

    __slots__ = ("buf", "deadline", "pos", "received", "sock")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.pos = 0
        self.received = 0

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RespTimeout("Redis did not answer before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise RespTimeout("Redis did not answer before the deadline") from None
        if not chunk:
            raise RespError("Redis closed the connection")
        self.received += len(chunk)
        if self.received > MAX_REPLY_BYTES:
            raise _unreadable(f"more than {MAX_REPLY_BYTES} bytes")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line, self.pos = self.buf[self.pos:end], end + 2
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buf) - self.pos < size + 2:
            self._fill()
        start, end = self.pos, self.pos + size
        if self.buf[end:end + 2] != b"\r\n":
            raise _unreadable("bulk string longer than its length")
        self.pos = end + 2
        return self.buf[start:end]

    def _array(self, count: int, depth: int) -> list:
        items: list = []
        for _ in range(count):
            # Fast path for the usual element, a bulk string already in the buffer: the
            # same checks as reply(), without its calls (a hash is mostly these).
            buf, pos = self.buf, self.pos
            end = buf.find(b"\r\n", pos)
            if end > pos and buf[pos] == 0x24:  # "$"
                size_text = buf[pos + 1:end]
                size = int(size_text) if size_text.isdigit() and len(size_text) < 7 else -1
                stop = end + 2 + size
                if 0 <= size <= MAX_BULK_BYTES and buf[stop:stop + 2] == b"\r\n":
                    items.append(buf[end + 2:stop].decode("utf-8", "replace"))
                    self.pos = stop + 2
                    continue
            items.append(self.reply(depth))
        return items

    def reply(self, depth: int = 0) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":  # first: nearly every reply the call path reads is a bulk string
            size = _length(rest, MAX_BULK_BYTES, "bulk length")
            return None if size < 0 else self._exact(size).decode("utf-8", "replace")
        if kind == b"*":
            count = _length(rest, MAX_ARRAY_LENGTH, "array length")
            if count < 0:
                return None
            if depth >= MAX_DEPTH:
                raise _unreadable(f"arrays nested deeper than {MAX_DEPTH}")
            return self._array(count, depth + 1)
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            # The first word is the error class (WRONGPASS, NOAUTH, WRONGTYPE...): enough
            # to diagnose, and it never echoes a credential back.
            return RespError("Redis error " + rest.split(b" ", 1)[0].decode("ascii", "replace"))
        if kind == b":":
            return _number(rest, "integer")
        raise _unreadable("unknown reply type")


def _connect(target: RedisTarget, deadline: float,
             address: tuple[str, int] | None = None) -> socket.socket:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RespTimeout("no time left to connect to Redis")
    try:
        if target.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(remaining)
            sock.connect(target.path)
        else:
            sock = socket.create_connection(address or (target.host, target.port),
                                            timeout=remaining)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            import ssl  # only for rediss://: ssl costs a few ms to import

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
    except TimeoutError:
        raise RespTimeout("timed out connecting to Redis") from None
    except OSError as exc:
        raise RespError(f"cannot connect to Redis ({exc.strerror or type(exc).__name__})") \
            from None
    except ValueError:  # a host a sentinel named with a NUL or undecodable characters
        raise RespError("cannot connect to Redis (invalid address)") from None
    return sock


def _nodes_from_sentinels(target: RedisTarget, deadline: float) -> list[tuple[str, int]]:
    """The service's master, then its healthy replicas, from the first sentinel that
    answers (both asked in one round trip)."""
    for sentinel in target.sentinels:
        try:
            sock = _connect(target, deadline, sentinel)
        except RespError:
            continue
        try:
            sock.sendall(_command("SENTINEL", "get-master-addr-by-name", target.service)
                         + _command("SENTINEL", "replicas", target.service))
            reader = _Reader(sock, deadline)
            master, replicas = reader.reply(), reader.reply()
        except (RespError, OSError):
            continue
        finally:
            sock.close()
        master_node = _address(*master) if isinstance(master, list) and len(master) == 2 \
            else None
        if master_node is None:
            continue  # this sentinel doesn't know the service (yet), or talks nonsense
        return [master_node, *_healthy_replicas(replicas)]
    raise RespError(f"no sentinel answered for service {target.service!r}")


def _address(host: object, port: object) -> tuple[str, int] | None:
    """A node address from a sentinel's reply, or None if it isn't one."""
    if not (isinstance(host, str) and host and isinstance(port, str) and port.isascii()
            and port.isdigit() and 0 < int(port) < 65536):
        return None
    return host, int(port)


def _healthy_replicas(replicas: object) -> list[tuple[str, int]]:
    nodes = []
    for replica in replicas if isinstance(replicas, list) else []:
        try:
            info = _hash(replica)
        except RespError:
            continue
        flags = info.get("flags", "")
        node = _address(info.get("ip"), info.get("port"))
        if node and not any(bad in flags for bad in ("s_down", "o_down", "disconnected")):
            nodes.append(node)
    return nodes


def _open(target: RedisTarget, deadline: float) -> socket.socket:
    """A connection to the node to read from: the master, or through Sentinel the
    master and, if it can't be reached, a replica. During a failover, settings a few
    seconds old are better than ringing only the default device."""
    if not target.sentinels:
        return _connect(target, deadline)
    nodes = _nodes_from_sentinels(target, deadline)
    for index, node in enumerate(nodes):
        # Share the time left, so an unreachable master leaves time for a replica.
        share = (deadline - time.monotonic()) / (len(nodes) - index)
        try:
            return _connect(target, time.monotonic() + share, node)
        except RespError:
            continue
    raise RespError(f"no node of service {target.service!r} could be reached")


def _preamble(target: RedisTarget) -> list[bytes]:
    """AUTH and SELECT for a new connection, pipelined ahead of the first command."""
    commands: list[bytes] = []
    if target.password is not None:
        auth = ("AUTH", target.username, target.password) if target.username else \
            ("AUTH", target.password)
        commands.append(_command(*auth))
    if target.db:
        commands.append(_command("SELECT", str(target.db)))
    return commands


def _pipeline_hgetall(sock: socket.socket, preamble: list[bytes], keys: list[str],
                      deadline: float) -> list[dict[str, str]]:
    try:
        sock.sendall(b"".join(preamble + [_command("HGETALL", key) for key in keys]))
        reader = _Reader(sock, deadline)
        # An error reply is raised as a NEW exception: `raise answer` would leave the
        # raised exception in a local of this frame, a reference cycle that keeps the
        # whole call stack (a FastAGI call's socket included) alive until the GC runs.
        for _ in preamble:
            answer = reader.reply()
            if isinstance(answer, RespError):
                raise RespReplyError(str(answer))
        hashes = []
        for _ in keys:
            answer = reader.reply()
            if isinstance(answer, RespError):
                raise RespReplyError(str(answer))
            hashes.append(_hash(answer))
        return hashes
    except OSError as exc:
        raise RespError(f"Redis connection failed ({exc.strerror or type(exc).__name__})") \
            from None


def _hash(answer: object) -> dict[str, str]:
    """An HGETALL reply as a dict: a flat array of an even number of strings, nothing else
    (a nil, an integer or a nested array as a field would crash the decision later)."""
    if not isinstance(answer, list):
        raise _unreadable("HGETALL answered without an array")
    if len(answer) % 2:
        raise _unreadable("odd number of elements for a hash")
    if not all(type(item) is str for item in answer):
        raise _unreadable("a hash field or value that is not a string")
    return dict(zip(answer[::2], answer[1::2], strict=True))


def hgetall_many(url: str, keys: list[str], deadline: float) -> list[dict[str, str]]:
    """HGETALL every key in one pipelined round trip on a new connection (process AGI)."""
    target = RedisTarget(url)
    sock = _open(target, deadline)
    try:
        return _pipeline_hgetall(sock, _preamble(target), keys, deadline)
    finally:
        sock.close()
