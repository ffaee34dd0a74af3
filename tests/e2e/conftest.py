"""Fixtures for end-to-end calls on the real test PBX (Asterisk 22 + SIPp + Redis).

The PBX starts once per AGI mode (FastAGI, then process AGI) and is always stopped,
including on failure. Each test starts from the seeded topology and must leave the
PBX with no channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.harness.calls import Callee, CallResult, place_call
from tests.harness.pbx import AGI_MODES, TestPBX

ROOT = Path(__file__).resolve().parents[2]


# The mode a `one_agi_mode` test runs in: FastAGI, the mode a busy PBX would run.
ONE_MODE = "fastagi"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test here e2e, and run a `one_agi_mode` test in ONE_MODE only.

    Each mode costs a PBX start and every call again; a test whose subject is above
    the agent (the web API, the pages, the phone's language) proves the same thing in
    both, while the transport, the entry points and the faults are tested in each.
    """
    kept, dropped = [], []
    for item in items:
        if not Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            kept.append(item)
            continue
        item.add_marker(pytest.mark.e2e)
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("pbx") if callspec else None
        if item.get_closest_marker("one_agi_mode") and mode not in (None, ONE_MODE):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=AGI_MODES)
def pbx(request: pytest.FixtureRequest) -> Iterator[TestPBX]:
    test_pbx = TestPBX(ROOT)
    test_pbx.down()  # a PBX left by `scripts/testpbx up` or a crashed run
    try:
        test_pbx.up(agi_mode=request.param)
        yield test_pbx
    finally:
        test_pbx.down()


@pytest.fixture
def store(pbx: TestPBX) -> Iterator[redis.Redis]:
    """Direct access to the PBX's Redis, for planting data the CLI would refuse."""
    client = redis.Redis.from_url(pbx.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def fresh_pbx(pbx: TestPBX) -> Iterator[None]:
    """The seeded topology before each test, and no leaked channel after it."""
    pbx.reset()  # also restarts Redis or the agent if a previous test stopped them
    yield
    assert pbx.channel_count() == 0, "the PBX still holds channels after the test"


@pytest.fixture
def cli(pbx: TestPBX) -> Callable[..., str]:
    """Run the admin CLI against the PBX's Redis; the command must succeed."""

    def run(*args: str) -> str:
        proc = pbx.cli(*args)
        assert proc.returncode == 0, f"callroute {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    return run


@pytest.fixture
def call(pbx: TestPBX, tmp_path: Path) -> Callable[..., CallResult]:
    counter = iter(range(100))

    def run(ext: str, callees: list[Callee], **options: object) -> CallResult:
        return place_call(pbx, tmp_path / f"call{next(counter)}", ext, callees, **options)

    return run
