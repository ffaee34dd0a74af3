"""One AGI request, start to finish, shared by process AGI and FastAGI."""

import time

from agi import routing
from agi import variables as v
from agi.config import Config, ConfigError, load
from agi.guard import is_extension
from agi.protocol import AgiProtocolError, AgiSession, ChannelHungUp
from agi.store import StoreError, StoreTimeout, read_call_settings


def compute_route(config: Config, ext: str) -> routing.Route:
    """Read the settings (one round trip, under the deadline) and decide. Never raises."""
    if not is_extension(ext):
        return routing.invalid_extension(ext)
    deadline = time.monotonic() + config.timeout_ms / 1000
    try:
        fields, company = read_call_settings(config, ext, deadline)
    except StoreError as exc:
        return routing.fallback(ext, config, f"store: {exc}", isinstance(exc, StoreTimeout))
    return routing.decide(ext, fields, company, config)


def request_extension(env: dict[str, str], argv: list[str]) -> str:
    """The extension the dialplan asks about, from the command line or AGI environment.

    Process AGI gets the extension on its command line too, which no caller-controlled
    text can forge; the environment (all FastAGI has) is protected by the dialplan.
    Never agi_extension: the dialplan runs us inside a Gosub, where it is `s`, so a
    request without the argument would route extension "s". It is INVALID instead.
    """
    return argv[0] if argv else env.get("agi_arg_1", "")


def route_log_line(ext: str, route: routing.Route) -> str | None:
    """The VERBOSE line for a decision that is not OK (one per affected call, no
    traceback: an outage must not flood the log); None for OK."""
    if route.status == v.STATUS_OK:
        return None
    return f"callroute: ext {ext[:40]!r}: {route.status} {route.mode} ({route.reason})"


def apply_route(session: AgiSession, ext: str, route: routing.Route) -> None:
    """Every variable in one EXEC MSet (see docs/dialplan-contract.md), then the log line."""
    session.set_variables(route.variables())
    if (line := route_log_line(ext, route)) is not None:
        session.verbose(line, 1)


def handle_route(session: AgiSession, argv: list[str],
                 config: Config | None = None) -> routing.Route | None:
    """Route the call on `session`; the Route applied, or None if none could be.

    Nothing here raises: every failure ends either with the variables set (FALLBACK)
    or with none set, which the dialplan treats as "the agent broke" and handles by
    ringing the default device.
    """
    ext = request_extension(session.env, argv)
    try:
        if config is None:
            config = load()
        route = compute_route(config, ext)
        apply_route(session, ext, route)
        return route
    except ChannelHungUp:
        return None
    except ConfigError as exc:
        _try_verbose(session, f"callroute: configuration error: {exc}")
    except AgiProtocolError as exc:
        _try_verbose(session, f"callroute: Asterisk refused a command: {exc}")
    return None


def _try_verbose(session: AgiSession, message: str) -> None:
    try:
        session.verbose(message, 1)
    except (ChannelHungUp, AgiProtocolError):
        pass
