"""`callroute doctor` against a real, password-protected redis-server.

Each test plants one kind of problem the way it happens in the field (mostly a value
written straight into Redis, bypassing the admin layer) and checks that doctor exits 1
and names it: check, extension and field, in the text and in the JSON. No output may
ever hold the Redis password.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from agi import cli
from agi import doctor_checks as dc
from tests.fake_asterisk import console_script
from tests.harness.net import Blackhole, start_fastagi
from tests.harness.procs import free_port, stop_popen
from tests.harness.redis_server import RedisServer, empty_db_client, sentinel_cluster

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "d0ctor-s3cret-pw"
# Redis unreachable: AdminStore gives up after 3 s; doctor must not take much longer.
UNREACHABLE_MAX_S = 5.0


@dataclass
class Outcome:
    code: int
    text: str
    report: dict

    def problems(self, check: str) -> list[dict]:
        return [f for f in self.report["findings"]
                if f["check"] == check and f["level"] != dc.OK]

    def one(self, check: str) -> dict:
        found = self.problems(check)
        assert len(found) == 1, (found, self.text)
        return found[0]


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis-requirepass"),
                     password=PASSWORD) as server:
        yield server


@pytest.fixture
def store(locked_redis: RedisServer) -> Iterator[redis.Redis]:
    """Direct access, for planting what the admin layer would refuse."""
    with empty_db_client(locked_redis.url) as client:
        yield client


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, locked_redis: RedisServer, store: redis.Redis,
           config_env: Callable[..., dict[str, str]],
           capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `callroute doctor ARGS` twice (text, then --json) against `url` (default: the
    password-protected Redis); both must agree and neither may show the password."""

    def run(*args: str, url: str | None = None, secret: str = PASSWORD) -> Outcome:
        for key, value in config_env(redis_url=url or locked_redis.url).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = cli.main(["doctor", *args])
        text, err = capsys.readouterr()
        json_code = cli.main(["doctor", "--json", *args])
        raw, json_err = capsys.readouterr()
        assert (code, err, json_err) == (json_code, "", "")
        assert secret not in text + raw, "the password was printed"
        report = json.loads(raw)
        assert report["ok"] is (code == 0)
        return Outcome(code, text, report)

    return run


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch, locked_redis: RedisServer, store: redis.Redis,
           config_env: Callable[..., dict[str, str]]) -> redis.Redis:
    """A healthy company through the CLI: a DID each, a hop, an external device."""
    for key, value in config_env(redis_url=locked_redis.url).items():
        monkeypatch.setenv(key, value)
    for argv in (["company", "set", "+33100001000", "--name", "Example"],
                 ["ext", "add", "1001", "--did", "+33100001001"],
                 ["ext", "add", "1002", "--did", "+33100001002"],
                 ["forward", "on", "1002", "+33100001001", "--when", "noanswer"],
                 ["device", "add", "1001", "0612345678"]):
        assert cli.main(argv) == 0, argv
    return store


def text_names(outcome: Outcome, *words: str) -> None:
    """One line of the text output holds all `words` (the finding's own sentence)."""
    assert any(all(word in line for word in words) for line in outcome.text.splitlines()), \
        (words, outcome.text)


def test_a_healthy_store_is_all_ok(doctor, seeded, locked_redis) -> None:
    outcome = doctor()
    assert outcome.code == 0, outcome.text
    levels = {f["level"] for f in outcome.report["findings"]}
    assert levels == {dc.OK}
    assert {f["check"] for f in outcome.report["findings"]} == {
        dc.CONFIG, dc.REDIS, dc.SCHEMA, dc.EXTENSION, dc.DID_MAP}
    assert outcome.text.splitlines()[-1] == "Everything is fine."
    url = next(f for f in outcome.report["findings"] if f["field"] == "redis_url")
    assert url["data"] == {"value": f"redis://:***@127.0.0.1:{locked_redis.port}/0",
                           "source": "environment", "from": "CALLROUTE_REDIS_URL"}
    timeout = next(f for f in outcome.report["findings"] if f["field"] == "timeout_ms")
    assert timeout["data"] == {"value": "300", "source": "default", "from": ""}
    reached = next(f for f in outcome.report["findings"] if f["check"] == dc.REDIS)
    assert reached["data"]["version"] and reached["data"]["rtt_ms"] >= 0


@pytest.mark.parametrize(("field", "planted", "reason"), [
    ("forward_enabled", "yes", "corrupt forward_enabled"),
    ("devices", "PJSIP/1001&Local/00881@x", "corrupt devices"),
    ("forward_caller_id", "carrier's", "corrupt forward_caller_id"),
])
def test_a_corrupt_field_is_named_with_its_extension(doctor, seeded, field, planted,
                                                     reason) -> None:
    seeded.hset("callroute:ext:1001", field, planted)
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.EXTENSION)
    assert (found["level"], found["ext"], found["field"], found["reason"]) == (
        dc.PROBLEM, "1001", field, reason)
    assert found["data"]["stored"] == planted
    text_names(outcome, "PROBLEM", "Extension 1001", "FALLBACK", field)


@pytest.mark.parametrize(("target", "reason", "why"), [
    # International numbers planted by hand: the call refuses them, as the CLI would.
    ("+447911123456", "corrupt forward_target", "no international forwarding"),
    ("+12125550123", "corrupt forward_target", "no international forwarding"),
    # Home-code numbers that must never be dialled.
    ("+33899123456", "forward_target is a premium-rate", "premium-rate"),
    ("+33112", "corrupt forward_target", "short code"),
    ("112", "corrupt forward_target", "emergency number"),
])
def test_a_target_planted_by_hand_is_named(doctor, seeded, target, reason, why) -> None:
    seeded.hset("callroute:ext:1002", "forward_target", target)
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.EXTENSION)
    assert (found["level"], found["ext"], found["field"]) == (dc.PROBLEM, "1002",
                                                              "forward_target")
    assert found["reason"].startswith(reason), found
    assert why in found["sentence"], found["sentence"]
    text_names(outcome, "Extension 1002", "forward_target", why)


def test_a_bad_target_while_forwarding_is_off_is_a_warning(doctor, seeded) -> None:
    assert cli.main(["forward", "off", "1002"]) == 0
    seeded.hset("callroute:ext:1002", "forward_target", "+447911123456")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.EXTENSION)
    assert (found["level"], found["ext"], found["field"], found["reason"]) == (
        dc.WARN, "1002", "forward_target", "")
    text_names(outcome, "WARN", "Extension 1002", "once forwarding is on")


def test_a_did_mapped_to_a_missing_extension(doctor, seeded) -> None:
    seeded.hset("callroute:company", "did:+33100009999", "1009")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.DID_MAP)
    assert (found["ext"], found["field"]) == ("1009", "did:+33100009999")
    text_names(outcome, "+33100009999", "extension 1009", "does not exist")


def test_an_extension_did_not_mapped_back(doctor, seeded) -> None:
    seeded.hdel("callroute:company", "did:+33100001002")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.DID_MAP)
    assert (found["ext"], found["field"]) == ("1002", "did")
    text_names(outcome, "Extension 1002", "+33100001002", "not mapped back",
               "callroute ext add 1002 --did +33100001002")


def test_a_did_mapped_to_an_extension_with_another_did(doctor, seeded) -> None:
    seeded.hset("callroute:ext:1002", "did", "+33100001222")  # the map still says 1002
    outcome = doctor()
    assert outcome.code == 1
    found = {(f["ext"], f["field"]) for f in outcome.problems(dc.DID_MAP)}
    assert found == {("1002", "did:+33100001002"), ("1002", "did")}
    text_names(outcome, "+33100001002", "extension 1002", "out of step")


def test_a_missing_schema_version_is_a_warning(doctor, seeded) -> None:
    seeded.hdel("callroute:ext:1001", "schema")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.SCHEMA)
    assert (found["level"], found["ext"], found["field"]) == (dc.WARN, "1001", "schema")
    text_names(outcome, "Extension 1001", "no schema version")


def test_a_wrong_schema_version_is_a_problem(doctor, seeded) -> None:
    seeded.hset("callroute:ext:1002", "schema", "2")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.SCHEMA)
    assert (found["level"], found["ext"], found["field"]) == (dc.PROBLEM, "1002", "schema")
    text_names(outcome, "Extension 1002", "schema version \"2\"", "reads version 1")


def test_a_hash_written_without_the_index_is_found_and_judged(doctor, seeded) -> None:
    seeded.hset("callroute:ext:1004", mapping={"devices": '["PJSIP/1004"]',
                                               "forward_enabled": "on"})
    outcome = doctor()
    assert outcome.code == 1
    assert outcome.one(dc.INDEX)["ext"] == "1004"
    assert outcome.one(dc.SCHEMA)["ext"] == "1004"
    assert (outcome.one(dc.EXTENSION)["ext"], outcome.one(dc.EXTENSION)["field"]) == (
        "1004", "forward_enabled")


@pytest.mark.parametrize("peer", ["closed", "blackhole"])
def test_redis_unreachable_is_one_clear_sentence_quickly(doctor, peer) -> None:
    with Blackhole() as blackhole:
        port = free_port() if peer == "closed" else blackhole.port
        started = time.monotonic()
        outcome = doctor(url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
        elapsed = (time.monotonic() - started) / 2  # doctor ran twice
    assert outcome.code == 1
    assert elapsed < UNREACHABLE_MAX_S, elapsed
    found = outcome.one(dc.REDIS)
    assert found["sentence"].startswith("Cannot reach Redis: Redis at redis://:***@"), found
    assert "falls back" in found["sentence"]
    assert {f["check"] for f in outcome.report["findings"]} == {dc.CONFIG, dc.REDIS}


def test_a_wrong_password_is_named_without_showing_either(doctor, locked_redis) -> None:
    outcome = doctor(url=f"redis://:n0t-{PASSWORD}@127.0.0.1:{locked_redis.port}/0",
                     secret=f"n0t-{PASSWORD}")
    assert outcome.code == 1
    assert PASSWORD not in outcome.text
    assert "Cannot reach Redis" in outcome.one(dc.REDIS)["sentence"]


def test_an_invalid_setting_names_where_it_came_from(doctor, monkeypatch) -> None:
    monkeypatch.setenv("CALLROUTE_TIMEOUT_MS", "soon")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.CONFIG)
    assert found["field"] == "timeout_ms"
    assert "the environment variable CALLROUTE_TIMEOUT_MS" in found["sentence"]
    assert [f["check"] for f in outcome.report["findings"]] == [dc.CONFIG]


def test_fastagi_healthy(doctor, seeded, locked_redis, config_env, tmp_path) -> None:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", **config_env(redis_url=locked_redis.url)}
    proc = start_fastagi(console_script("callroute-fastagi"), "127.0.0.1", port, env,
                         tmp_path / "fastagi.log")
    try:
        outcome = doctor("--fastagi", f"127.0.0.1:{port}")
    finally:
        stop_popen(proc)
    assert outcome.code == 0, outcome.text
    found = [f for f in outcome.report["findings"] if f["check"] == dc.FASTAGI]
    assert [f["level"] for f in found] == [dc.OK]
    assert found[0]["data"]["address"] == f"127.0.0.1:{port}"
    text_names(outcome, "FastAGI at 127.0.0.1", "answered its health script")


@pytest.mark.parametrize(("peer", "says"), [("closed", "refused the connection"),
                                             ("blackhole", "did not answer within 2 s")])
def test_fastagi_not_answering(doctor, seeded, peer, says) -> None:
    with Blackhole() as blackhole:
        port = free_port() if peer == "closed" else blackhole.port
        outcome = doctor("--fastagi", f"127.0.0.1:{port}")
    assert outcome.code == 1
    found = outcome.one(dc.FASTAGI)
    assert says in found["sentence"] and f"127.0.0.1:{port}" in found["sentence"]


def test_redis_through_sentinel_names_the_master(doctor, tmp_path) -> None:
    with sentinel_cluster(tmp_path, PASSWORD) as cluster:
        outcome = doctor(url=cluster.url)
    assert outcome.code == 0, outcome.text
    found = next(f for f in outcome.report["findings"] if f["check"] == dc.REDIS)
    assert found["data"]["master"] == f"127.0.0.1:{cluster.master.port}"
    assert found["data"]["url"].startswith("redis+sentinel://:***@127.0.0.1:")
    text_names(outcome, "Sentinel names", f"127.0.0.1:{cluster.master.port}")


@pytest.mark.parametrize("argv", [["doctor", "--fastagi", "somewhere"],
                                  ["doctor", "--fastagi", "127.0.0.1:99999"],
                                  ["doctor", "--bogus"]])
def test_bad_usage_exits_2(run_cli, argv) -> None:
    result = run_cli(*argv)
    assert (result.code, result.out) == (2, "")
    assert len(result.err_lines()) == 1, result.err


def test_the_call_path_never_imports_doctor() -> None:
    code = ("import sys, agi.process_agi, agi.service, agi.fastagi, agi.features\n"
            "loaded = {'agi.doctor', 'agi.doctor_checks'} & set(sys.modules)\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_corrupt_did_is_the_extension_check_s_alone(doctor, seeded) -> None:
    seeded.hset("callroute:ext:1001", "did", "+33 1 00")
    outcome = doctor()
    assert outcome.code == 1
    assert (outcome.one(dc.EXTENSION)["ext"], outcome.one(dc.EXTENSION)["field"]) == (
        "1001", "did")
    # The map's entry for the old DID now points at an extension with another DID.
    assert [f["field"] for f in outcome.problems(dc.DID_MAP)] == ["did:+33100001001"]


def test_text_read_from_redis_cannot_drive_the_terminal(doctor, seeded) -> None:
    seeded.hset("callroute:ext:10\x1b[2J", "devices", '["PJSIP/1010"]')
    outcome = doctor()
    assert outcome.code == 1
    assert "\x1b" not in outcome.text
    assert "10\\x1b[2J" in outcome.text
    assert outcome.one(dc.INDEX)["ext"] == "10\x1b[2J"  # JSON escapes it itself


def test_a_key_of_another_type_is_named_listed_around_and_replaced(
        doctor, seeded, capsys: pytest.CaptureFixture[str]) -> None:
    # Something other than callroute wrote 1002's key: one key, not Redis, is wrong.
    seeded.delete("callroute:ext:1002")
    seeded.set("callroute:ext:1002", "garbage")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.INDEX)
    assert (found["level"], found["ext"], found["data"]) == (dc.PROBLEM, "1002",
                                                            {"type": "string"})
    text_names(outcome, "Extension 1002's key", 'holds a Redis "string", not a hash',
               "'callroute ext add 1002' replaces it")
    assert not outcome.problems(dc.REDIS), outcome.text
    assert outcome.problems(dc.EXTENSION) == [], outcome.text  # 1001 was judged: fine

    capsys.readouterr()
    assert cli.main(["ext", "list"]) == 0  # the other extensions still show
    listed = capsys.readouterr().out
    assert "1001" in listed and "1002" not in listed, listed

    assert cli.main(["ext", "add", "1002", "--did", "+33100001002"]) == 0
    assert seeded.type("callroute:ext:1002") == "hash"
    assert doctor().code == 0


def test_an_unreadable_company_says_redis_answered(doctor, seeded) -> None:
    seeded.delete("callroute:company")
    seeded.rpush("callroute:company", "garbage")
    outcome = doctor()
    assert outcome.code == 1
    found = outcome.one(dc.REDIS)
    assert found["sentence"].startswith("Redis answered, but callroute cannot read the "
                                        "company settings"), found
    assert "Until Redis answers" not in outcome.text
