"""Every FastAGI session of the server: admission, deadlines and the three scripts.

A connection is admitted when it is made (allowlist, then the cap, which sheds the
oldest idle connection); its environment must then arrive in full within
`env_timeout`, and the whole session end within `session_timeout`. Only then does
it reach a script. What happens is counted in `self.metrics` (agi/metrics.py): every
decision with its Route and how long the Redis read and the decision took, every
connection refused or shed with its cause.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from concurrent.futures import Executor

from agi import metrics, service
from agi.config import Config
from agi.fastagi_conn import AgiConnection, BadRequest, BridgedSession, ConnectionTable
from agi.fastagi_decide import Decision, DecisionCache, decide, read_early
from agi.fastagi_logs import OutageLog, ThrottledLog
from agi.features import handle_feature
from agi.protocol import (
    AgiProtocolError,
    ChannelHungUp,
    check_exec_result,
    command_line,
    parse_result,
    set_variable_command,
    verbose_command,
)
from agi.resp_async import AsyncRespPool

log = logging.getLogger("callroute.fastagi")

SCRIPT_ROUTE = "route"
SCRIPT_HEALTH = "health"
SCRIPT_FEATURE = "feature"
HEALTH_VARIABLE = "CALLROUTE_HEALTH"
_HEALTH_COMMAND = command_line(set_variable_command(HEALTH_VARIABLE, "OK"))
MAX_VERDICTS = 1024


class Sessions:
    """The connection handling of one server (it owns the listening socket and the loop)."""

    def __init__(self, config: Config, pool: AsyncRespPool, executor: Executor, *,
                 allow: frozenset, env_timeout: float, session_timeout: float,
                 max_connections: int, max_line: int,
                 recorder: metrics.Recorder = metrics.NULL) -> None:
        self.config = config
        self.metrics = recorder
        self.pool = pool
        self.executor = executor
        self.allow = allow
        self.env_timeout = env_timeout
        self.session_timeout = session_timeout
        self.max_line = max_line
        self.table = ConnectionTable(max_connections, self._shed)
        self.decisions = DecisionCache(config)
        self.refusals = ThrottledLog()
        self.outages = OutageLog()
        self.closing = False  # set once the server stops accepting
        # The allowlist's answer by peer address: parsing an address costs more than
        # the rest of accepting a connection.
        self._verdicts: dict[str, bool] = {}

    def protocol(self) -> AgiConnection:
        """The protocol factory of the listening socket."""
        return AgiConnection(self.max_line, self._open, self._script_named)

    # -- admission ----------------------------------------------------------------------

    def _allowed(self, peer: tuple | None) -> bool:
        if not peer:
            return False
        host = peer[0]
        if (allowed := self._verdicts.get(host)) is None:
            client = ipaddress.ip_address(host.split("%", 1)[0])
            if getattr(client, "ipv4_mapped", None):
                client = client.ipv4_mapped
            allowed = client in self.allow if self.allow else client.is_loopback
            if len(self._verdicts) >= MAX_VERDICTS:  # many peers: start again
                self._verdicts.clear()
            self._verdicts[host] = allowed
        return allowed

    def _open(self, conn: AgiConnection) -> None:
        peer = conn.peer
        if not self._allowed(peer):
            self.refusals.warning("allow", "refused FastAGI connection from "
                                  f"{peer[0] if peer else '?'} (not in --allow)")
            self.metrics.refused("allowlist")
            conn.close()
        elif self.closing or not self.table.admit(conn):
            self.refusals.warning("busy", "refused FastAGI connection: "
                                  f"{self.table.busy} calls in flight")
            self.metrics.refused("draining" if self.closing else "cap")
            conn.close()
        else:
            conn.task = asyncio.get_running_loop().create_task(self._session(conn))

    def _script_named(self, conn: AgiConnection, script: str) -> None:
        """`route/<extension>` (docs/dialplan-contract.md): send its Redis read now,
        while Asterisk still writes the rest of the environment (for longer than the
        read takes). Nothing is decided before the environment is complete, and the
        call's extension is still agi_arg_1: _decision reads this reply only if they
        are the same."""
        name, hint = script_parts(script)
        if name == SCRIPT_ROUTE and not self.closing and (
                sent := read_early(self.pool, self.decisions, hint)) is not None:
            conn.early = (hint, sent)

    def _shed(self, open_now: int) -> None:
        self.refusals.warning("shed", "closed the oldest idle FastAGI connection: "
                              f"{open_now} connections open")
        self.metrics.shed("idle_at_cap")

    # -- one session --------------------------------------------------------------------

    async def _session(self, conn: AgiConnection) -> None:
        started = asyncio.get_running_loop().time()
        conn.deadline(started + min(self.env_timeout, self.session_timeout))
        stage = "env_timeout"
        try:
            env = await conn.read_env()
            self.table.mark_busy(conn)
            conn.deadline(started + self.session_timeout)
            stage = "session_timeout"
            await self._dispatch(conn, env)
        except (ChannelHungUp, BadRequest, AgiProtocolError) as exc:
            log.debug("FastAGI session ended early: %s", exc)
            self.metrics.shed(metrics.SHED_CAUSES[type(exc).__name__])
        except asyncio.CancelledError:  # its deadline; shed or cut (counted there)
            if conn.expired:
                log.debug("FastAGI session ended: deadline passed")
                self.metrics.shed(stage)
        except Exception:  # a bug: log it once per occurrence, keep serving others
            log.exception("FastAGI session failed")
            self.metrics.shed("error")
        finally:
            conn.cancel_deadline()
            self.table.remove(conn)
            conn.close()
            if conn.early is not None:  # the request never got as far as its decision
                self.pool.discard(conn.early[1])

    async def _dispatch(self, conn: AgiConnection, env: dict[str, str]) -> None:
        script, _ = script_parts(env.get("agi_network_script", ""))
        if script == SCRIPT_ROUTE:
            await self._route(conn, env)
        elif script == SCRIPT_HEALTH:
            parse_result(await conn.finish(_HEALTH_COMMAND))
        elif script == SCRIPT_FEATURE:
            loop = asyncio.get_running_loop()
            session = BridgedSession(conn, loop, time.monotonic() + self.session_timeout)
            self.metrics.feature(await loop.run_in_executor(
                self.executor, handle_feature, session, [], self.config))
        else:
            line = f"callroute: unknown FastAGI script {script[:40]!r}"
            parse_result(await conn.finish(command_line(verbose_command(line, 1))))

    async def _route(self, conn: AgiConnection, env: dict[str, str]) -> None:
        """service.handle_route on the loop: the same decision and commands, the last
        MSet sent with the VERBOSE line (if any) and the end of the session."""
        started = time.perf_counter()
        decision = await self._decision(conn, service.request_extension(env, []))
        elapsed = time.perf_counter() - started
        # Logged before the answer goes out: once a call has its answer, the log says
        # why it fell back (OutageLog writes only when the state changes).
        self.outages.record(decision.route)
        *first, last = decision.commands
        tail = [last] if decision.log_line is None else [last, decision.log_line]
        try:
            for command in first:
                check_exec_result(parse_result(await conn.exchange(command)))
            conn.send_last(tail)
        except AgiProtocolError as exc:  # the rest of the decision must not run alone
            line = f"callroute: Asterisk refused a command: {exc}"
            parse_result(await conn.finish(command_line(verbose_command(line, 1))))
            return
        finally:  # counted whatever became of the commands, once the call's are out
            self.metrics.decision(decision.route, elapsed)
        replies = await conn.replies(len(tail))
        refused = []
        for reply in replies:
            try:
                check_exec_result(parse_result(reply))
            except AgiProtocolError as exc:
                refused.append(str(exc))
        if refused:  # too late for Asterisk's log (our side is closed): in ours
            self.refusals.warning("command", f"Asterisk refused {len(refused)} of "
                                  f"{len(replies)} commands: {refused[0]}")

    async def _decision(self, conn: AgiConnection, ext: str) -> Decision:
        sent = None
        if (early := conn.early) is not None:
            conn.early = None
            hint, sent = early
            if hint != ext:  # a dialplan that named another extension: agi_arg_1 decides
                self.pool.discard(sent)
                sent = None
        return await decide(self.pool, self.decisions, ext, sent)


def script_parts(script: str) -> tuple[str, str]:
    """agi_network_script -> (script name, the rest of its path): `route/1001?x` is
    ("route", "1001"); a query string or slashes around it change nothing."""
    name, _, rest = script.split("?", 1)[0].strip("/").partition("/")
    return name, rest
