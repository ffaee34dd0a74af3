"""The FastAGI server's decisions, remembered by the exact Redis reply bytes: Redis is
still read on every call, a changed setting applies on the very next call, and the
memo stays bounded."""

from __future__ import annotations

import pytest
import redis

from agi import variables as v
from agi.config import load
from agi.fastagi_decide import MEMO_MAX_REPLY_BYTES, DecisionCache
from tests.asterisk_parser import variables
from tests.fake_asterisk import agi_session

pytestmark = pytest.mark.redis

EXT_1001 = {"devices": '["PJSIP/1001"]', "forward_enabled": "1",
            "forward_target": "+33612345678", "did": "+33100001001"}


def _hgetall_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


def test_a_changed_setting_applies_on_the_next_call(serve, redis_server, redis_client):
    redis_client.hset("callroute:ext:1001", mapping=EXT_1001)
    server = serve(redis_server.url)
    port = server.address[1]
    first = variables(agi_session(port))
    assert first[v.MODE] == v.MODE_FORWARD
    before = _hgetall_calls(redis_client)
    again = variables(agi_session(port))
    assert again == first
    assert server.sessions.decisions.hits == 1  # the same bytes: remembered
    assert _hgetall_calls(redis_client) == before + 2  # but Redis was read all the same

    redis_client.hset("callroute:ext:1001", "forward_enabled", "0")
    ringing = variables(agi_session(port))
    assert ringing[v.MODE] == v.MODE_RING and ringing[v.DIAL] == "PJSIP/1001"
    redis_client.hset("callroute:ext:1001", "forward_enabled", "1")
    assert variables(agi_session(port)) == first
    redis_client.delete("callroute:ext:1001")
    assert variables(agi_session(port))[v.REASON] == "unknown extension"


def test_each_extension_has_its_own_decision(serve, redis_server, redis_client):
    """Equal reply bytes for two extensions (both unknown) are not one decision."""
    server = serve(redis_server.url)
    one = variables(agi_session(server.address[1], args=("1001",)))
    two = variables(agi_session(server.address[1], args=("1002",)))
    assert one[v.DIAL] == "PJSIP/1001" and two[v.DIAL] == "PJSIP/1002"
    assert server.sessions.decisions.hits == 0


def test_the_memo_keeps_the_most_recent_entries_only(config_env):
    cache = DecisionCache(load(config_env()), entries=2)
    hashes = [{}, {}]
    for raw in (b"a", b"b", b"c"):
        cache.make("1001", raw, hashes)
    assert len(cache) == 2
    assert cache.get("1001", b"a") is None
    assert cache.get("1001", b"c") is not None
    cache.make("1001", b"x" * (MEMO_MAX_REPLY_BYTES + 1), hashes)  # decided, not kept
    cache.make("1001", None, hashes)  # a new connection's replies: not kept either
    assert len(cache) == 2
