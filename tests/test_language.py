"""The language setting: which codes are accepted, what a call applies, and how the
admin layer and the CLI store and show it (docs/language.md).

The company's language is the default of every extension; an extension's own
overrides it; none at all leaves the channel's (the PBX's) language. A stored value
that is not a language code is never sent to the dialplan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from agi import admin
from agi import fields as f
from agi import variables as v
from agi.admin import UNSET, Actor, ExtensionChanges, Refused, checks
from agi.config import Config, load
from agi.routing import decide
from agi.store import AdminStore

if TYPE_CHECKING:
    from tests.conftest import CliResult

EXT = "1001"
DESK = '["PJSIP/1001"]'
MOBILE = "+33612345678"
FORWARD = {"devices": DESK, "forward_enabled": "1", "forward_target": MOBILE}
KEY = "callroute:ext:1001"
COMPANY_KEY = "callroute:company"
ADMIN = Actor("api:alice")

GOOD = ["fr", "en", "es", "de", "fr_FR", "pt_BR", "fil"]
BAD = ["", "FR", "fr-FR", "fr_fr", "french", "f", "fr_FRA", "../../etc", "fr/../en",
       "fr;Dial(PJSIP/x)", 'fr"\nEXEC Dial', "fr ", " fr", "fr\n", "fr.gsm", "\uff46\uff52", "frfr"]


# ---- which codes ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", GOOD)
def test_language_codes_are_accepted(code: str) -> None:
    assert f.is_language(code)
    assert checks.language(code) == code


@pytest.mark.parametrize("text", BAD, ids=repr)
def test_anything_else_is_refused_with_its_code_and_field(text: str) -> None:
    assert not f.is_language(text)
    with pytest.raises(Refused) as info:
        checks.language(text)
    [refusal] = info.value.refusals
    assert (refusal.code, refusal.field) == ("invalid_language", "language")
    assert "\n" not in refusal.message


# ---- what a call applies -------------------------------------------------------------------

def language_of(fields: dict[str, str], company: dict[str, str],
                config: Config) -> tuple[str | None, str, str]:
    """(CALLROUTE_LANGUAGE or None if not sent, STATUS, REASON) of a call to 1001."""
    sent = dict(decide(EXT, fields, company, config).variables())
    return sent.get(v.LANGUAGE), sent[v.STATUS], sent.get(v.REASON, "")


@pytest.mark.parametrize(("fields", "company", "expected"), [
    (FORWARD, {}, (None, v.STATUS_OK, "")),
    (FORWARD, {"language": "fr"}, ("fr", v.STATUS_OK, "")),
    ({**FORWARD, "language": "en"}, {"language": "fr"}, ("en", v.STATUS_OK, "")),
    ({**FORWARD, "language": "fr_FR"}, {}, ("fr_FR", v.STATUS_OK, "")),
    ({"devices": DESK}, {"language": "es"}, ("es", v.STATUS_OK, "")),
    ({**FORWARD, "language": ""}, {"language": "fr"}, ("fr", v.STATUS_OK, "")),
    # Corrupt: ignored, the company's (or none) used, FALLBACK with the reason.
    ({**FORWARD, "language": "fr;Dial(PJSIP/x)"}, {"language": "fr"},
     ("fr", v.STATUS_FALLBACK, "corrupt language")),
    ({**FORWARD, "language": "../../etc"}, {}, (None, v.STATUS_FALLBACK, "corrupt language")),
    (FORWARD, {"language": "../../etc"}, (None, v.STATUS_FALLBACK,
                                          "corrupt company language")),
    # The company's is not this extension's problem when it has its own.
    ({**FORWARD, "language": "en"}, {"language": "x;y"}, ("en", v.STATUS_OK, "")),
    # An unknown extension still greets in the company's language.
    ({}, {"language": "fr"}, ("fr", v.STATUS_OK, "unknown extension")),
    ({}, {"language": 'fr"\nEXEC Dial'}, (None, v.STATUS_FALLBACK,
                                           "unknown extension; corrupt company language")),
], ids=repr)
def test_decision_sends_the_language_only_when_there_is_one(
        fields: dict[str, str], company: dict[str, str],
        expected: tuple[str | None, str, str], fr_config: Config) -> None:
    assert language_of(fields, company, fr_config) == expected


def test_the_language_does_not_change_the_rest_of_the_decision(fr_config: Config) -> None:
    plain = dict(decide(EXT, FORWARD, {}, fr_config).variables())
    french = dict(decide(EXT, FORWARD, {"language": "fr"}, fr_config).variables())
    assert french.pop(v.LANGUAGE) == "fr"
    # ... and the external leg inherits it (the forward target is one).
    assert (french.pop(v.LEG_LANGUAGE), plain.pop(v.LEG_LANGUAGE)) == ("fr", "")
    assert french == plain


def test_no_language_when_the_store_fails(fr_config: Config) -> None:
    from agi import routing

    assert v.LANGUAGE not in dict(routing.fallback(EXT, fr_config, "store: timeout")
                                  .variables())


# ---- the admin layer and the CLI, on a real Redis ------------------------------------------

@pytest.fixture
def store(cli_env: dict[str, str], redis_client: redis.Redis) -> AdminStore:
    return AdminStore(load(cli_env))


@pytest.mark.redis
def test_extension_override_set_and_removed(store: AdminStore, cli_env: dict[str, str],
                                            redis_client: redis.Redis) -> None:
    config = load(cli_env)
    admin.set_company(store, config, language="fr", actor=ADMIN)
    view = admin.put_extension(store, config, EXT, ExtensionChanges(language="en"), ADMIN)
    assert vars(view.language) == {"own": "en", "used": "en"}
    assert redis_client.hget(KEY, "language") == "en"
    view = admin.put_extension(store, config, EXT, ExtensionChanges(language=UNSET), ADMIN)
    assert view.language.own == "en"  # UNSET keeps it
    view = admin.put_extension(store, config, EXT, ExtensionChanges(language=None), ADMIN)
    assert vars(view.language) == {"own": None, "used": "fr"}
    assert "language" not in redis_client.hgetall(KEY)
    assert admin.get_company(store, config).to_json()["language"] == "fr"
    admin.set_company(store, config, language=None, actor=ADMIN)
    assert "language" not in redis_client.hgetall(COMPANY_KEY)
    assert vars(admin.get_extension(store, config, EXT).language) == {"own": None, "used": ""}


@pytest.mark.redis
def test_company_language_is_audited(store: AdminStore, cli_env: dict[str, str],
                                     redis_client: redis.Redis) -> None:
    config = load(cli_env)
    admin.set_company(store, config, language="fr", actor=ADMIN)
    admin.set_company(store, config, language=None, actor=ADMIN)
    changes = [json.loads(fields["changes"])
               for _, fields in redis_client.xrange("callroute:audit")]
    assert changes == [{"language": [None, "fr"]}, {"language": ["fr", None]}]


Cli = Callable[..., "CliResult"]


@pytest.mark.redis
def test_cli_sets_shows_and_removes(run_cli: Cli, redis_client: redis.Redis) -> None:
    assert run_cli("company", "set", "--language", "fr").out == "company language set to fr\n"
    assert run_cli("ext", "add", EXT).code == 0
    assert "  language:         fr (the company's)" in run_cli("ext", "show", EXT).out
    assert run_cli("ext", "add", EXT, "--language", "en").code == 0
    assert "  language:         en (this extension's)" in run_cli("ext", "show", EXT).out
    info = json.loads(run_cli("ext", "show", EXT, "--json").out)
    assert info["language"] == {"own": "en", "used": "en"}
    assert run_cli("ext", "add", EXT, "--language", "default").code == 0
    assert "language" not in redis_client.hgetall(KEY)
    assert run_cli("company", "set", "--language", "default").code == 0
    assert "  language:         the PBX's own (none set)" in run_cli("ext", "show", EXT).out


@pytest.mark.redis
def test_cli_refuses_a_bad_code_and_writes_nothing(run_cli: Cli,
                                                   snapshot: Callable[[], dict]) -> None:
    before = snapshot()
    result = run_cli("ext", "add", EXT, "--language", "fr;Dial(PJSIP/x)")
    assert result.code == 2
    assert result.err.startswith("callroute: error: argument --language: 'fr;Dial(PJSIP/x)' "
                                 "is not a language code")
    assert run_cli("company", "set", "--language", "../../etc").code == 2
    assert snapshot() == before


@pytest.mark.redis
def test_corrupt_stored_language_is_shown_as_ignored(run_cli: Cli,
                                                     redis_client: redis.Redis) -> None:
    redis_client.hset(COMPANY_KEY, "language", "fr")
    redis_client.hset(KEY, mapping={"devices": DESK, "language": "../../etc"})
    info = json.loads(run_cli("ext", "show", EXT, "--json").out)
    assert info["language"] == {"own": None, "used": "fr"}
    assert (info["status"], info["problems"]) == ("FALLBACK", "corrupt language")
    assert info["corrupt"] == [{"field": "language", "stored": "../../etc", "used": "fr"}]
    text = run_cli("ext", "show", EXT).out
    assert '  ignored:          language = "../../etc", using "fr"' in text
    redis_client.hdel(KEY, "language")
    redis_client.hset(COMPANY_KEY, "language", "x;y")
    info = json.loads(run_cli("ext", "show", EXT, "--json").out)
    assert info["corrupt"] == [{"field": "company language", "stored": "x;y", "used": ""}]
    assert info["language"] == {"own": None, "used": ""}


# ---- the dialplan's own check --------------------------------------------------------------

def test_the_dialplan_checks_the_same_codes_and_applies_them_where_documented() -> None:
    """[callroute-language] re-checks the value with the agent's own expression (a drift
    here would let the dialplan refuse what the admin layer accepts, or the reverse),
    and is called on the answered external leg and before voicemail."""
    conf = (Path(__file__).resolve().parents[1] / "dialplan" / "callroute.conf").read_text()
    contexts = dict(re.findall(r"^\[([\w-]+)\]\n(.*?)(?=^\[|\Z)", conf, re.M | re.S))
    [pattern] = re.findall(r'REGEX\("\^(.*?)\$"', contexts["callroute-language"])
    assert pattern == f._LANGUAGE.pattern
    assert "Set(CHANNEL(language)=${ARG1})" in contexts["callroute-language"]
    for context, variable in (("callroute-confirm", "CALLROUTE_LEG_LANGUAGE"),
                              ("callroute-voicemail", "CALLROUTE_LANGUAGE")):
        assert f"Gosub(callroute-language,s,1(${{{variable}}}))" in contexts[context]
    # The agent sets CALLROUTE_LEG_LANGUAGE itself (inherited: v.LEG_LANGUAGE).
    assert v.LEG_LANGUAGE == "__CALLROUTE_LEG_LANGUAGE"
