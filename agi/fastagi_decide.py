"""The FastAGI decision: one Redis read on the loop, then the Route and its AGI lines.

A decision is a pure function of the extension, the two hashes and the server's
fixed Config, and the hashes are a pure function of the bytes Redis sent. So what
was made of a reply (the Route, its EXEC MSet lines, its VERBOSE line) is kept by
the exact reply bytes, in a small LRU: Redis is still read on every call, and a
changed setting changes the bytes, so it applies on the very next call. A hit saves
the RESP parse, the settings read, the Route and the quoting (most of the server's
CPU per call after the sockets); it is what a real PBX gets too, since calls to one
extension read the same bytes until someone changes a setting.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from agi import routing, service
from agi.config import Config
from agi.guard import is_extension
from agi.protocol import command_line, set_variables_commands, verbose_command
from agi.resp import RespError, RespTimeout
from agi.resp_async import AsyncRespPool, ReplyMemo, Sent
from agi.schema import company_key, ext_key

# Bounds of the memo: entries, and the size of one reply worth keeping (a typical
# reply is ~1 KB; a company hash with a huge DID map is read and decided, not kept).
MEMO_ENTRIES = 1024
MEMO_MAX_REPLY_BYTES = 16 * 1024


class Decision:
    """A Route with its AGI command lines, encoded once."""

    __slots__ = ("commands", "log_line", "route")

    def __init__(self, ext: str, route: routing.Route) -> None:
        self.route = route
        self.commands = tuple(map(command_line, set_variables_commands(route.variables())))
        line = service.route_log_line(ext, route)
        self.log_line = None if line is None else command_line(verbose_command(line, 1))


class DecisionCache:
    """Decisions by (extension, exact reply bytes), least recently used dropped first."""

    def __init__(self, config: Config, entries: int = MEMO_ENTRIES) -> None:
        self.config = config
        self.entries = entries
        self._known: OrderedDict[tuple[str, bytes], Decision] = OrderedDict()
        self.hits = 0

    def get(self, ext: str, raw: bytes) -> Decision | None:
        decision = self._known.get((ext, raw))
        if decision is not None:
            self._known.move_to_end((ext, raw))
            self.hits += 1
        return decision

    def make(self, ext: str, raw: bytes | None, hashes: list[dict[str, str]]) -> Decision:
        fields, company = hashes
        decision = Decision(ext, routing.decide(ext, fields, company, self.config))
        if raw is not None and len(raw) <= MEMO_MAX_REPLY_BYTES:
            self._known[(ext, raw)] = decision
            if len(self._known) > self.entries:
                self._known.popitem(last=False)
        return decision

    def __len__(self) -> int:
        return len(self._known)


class _Memo(ReplyMemo):
    __slots__ = ("cache", "ext")

    def __init__(self, cache: DecisionCache, ext: str) -> None:
        self.cache = cache
        self.ext = ext

    def known(self, raw: bytes) -> Decision | None:
        return self.cache.get(self.ext, raw)

    def made(self, raw: bytes | None, hashes: list[dict[str, str]]) -> Decision:
        return self.cache.make(self.ext, raw, hashes)


def _keys(config: Config, ext: str) -> list[str]:
    return [ext_key(config.prefix, ext), company_key(config.prefix)]


def read_early(pool: AsyncRespPool, cache: DecisionCache, ext: str) -> Sent | None:
    """Send the Redis read of `ext`'s decision now (see pool.send_early); `decide`
    with the Sent reads its reply. Only a valid extension is read."""
    return pool.send_early(_keys(cache.config, ext)) if is_extension(ext) else None


async def decide(pool: AsyncRespPool, cache: DecisionCache, ext: str,
                 sent: Sent | None = None) -> Decision:
    """service.compute_route, with the Redis read on the loop (already sent, if `sent`
    is read_early's for this extension)."""
    config = cache.config
    if not is_extension(ext):
        return Decision(ext, routing.invalid_extension(ext))
    deadline = time.monotonic() + config.timeout_ms / 1000
    try:
        return await pool.hgetall_many(_keys(config, ext), deadline, _Memo(cache, ext),
                                       sent)
    except RespError as exc:
        return Decision(ext, routing.fallback(ext, config, f"store: {exc}",
                                              isinstance(exc, RespTimeout)))
