"""`callroute-web`: serve the HTTP API (and the pages) with uvicorn.

Passwords and tokens cross the wire, so beyond loopback it serves TLS itself, or runs
behind a proxy that does (and then trusts that proxy's X-Forwarded-For/-Proto, which a
direct client must never be able to forge: the brute-force guard counts per address).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import threading

import redis
import uvicorn

from agi import logfmt, sdnotify
from agi.config import LOG_FORMATS, ConfigError, load

DEFAULT_LISTEN = "127.0.0.1:8080"
EXIT_INVALID = 2


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [ADDR]:PORT) -> (host, port), or ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"--listen {text!r} is not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_problem(host: str, *, tls: bool, behind_proxy: bool) -> str:
    """Why serving on `host` would be unsafe, or "" when it is fine."""
    if is_loopback(host) or tls or behind_proxy:
        return ""
    return (f"refusing to serve plain HTTP on non-loopback address {host}: give --tls-cert "
            "and --tls-key, or --behind-proxy when a TLS proxy is in front")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callroute-web",
                                     description="callroute's HTTP JSON API.")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"address to serve on (default {DEFAULT_LISTEN})")
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain for HTTPS")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for HTTPS")
    parser.add_argument("--behind-proxy", action="store_true",
                        help="a TLS reverse proxy is in front: trust its X-Forwarded-For "
                             "and X-Forwarded-Proto")
    parser.add_argument("--no-access-log", action="store_true",
                        help="do not log one line per request")
    parser.add_argument("--log-format", choices=LOG_FORMATS,
                        help="text, or json: one object per line (default: "
                             "CALLROUTE_LOG_FORMAT or the config file, else text)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        problem = listen_problem(host, tls=bool(args.tls_cert), behind_proxy=args.behind_proxy)
        if problem:
            raise ValueError(problem)
        config = load()
        logfmt.configure(args.log_format or config.log_format)
    except (ValueError, ConfigError) as exc:
        print(f"callroute-web: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    from agi.web.app import create_app

    stopping = threading.Event()
    app = create_app(config, stopping=stopping)
    server_config = uvicorn.Config(
        app, host=host, port=port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
        proxy_headers=args.behind_proxy,
        forwarded_allow_ips="*" if args.behind_proxy else None,
        server_header=False, access_log=not args.no_access_log, log_level="info",
        log_config=None,  # uvicorn's loggers go through logfmt's handler
        timeout_graceful_shutdown=5, lifespan="off")
    server = _Server(server_config, stopping, app.state.store.client)
    server.run()
    return 0


class _Server(uvicorn.Server):
    """Tells systemd when it is ready (sd_notify), and sets `stopping` on SIGTERM/SIGINT,
    so open event streams finish promptly."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event,
                 client: redis.Redis):
        super().__init__(config)
        self.stopping = stopping
        self.client = client
        self.announcer: asyncio.Task | None = None

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        if self.started:  # listening
            listening = f"{self.config.host}:{self.config.port}"
            self.announcer = asyncio.create_task(
                sdnotify.announce(listening, self._redis_answers))

    async def _redis_answers(self) -> bool:
        try:
            await asyncio.to_thread(self.client.ping)
        except redis.exceptions.RedisError:
            return False
        return True

    async def shutdown(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        if self.announcer is not None:
            self.announcer.cancel()
        await super().shutdown(sockets)

    def handle_exit(self, sig, frame) -> None:  # type: ignore[no-untyped-def]
        sdnotify.stopping()
        self.stopping.set()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
