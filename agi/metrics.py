"""Prometheus metrics of the long-running servers (callroute-fastagi, callroute-web).

The servers hold a recorder: `NULL` (every method does nothing) when metrics are off,
or `Prometheus`, whose series are created once, with every label value from a fixed
set, so the hot path only looks up a pre-built child and increments it: no string
formatting, no lock of ours. prometheus_client is imported by `Prometheus()` alone, so
a server started without metrics never loads it, and the per-call process AGI never
imports this module. Series and alerts: docs/operations.md, "Metrics".
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from agi import routing
from agi import variables as v
from agi.resp import RespError, RespReplyError, RespTimeout

DEFAULT_LISTEN = "127.0.0.1:9473"
OTHER = "other"  # any label value outside its fixed set
UNMATCHED = "unmatched"  # an HTTP request no route matched
STATUSES = (v.STATUS_OK, v.STATUS_FALLBACK, v.STATUS_INVALID)
MODES = (v.MODE_FORWARD, v.MODE_RING, v.MODE_VOICEMAIL)
FAULTS = routing.FAULTS
FEATURE_RESULTS = (v.FEATURE_ON, v.FEATURE_OFF, v.FEATURE_REFUSED, v.FEATURE_ERROR)
REDIS_ERRORS = ("timeout", "connection", "reply")
# FastAGI: a connection closed before it was read, and one closed before its session
# completed (what agi/fastagi.py and agi/fastagi_conn.py tell apart).
REFUSED = ("allowlist", "cap", "draining")
SHED = ("idle_at_cap", "env_timeout", "session_timeout", "bad_request", "hangup",
        "protocol_error", "drain_cut", "error")
# The cause of a session's end, by the name of the exception that ended it.
SHED_CAUSES = {"BadRequest": "bad_request", "ChannelHungUp": "hangup",
               "AgiProtocolError": "protocol_error"}
LOGIN_VIA = ("api", "page")
LOGIN_RESULTS = ("ok", "wrong", "locked")
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Sub-millisecond (a pooled read and the decision) up to the 1 s a call may wait.
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0)
# What generate_latest writes, the text format every Prometheus reads (newer clients
# call a later format LATEST, which Debian's Prometheus 2.42 does not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# However often it is scraped, the exposition is rendered at most this often.
RENDER_INTERVAL = 1.0


def resp_error_kind(exc: RespError) -> str:
    if isinstance(exc, RespTimeout):
        return "timeout"
    return "reply" if isinstance(exc, RespReplyError) else "connection"


class Recorder:
    """Metrics off: every hook is a no-op method call."""

    def decision(self, route: routing.Route, seconds: float) -> None:
        pass

    def redis_error(self, kind: str) -> None:
        pass

    def redis_reconnect(self) -> None:
        pass

    def feature(self, status: str) -> None:
        pass

    def refused(self, cause: str) -> None:
        pass

    def shed(self, cause: str) -> None:
        pass

    def login(self, via: str, result: str) -> None:
        pass


NULL = Recorder()


OTHER_KEY = (OTHER, OTHER)


class _Decisions:
    """The decision path's series as plain numbers: a prometheus_client Counter or
    Histogram takes a lock per update (about 2 us each here), these a few dict and list
    operations. One writer, the FastAGI event loop's thread, so no lock is needed; the
    scrape thread reads them (a snapshot at most one call behind)."""

    def __init__(self) -> None:
        self.counts = {(status, mode): 0 for status in STATUSES for mode in MODES}
        self.counts[OTHER_KEY] = 0
        self.fallbacks = dict.fromkeys((*FAULTS, OTHER), 0)
        self.buckets = [0] * (len(DECISION_BUCKETS) + 1)  # per bucket; the last is +Inf
        self.seconds = 0.0

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        decisions = CounterMetricFamily("callroute_decisions", "Routing decisions, by "
                                        "status and mode.", labels=["status", "mode"])
        for labels, count in list(self.counts.items()):
            decisions.add_metric(labels, count)
        yield decisions
        fallbacks = CounterMetricFamily("callroute_fallbacks", "FALLBACK decisions, by the "
                                        "class of their (first) reason.", labels=["reason"])
        for reason, count in list(self.fallbacks.items()):
            fallbacks.add_metric([reason], count)
        yield fallbacks
        cumulative, buckets = 0, []
        for bound, count in zip((*DECISION_BUCKETS, float("inf")), list(self.buckets),
                                strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily("callroute_decision_seconds", "Time to decide a call: "
                                    "the Redis read and the decision.", buckets=buckets,
                                    sum_value=self.seconds)


def _children(metric: Any, values: tuple[str, ...]) -> dict[str, Any]:
    """One pre-built child per label value (the series exist, at 0, from the start)."""
    return {value: metric.labels(value) for value in (*values, OTHER)}


class Prometheus(Recorder):
    """The series of one server ("fastagi" or "web") in a registry of its own."""

    def __init__(self, server: str) -> None:
        import prometheus_client as pc
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self._pc = pc
        pc.disable_created_metrics()  # a _created series for every counter: noise here
        self.registry = reg = CollectorRegistry()
        pc.ProcessCollector(registry=reg)
        pc.Info("callroute_build", "The running callroute version.",
                registry=reg).info({"version": _version()})
        errors = Counter("callroute_redis_errors_total", "Failed Redis operations, by "
                         "kind (timeout, connection, reply).", ["kind"], registry=reg)
        self._redis_errors = _children(errors, REDIS_ERRORS)
        if server == "fastagi":
            self._fastagi(reg, Counter, Gauge)
        else:
            self._web(reg, Counter)

    def _fastagi(self, reg: Any, Counter: Any, Gauge: Any) -> None:
        self._calls = _Decisions()
        reg.register(self._calls)
        reconnects = Counter("callroute_redis_reconnects_total", "Times the Redis pool "
                             "dropped its idle connections after a failure and reconnected.",
                             registry=reg)
        self.redis_reconnect = reconnects.inc  # type: ignore[method-assign]
        features = Counter("callroute_feature_codes_total", "Feature-code requests, by "
                           "result.", ["result"], registry=reg)
        self._features = _children(features, FEATURE_RESULTS)
        refused = Counter("callroute_fastagi_refused_total", "FastAGI connections closed "
                          "unread, by cause.", ["cause"], registry=reg)
        self._refused = _children(refused, REFUSED)
        shed = Counter("callroute_fastagi_shed_total", "FastAGI connections closed before "
                       "their session completed, by cause.", ["cause"], registry=reg)
        self._shed = _children(shed, SHED)
        self._open = Gauge("callroute_fastagi_connections_open", "Open FastAGI connections "
                           "(idle or in a call).", registry=reg)
        self._busy = Gauge("callroute_fastagi_calls_in_flight", "FastAGI connections whose "
                           "request is being answered.", registry=reg)

    def _web(self, reg: Any, Counter: Any) -> None:
        self._requests = Counter("callroute_http_requests_total", "HTTP requests, by route "
                                 "template, method and status.", ["route", "method", "status"],
                                 registry=reg)
        logins = Counter("callroute_logins_total", "Logins (API token or page session), by "
                         "result.", ["via", "result"], registry=reg)
        self._logins = {(via, result): logins.labels(via, result)
                        for via in LOGIN_VIA for result in LOGIN_RESULTS}

    # -- hooks ------------------------------------------------------------------------

    def decision(self, route: routing.Route, seconds: float) -> None:
        calls = self._calls
        key = (route.status, route.mode)
        calls.counts[key if key in calls.counts else OTHER_KEY] += 1
        calls.buckets[bisect_left(DECISION_BUCKETS, seconds)] += 1
        calls.seconds += seconds
        if route.fault:
            calls.fallbacks[route.fault if route.fault in calls.fallbacks else OTHER] += 1

    def redis_error(self, kind: str) -> None:
        self._redis_errors.get(kind, self._redis_errors[OTHER]).inc()

    def feature(self, status: str) -> None:
        self._features.get(status, self._features[OTHER]).inc()

    def refused(self, cause: str) -> None:
        self._refused.get(cause, self._refused[OTHER]).inc()

    def shed(self, cause: str) -> None:
        self._shed.get(cause, self._shed[OTHER]).inc()

    def login(self, via: str, result: str) -> None:
        self._logins[via, result].inc()

    def watch_fastagi(self, open_now: Callable[[], int], busy: Callable[[], int]) -> None:
        """The gauges read the server's own table at scrape time: nothing on the call path."""
        self._open.set_function(open_now)
        self._busy.set_function(busy)

    def request(self, route: str, method: str, status: int) -> None:
        self._requests.labels(route, method if method in HTTP_METHODS else OTHER,
                              str(status)).inc()

    # -- exposition -------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition, now."""
        return self._pc.generate_latest(self.registry)


# -- callroute-web --------------------------------------------------------------------

def for_web() -> Recorder:
    """Prometheus when prometheus-client is installed (the metrics extra), else NULL."""
    try:
        return Prometheus("web")
    except ImportError:
        return NULL


class HttpMetrics:
    """ASGI middleware, outermost: every request counted once it is answered, by the
    template of the route that took it (never the raw URL: bounded), or UNMATCHED."""

    def __init__(self, app: Any, recorder: Prometheus) -> None:
        self.app = app
        self.recorder = recorder
        self._templates: dict[int, str] = {}  # id(route) -> its full template

    def template(self, scope: dict) -> str:
        """The matched route's template with its router's prefix: a route included
        under a prefix knows only its own part ("/extensions/{ext}"), so the prefix is
        the part of the path before what the route's pattern matches, found once per
        route (the routes live as long as the app: the cache is bounded)."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        known = self._templates.get(id(route))
        if known is None:
            path, pattern = scope.get("path", ""), getattr(route, "path_regex", None)
            known = getattr(route, "path", "") or UNMATCHED
            starts = [i for i, char in enumerate(path) if char == "/"]
            for start in starts if pattern is not None else ():
                if pattern.match(path[start:]):
                    known = path[:start] + known
                    break
            self._templates[id(route)] = known
        return known

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts

        async def watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.recorder.request(self.template(scope), scope["method"], status)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callroute")
    except PackageNotFoundError:
        return "unknown"


def enable(server: str, program: str) -> Prometheus:
    """A Prometheus recorder, or exit 2 with one line if prometheus-client is missing."""
    try:
        return Prometheus(server)
    except ImportError:
        print(f"{program}: error: metrics need prometheus-client "
              "(pip install 'callroute[metrics]')", file=sys.stderr)
        raise SystemExit(2) from None


# -- callroute-fastagi's listener -------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", nargs="?", const=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics "
                        f"(default {DEFAULT_LISTEN}); off without this option")
    parser.add_argument("--metrics-public", action="store_true",
                        help="allow --metrics on an address beyond loopback")


def from_args(args: argparse.Namespace, server: str, program: str) -> Recorder:
    """NULL without --metrics; ValueError for a bad or non-loopback address."""
    if not args.metrics:
        return NULL
    parse_listen(args.metrics, args.metrics_public)
    return enable(server, program)


def serve_fastagi(recorder: Recorder, server: Any, args: argparse.Namespace) -> None:
    """Start the listener (metrics on) with the gauges on the server's connection table."""
    if isinstance(recorder, Prometheus):
        table = server.table
        recorder.watch_fastagi(table.__len__, lambda: table.busy)
        serve(recorder, *parse_listen(args.metrics, args.metrics_public))


def parse_listen(text: str, public: bool) -> tuple[str, int]:
    """--metrics HOST:PORT; beyond loopback only with --metrics-public."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics {text!r} must be HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--metrics {text!r}: the host must be an IP address") from None
    if not address.is_loopback and not public:
        raise ValueError(f"--metrics {text!r} is beyond loopback: add --metrics-public "
                         "to serve the metrics there")
    return host, int(port)


def serve(recorder: Prometheus, host: str, port: int) -> Any:
    """GET /metrics on HOST:PORT, one request at a time, in one daemon thread of its
    own: a scraper, slow or hostile, never runs on the FastAGI loop, and a flood of
    scrapes costs one rendering a second. The HTTPServer, for its shutdown()."""
    import socket
    from http.server import BaseHTTPRequestHandler, HTTPServer

    # At most one rendering a RENDER_INTERVAL, whatever the scrape rate (one request
    # at a time: no lock needed).
    rendered: list = [-RENDER_INTERVAL, b""]

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that stalls holds the listener this long at most

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            at, body = rendered
            if time.monotonic() - at >= RENDER_INTERVAL:
                body = recorder.render()
                rendered[:] = time.monotonic(), body
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 15 s is not worth a log line

    class Listener(HTTPServer):
        address_family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 \
            else socket.AF_INET

    httpd = Listener((host, port), Handler)
    threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
    return httpd
