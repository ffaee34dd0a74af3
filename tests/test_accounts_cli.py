"""`callroute user ...` and `callroute token ...` against a real Redis."""

from __future__ import annotations

import io
import json

import pytest
import redis

from agi.accounts import Accounts, token_key
from agi.config import load
from agi.store import AdminStore


@pytest.fixture
def accounts(cli_env: dict[str, str], redis_client: redis.Redis) -> Accounts:
    return Accounts(AdminStore(load(cli_env)))


def with_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_user_add_generates_a_password_shown_once(run_cli, accounts: Accounts,
                                                  redis_client: redis.Redis) -> None:
    result = run_cli("user", "add", "ada", "--role", "admin")
    assert result.code == 0, result.err
    password = next(line.split(": ", 1)[1] for line in result.out.splitlines()
                    if line.startswith("password: "))
    assert len(password) >= 24
    assert accounts.authenticate("ada", password).role == "admin"
    assert password not in str(redis_client.hgetall("callroute:user:ada"))
    assert redis_client.hget("callroute:user:ada", "password").startswith("$argon2id$")


def test_user_add_with_password_stdin_and_extensions(run_cli, accounts: Accounts,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with_stdin(monkeypatch, "a-long-enough-secret\n")
    result = run_cli("user", "add", "eve", "--role", "user", "--ext", "1001", "--ext", "1002",
                     "--password-stdin")
    assert result.code == 0, result.err
    assert "a-long-enough-secret" not in result.out + result.err
    user = accounts.authenticate("eve", "a-long-enough-secret")
    assert (user.role, user.extensions) == ("user", ("1001", "1002"))
    listed = run_cli("user", "list", "--json")
    assert json.loads(listed.out) == [{"username": "eve", "role": "user",
                                       "extensions": ["1001", "1002"]}]
    assert run_cli("user", "list").out == "eve\tuser\t1001, 1002\n"


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (("user", "add", "Eve!", "--role", "user"), "", "is not a user name"),
    (("user", "add", "eve", "--role", "user", "--ext", "10 01"), "", "not a valid extension"),
    (("user", "add", "eve", "--role", "user", "--password-stdin"), "short\n",
     "a password must be 12"),
    (("user", "add", "eve", "--role", "user", "--password-stdin"), "", "no password on stdin"),
    (("user", "add", "eve", "--role", "root"), "", "invalid choice"),
    (("user", "remove", "nobody"), "", "user nobody does not exist"),
    (("user", "passwd", "nobody", "--password-stdin"), "a-long-enough-secret\n",
     "user nobody does not exist"),
    (("token", "create", "nobody"), "", "user nobody does not exist"),
    (("token", "revoke", "--token-stdin"), "no-such-token\n", "no such token"),
], ids=["bad-name", "bad-ext", "short-password", "no-password", "bad-role", "remove-unknown",
        "passwd-unknown", "token-unknown", "revoke-unknown"])
def test_bad_input_is_one_line_and_writes_nothing(run_cli, snapshot, redis_client,
                                                  monkeypatch: pytest.MonkeyPatch, argv: tuple,
                                                  stdin: str, message: str) -> None:
    before = snapshot()
    with_stdin(monkeypatch, stdin)
    result = run_cli(*argv)
    assert result.code == 2
    assert len(result.err_lines()) == 1 and message in result.err, result.err
    assert snapshot() == before


def test_add_twice_is_refused(run_cli) -> None:
    assert run_cli("user", "add", "ada", "--role", "admin").code == 0
    again = run_cli("user", "add", "ada", "--role", "user")
    assert again.code == 2 and "already exists" in again.err


def test_passwd_changes_the_password_and_revokes_tokens(
        run_cli, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli("user", "add", "eve", "--role", "user")
    token = run_cli("token", "create", "eve").out.strip()
    assert accounts.token_user(token).name == "eve"
    with_stdin(monkeypatch, "another-long-secret\n")
    assert run_cli("user", "passwd", "eve", "--password-stdin").code == 0
    assert accounts.authenticate("eve", "another-long-secret") is not None
    assert accounts.token_user(token) is None


def test_token_create_expires_and_revoke(run_cli, accounts: Accounts,
                                         redis_client: redis.Redis,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli("user", "add", "eve", "--role", "user")
    created = run_cli("token", "create", "eve", "--expires", "2")
    assert created.code == 0 and "expires" in created.err
    token = created.out.strip()
    assert len(token) >= 43  # 256 bits
    assert 7100 <= redis_client.ttl(token_key("callroute:", token)) <= 7200
    with_stdin(monkeypatch, token + "\n")
    assert run_cli("token", "revoke", "--token-stdin").code == 0
    assert accounts.token_user(token) is None
    assert run_cli("token", "create", "eve", "--expires", "0").code == 2


def test_user_remove_revokes_every_token(run_cli, accounts: Accounts,
                                         redis_client: redis.Redis) -> None:
    run_cli("user", "add", "eve", "--role", "user")
    tokens = [run_cli("token", "create", "eve").out.strip() for _ in range(3)]
    assert run_cli("user", "remove", "eve").code == 0
    assert all(accounts.token_user(token) is None for token in tokens)
    # Nothing of the user is left; only the audit trail of its addition and removal.
    assert list(redis_client.scan_iter("*")) == ["callroute:audit"]


def test_store_down_is_exit_1(run_cli, monkeypatch: pytest.MonkeyPatch,
                              closed_port: int) -> None:
    monkeypatch.setenv("CALLROUTE_REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    result = run_cli("user", "list")
    assert result.code == 1 and "Redis" in result.err


def test_every_account_change_is_audited_without_a_secret(
        run_cli, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis) -> None:
    """user add, passwd and remove each leave one record (actor cli:<user>, ext ""), in the
    write's own MULTI; neither the password nor its hash is ever in the trail."""
    with_stdin(monkeypatch, "first-secret-12345\n")
    assert run_cli("user", "add", "eve", "--role", "user", "--ext", "1001",
                   "--password-stdin").code == 0
    with_stdin(monkeypatch, "second-secret-12345\n")
    assert run_cli("user", "passwd", "eve", "--password-stdin").code == 0
    assert run_cli("user", "remove", "eve").code == 0
    assert run_cli("user", "remove", "eve").code == 2  # refused: no record
    records = [fields for _id, fields in redis_client.xrange("callroute:audit")]
    assert [r["action"] for r in records] == ["user.add", "user.password", "user.remove"]
    assert all(r["actor"].startswith("cli:") and r["ext"] == "" for r in records)
    assert json.loads(records[0]["changes"]) == {
        "user": [None, "eve"], "role": [None, "user"], "extensions": [None, '["1001"]']}
    assert json.loads(records[1]["changes"]) == {"password": ["old", "new"]}
    assert json.loads(records[2]["changes"])["user"] == ["eve", None]
    trail = json.dumps(records)
    assert "secret" not in trail and "argon2" not in trail
