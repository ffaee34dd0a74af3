"""Fixtures for the compose test: a private dockerd, the stack up, and the proof that
both are gone afterwards (teardown fails the run if anything is left).

These tests run only under scripts/compose-test, which installs the engine and
Compose, holds the machine-wide PBX lock (the stack takes SIP 5060 and FastAGI 4573 on
the host network) and sets CALLROUTE_COMPOSE_TEST=1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.compose.engine import REDIS_IMAGE, DockerEngine
from tests.compose.stack import ComposeStack
from tests.harness.calls import Callee, CallResult, place_call
from tests.harness.pbx import SIP_HOST, SIP_PORT
from tests.harness.procs import free_port, tcp_port_free, udp_port_free

FASTAGI = ("127.0.0.1", 4573)
TIMINGS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (CI's timeout, `kill`) unwinds like Ctrl-C, so the fixtures still take the
    stack down and stop the daemon."""
    if os.environ.get("CALLROUTE_COMPOSE_TEST") == "1":
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="the compose stack runs only under scripts/compose-test "
                                   "(private dockerd, PBX lock); CALLROUTE_COMPOSE_TEST unset")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.compose)
            if os.environ.get("CALLROUTE_COMPOSE_TEST") != "1":
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in TIMINGS.items())
        terminalreporter.write_line(f"compose timings: {steps}")


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Record how long a step took, for the summary line CI's time budget is read from."""
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[name] = time.monotonic() - started


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    docker = DockerEngine()
    try:
        with timed("dockerd start"):
            docker.start()
        yield docker
    finally:
        with timed("dockerd stop"):
            docker.stop()
        left = docker.leftovers()
        assert not left, f"left behind after dockerd stopped: {left}"
        docker.remove_run_dir()


@pytest.fixture(scope="session")
def stack(engine: DockerEngine) -> Iterator[ComposeStack]:
    if not udp_port_free(SIP_HOST, SIP_PORT) or not tcp_port_free(*FASTAGI):
        pytest.fail(f"SIP {SIP_HOST}:{SIP_PORT} or FastAGI {FASTAGI} is taken: "
                    "a test PBX is running (scripts/testpbx down)")
    with timed("base image"):
        engine.ensure_base_image()
    with timed("redis image"):
        engine.ensure_redis_image()
    compose = ComposeStack(engine, {"CALLROUTE_REDIS_IMAGE": REDIS_IMAGE,
                                    "CALLROUTE_REDIS_PORT": str(free_port()),
                                    "CALLROUTE_WEB_PORT": str(free_port())})
    try:
        with timed("up --build"):
            compose.up()
        with timed("healthy"):
            compose.wait_healthy()
        yield compose
    finally:
        with timed("down -v"):
            compose.down()
        assert not compose.containers(), "containers left after down -v"
        assert not compose.volumes(), "volumes left after down -v"
        engine.prune()


@pytest.fixture
def call(stack: ComposeStack, tmp_path: Path) -> Callable[..., CallResult]:
    counter = iter(range(100))

    def run(ext: str, callees: list[Callee], **options: object) -> CallResult:
        return place_call(stack, tmp_path / f"call{next(counter)}", ext, callees,  # type: ignore[arg-type]
                          **options)

    return run
