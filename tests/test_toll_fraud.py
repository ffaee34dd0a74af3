"""Toll fraud: foreign, costly and emergency numbers, and the company's own numbers.

Toll fraud is table-driven over real numbers (each checked against phonenumbers below)
for a French and a US home, on both sides of the store: the CLI must refuse them (exit
2, one line, a full DUMP of Redis unchanged), and the call path must never dial them,
however they got into Redis (planted there directly, then routed through the real call
path: compute_route reads Redis and decides). The call path never imports phonenumbers;
its number data comes from agi/guard_tables.py, which a drift test below checks against
the installed phonenumbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers
import pytest
import redis

from agi import variables as v
from agi.calling_codes import CALLING_CODES
from agi.config import load
from agi.guard import COSTLY, FOREIGN, dialable_refusal, is_home_e164
from agi.numbers import NumberRejected, normalise
from agi.routing import decide
from agi.service import compute_route
from tests.guard_tables_gen import COSTLY_TYPES, render
from tests.harness.redis_server import RedisServer

if TYPE_CHECKING:
    from tests.conftest import CliResult

ROOT = Path(__file__).resolve().parent.parent
KEY = "callroute:ext:1001"

# Home -> (company number, extension 1001's DID, numbers the home may forward to).
HOMES = {
    "FR": ("+33142685300", "+33142685301", ["+33612345678", "+33142685399", "+33800123456"]),
    "US": ("+12127365000", "+12127365001", ["+16502530000", "+12127365099", "+18003569377"]),
}

# (id, what the admin types, the E.164 value planted in Redis, the region phonenumbers
# gives it, its type). Every one is refused for a FR home and for a US home, except
# where it is that home's own ordinary number (then it is in HOMES, not here).
P = phonenumbers.PhoneNumberType
FOREIGN_OR_COSTLY = [
    ("gb-landline", "+44 20 7123 4567", "+442071234567", "GB", P.FIXED_LINE),
    ("gb-mobile", "+44 7400 123456", "+447400123456", "GB", P.MOBILE),
    ("gb-premium-09", "+44 909 879 0000", "+449098790000", "GB", P.PREMIUM_RATE),
    ("gb-premium-0870", "+44 870 234 5678", "+448702345678", "GB", P.PREMIUM_RATE),
    ("de-landline", "+49 30 1234567", "+49301234567", "DE", P.FIXED_LINE),
    ("de-mobile", "+49 151 23456789", "+4915123456789", "DE", P.MOBILE),
    ("de-premium-0900", "+49 900 9 1234567", "+4990091234567", "DE", P.PREMIUM_RATE),
    ("de-shared-0180", "+49 180 5 1234567", "+4918051234567", "DE", P.SHARED_COST),
    ("be-landline", "+32 2 234 56 78", "+3222345678", "BE", P.FIXED_LINE),
    ("be-mobile", "+32 470 12 34 56", "+32470123456", "BE", P.MOBILE),
    ("be-premium-090", "+32 90 12 34 56", "+3290123456", "BE", P.PREMIUM_RATE),
    ("ch-landline", "+41 44 234 56 78", "+41442345678", "CH", P.FIXED_LINE),
    ("ch-mobile", "+41 78 123 45 67", "+41781234567", "CH", P.MOBILE),
    ("ch-premium-0900", "+41 900 123 456", "+41900123456", "CH", P.PREMIUM_RATE),
    ("it-landline", "+39 06 1234 5678", "+390612345678", "IT", P.FIXED_LINE),
    ("it-mobile", "+39 312 345 6789", "+393123456789", "IT", P.MOBILE),
    ("it-premium-899", "+39 899 123 456", "+39899123456", "IT", P.PREMIUM_RATE),
    ("es-landline", "+34 912 34 56 78", "+34912345678", "ES", P.FIXED_LINE),
    ("es-mobile", "+34 612 34 56 78", "+34612345678", "ES", P.MOBILE),
    ("es-premium-803", "+34 803 12 34 56", "+34803123456", "ES", P.PREMIUM_RATE),
    ("ca-toronto", "+1 416 736 5000", "+14167365000", "CA", P.FIXED_LINE_OR_MOBILE),
    ("ca-ottawa", "+1 613 234 5678", "+16132345678", "CA", P.FIXED_LINE_OR_MOBILE),
    ("jm-876", "+1 876 926 1234", "+18769261234", "JM", P.FIXED_LINE),
    ("do-809", "+1 809 234 5678", "+18092345678", "DO", P.FIXED_LINE_OR_MOBILE),
    ("do-829", "+1 829 555 1234", "+18295551234", "DO", P.FIXED_LINE_OR_MOBILE),
    ("bb-246", "+1 246 234 5678", "+12462345678", "BB", P.MOBILE),
    ("pr-787", "+1 787 234 5678", "+17872345678", "PR", P.FIXED_LINE_OR_MOBILE),
    ("mq-martinique", "+596 696 12 34 56", "+596696123456", "MQ", P.MOBILE),
    ("satellite-881", "+881 631 234 567", "+881631234567", "001", P.MOBILE),
    ("satellite-882", "+882 16 1234 567", "+882161234567", "001", P.VOIP),
    ("intl-premium-979", "+979 1 2345 6789", "+979123456789", "001", P.PREMIUM_RATE),
    ("fr-mobile", "+33 6 12 34 56 78", "+33612345678", "FR", P.MOBILE),
    ("fr-premium-0899", "08 99 12 34 56", "+33899123456", "FR", P.PREMIUM_RATE),
    ("fr-premium-0892", "08 92 12 34 56", "+33892123456", "FR", P.PREMIUM_RATE),
    ("fr-premium-0891", "08 91 12 34 56", "+33891123456", "FR", P.PREMIUM_RATE),
    ("fr-premium-0836", "08 36 12 34 56", "+33836123456", "FR", P.PREMIUM_RATE),
    ("fr-shared-0810", "08 10 12 34 56", "+33810123456", "FR", P.SHARED_COST),
    ("fr-shared-0811", "08 11 12 34 56", "+33811123456", "FR", P.SHARED_COST),
    ("fr-shared-0821", "08 21 12 34 56", "+33821123456", "FR", P.SHARED_COST),
    ("fr-uan-0806", "08 06 12 34 56", "+33806123456", "FR", P.UAN),
    ("us-landline", "+1 650 253 0000", "+16502530000", "US", P.FIXED_LINE_OR_MOBILE),
    ("us-premium-900", "1-900-234-5678", "+19002345678", "US", P.PREMIUM_RATE),
]
# Emergency numbers and short codes: (id, what the admin types, planted national part).
# Planted with the home calling code in front ("+33112", "+1911").
SHORT = [
    ("eu-112", "112", "112"), ("fr-samu-15", "15", "15"), ("fr-police-17", "17", "17"),
    ("fr-pompiers-18", "18", "18"), ("us-911", "911", "911"), ("gb-999", "999", "999"),
    ("fr-minitel-3615", "3615", "3615"), ("fr-enquiries-118218", "118218", "118218"),
    ("us-411", "411", "411"),
]


def _refused_numbers(home: str) -> list[tuple[str, str, str]]:
    """(id, typed, planted) of everything a `home` office must never dial."""
    code = CALLING_CODES[home]
    own = HOMES[home][2]
    rows = [(i, typed, planted) for i, typed, planted, _, _ in FOREIGN_OR_COSTLY
            if planted not in own]
    rows += [(i, typed, f"+{code}{national}") for i, typed, national in SHORT]
    return rows


CASES = [(home, *row) for home in HOMES for row in _refused_numbers(home)]
CASE_IDS = [f"{home}-home-{row[0]}" for home in HOMES for row in _refused_numbers(home)]
REFUSAL_WORDS = ("only numbers in", "premium-rate", "shared-cost", "universal access",
                 "emergency", "short code", "not a valid number", "company's own numbers")


# ---- the examples are what they claim to be --------------------------------------------

@pytest.mark.parametrize(("typed", "planted", "region", "kind"),
                         [row[1:] for row in FOREIGN_OR_COSTLY],
                         ids=[row[0] for row in FOREIGN_OR_COSTLY])
def test_examples_are_real_numbers(typed: str, planted: str, region: str, kind: int) -> None:
    number = phonenumbers.parse(planted)
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.region_code_for_number(number) == region
    assert phonenumbers.number_type(number) == kind
    home = "US" if typed.startswith("1-") else "FR"
    assert phonenumbers.format_number(phonenumbers.parse(typed, home),
                                      phonenumbers.PhoneNumberFormat.E164) == planted


# ---- the CLI refuses them: exit 2, one line, nothing written ---------------------------

@pytest.fixture
def office(run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch,
           request: pytest.FixtureRequest) -> Callable[[str], Callable[..., CliResult]]:
    """An office in `home` with a company number and extension 1001 with its DID."""

    def setup(home: str) -> Callable[..., CliResult]:
        monkeypatch.setenv("CALLROUTE_COUNTRY", home)
        company, did, _ = HOMES[home]
        for argv in (["company", "set", company], ["ext", "add", "1001", "--did", did],
                     ["ext", "add", "1002", "--did", did[:-1] + "2"]):
            result = run_cli(*argv)
            assert result.code == 0, (argv, result.err)
        return run_cli

    return setup


@pytest.mark.redis
@pytest.mark.parametrize(("home", "_id", "typed", "planted"), CASES, ids=CASE_IDS)
def test_cli_refuses(home: str, _id: str, typed: str, planted: str, office,
                     snapshot: Callable) -> None:
    cli = office(home)
    before = snapshot()
    for argv in (["forward", "on", "1001", typed], ["forward", "on", "1001", planted],
                 ["device", "add", "1001", typed], ["device", "add", "1001", planted]):
        result = cli(*argv)
        assert (result.code, result.out) == (2, ""), argv
        assert len(result.err_lines()) == 1, result.err
        assert any(word in result.err for word in REFUSAL_WORDS), result.err
        assert snapshot() == before, argv


@pytest.mark.redis
@pytest.mark.parametrize("home", list(HOMES))
def test_cli_refuses_the_companys_own_numbers(home: str, office, snapshot: Callable) -> None:
    cli = office(home)
    company, did, _ = HOMES[home]
    other_did = did[:-1] + "2"  # extension 1002's DID
    before = snapshot()
    for number in (company, did):
        for argv in (["forward", "on", "1001", number], ["device", "add", "1001", number]):
            result = cli(*argv)
            assert (result.code, result.out) == (2, "")
            assert len(result.err_lines()) == 1
            assert "company's own numbers" in result.err
    assert snapshot() == before
    # Another extension's DID is not refused: calls to it hop to that extension's rules.
    for argv in (["forward", "on", "1001", other_did], ["device", "add", "1001", other_did]):
        result = cli(*argv)
        assert result.code == 0, result.err
        assert "extension 1002's rules" in result.out


@pytest.mark.redis
@pytest.mark.parametrize("home", list(HOMES))
def test_cli_accepts_ordinary_home_numbers(home: str, office,
                                           redis_client: redis.Redis) -> None:
    """The control: the refusals above are about the numbers, not a CLI that refuses all."""
    cli = office(home)
    for number in HOMES[home][2]:
        assert cli("forward", "on", "1001", number).code == 0
        assert redis_client.hget(KEY, "forward_target") == number


# ---- the call path never dials them, however they got into Redis ------------------------

def _config(home: str, config_env: Callable[..., dict[str, str]], url: str):
    return load(config_env(country=home, redis_url=url))


@pytest.mark.parametrize(("home", "_id", "typed", "planted"), CASES, ids=CASE_IDS)
def test_call_time_guard_never_dials_them(home: str, _id: str, typed: str, planted: str,
                                          config_env) -> None:
    config = _config(home, config_env, "redis://127.0.0.1:1/0")
    code = config.calling_code
    if not planted.startswith("+" + code):
        assert not is_home_e164(planted, code)  # another calling code: refused outright
    company, did, _ = HOMES[home]
    fields = {"devices": '["PJSIP/1001"]', "forward_enabled": "1", "forward_target": planted,
              "did": did}
    route = decide("1001", fields, {"caller_id": company}, config)
    assert (route.status, route.mode, route.dial, route.target) == (
        v.STATUS_FALLBACK, v.MODE_RING, "PJSIP/1001", "")
    route = decide("1001", {"devices": '["PJSIP/1001"]',
                            "external_devices": json.dumps([planted, HOMES[home][2][0]])},
                   {"caller_id": company}, config)
    assert route.dial == f"PJSIP/1001&Local/{HOMES[home][2][0]}-0-0-0@callroute-external/n"
    assert route.status == v.STATUS_FALLBACK


@pytest.mark.redis
@pytest.mark.parametrize("home", list(HOMES))
def test_planted_in_redis_then_routed(home: str, redis_server: RedisServer,
                                      redis_client: redis.Redis, config_env) -> None:
    """The real call path (one Redis round trip, then decide) for every refused number."""
    config = _config(home, config_env, redis_server.url)
    company, did, allowed = HOMES[home]
    redis_client.hset("callroute:company", "caller_id", company)
    for _, _, planted in _refused_numbers(home):
        redis_client.hset(KEY, mapping={"devices": '["PJSIP/1001"]', "forward_enabled": "1",
                                        "forward_target": planted, "did": did,
                                        "external_devices": json.dumps([planted])})
        route = compute_route(config, "1001")
        assert planted not in route.dial, planted
        assert (route.status, route.mode, route.dial) == (v.STATUS_FALLBACK, v.MODE_RING,
                                                          "PJSIP/1001"), planted
    for number in allowed:  # control: a legitimate target is forwarded
        redis_client.hset(KEY, mapping={"forward_target": number, "external_devices": "[]"})
        route = compute_route(config, "1001")
        assert (route.status, route.mode, route.target) == (v.STATUS_OK, v.MODE_FORWARD,
                                                            number)


@pytest.mark.parametrize("home", list(HOMES))
def test_call_time_guard_refuses_the_companys_own_numbers(home: str, config_env) -> None:
    config = _config(home, config_env, "redis://127.0.0.1:1/0")
    company, did, allowed = HOMES[home]
    for own in (company, did):
        fields = {"devices": '["PJSIP/1001"]', "forward_enabled": "1", "forward_target": own,
                  "did": did, "external_devices": json.dumps([own, allowed[0]])}
        route = decide("1001", fields, {"caller_id": company}, config)
        assert (route.status, route.mode) == (v.STATUS_FALLBACK, v.MODE_RING)
        assert route.dial == f"PJSIP/1001&Local/{allowed[0]}-0-0-0@callroute-external/n"
        assert "forward_target is the company's own number" in route.reason


@pytest.mark.parametrize(("home", "premium"), [
    ("GB", "+449098790000"), ("GB", "+448702345678"), ("DE", "+4990091234567"),
    ("DE", "+4918051234567"), ("BE", "+3290123456"), ("CH", "+41900123456"),
    ("IT", "+39899123456"), ("ES", "+34803123456"), ("CA", "+19002345678"),
])
def test_home_premium_ranges_of_other_homes(home: str, premium: str) -> None:
    """The premium tables cover every region, not just FR and US."""
    with pytest.raises(NumberRejected):
        normalise(premium, home)
    assert dialable_refusal(premium, home, CALLING_CODES[home])


def test_shared_calling_codes_other_than_nanp() -> None:
    """+44 is GB's, Jersey's, Guernsey's and the Isle of Man's: a GB home can't reach Jersey."""
    jersey_mobile = "+447797123456"
    with pytest.raises(NumberRejected, match="is a number in JE"):
        normalise(jersey_mobile, "GB")
    assert dialable_refusal(jersey_mobile, "GB", "44") == FOREIGN
    assert normalise(jersey_mobile, "JE") == jersey_mobile
    assert dialable_refusal(jersey_mobile, "JE", "44") == ""


# ---- the generated tables: exactly phonenumbers' data, and no phonenumbers at call time --

def test_guard_tables_match_the_installed_phonenumbers() -> None:
    """Drift guard: regenerate with `python -m tests.guard_tables_gen > agi/guard_tables.py`."""
    assert (ROOT / "agi" / "guard_tables.py").read_text() == render()


# The types whose example numbers the guard is checked on, besides COSTLY_TYPES.
ALLOWED_TYPES = (P.FIXED_LINE, P.MOBILE, P.FIXED_LINE_OR_MOBILE, P.TOLL_FREE, P.VOIP,
                 P.PERSONAL_NUMBER)
# Calling code -> its regions, main country first, for every code several regions share.
SHARED_CODES = {str(code): regions for code, regions in
                sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()) if len(regions) > 1}
# Regions none of whose examples the shared-code test below can use: phonenumbers gives
# every EH example to MA (MA claims all of EH's leading digits) and every MF example to
# GP or BL, and +290 numbers (4 or 5 digits) are shorter than any the call path dials.
# MF's own numbers are in SHARED_CODE_NUMBERS instead.
NO_USABLE_EXAMPLE = {"212": {"EH"}, "290": {"SH", "TA"}, "590": {"MF"}}


def test_guard_agrees_with_phonenumbers_on_every_regions_examples() -> None:
    """Each region's example numbers: refused types refused, the others dialable."""
    wrong = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        code = CALLING_CODES[region]
        for kind in (*COSTLY_TYPES, *ALLOWED_TYPES):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None or phonenumbers.region_code_for_number(example) != region:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            if not is_home_e164(e164, code):
                continue  # too short for the call path at all: never dialled
            refused = bool(dialable_refusal(e164, region, code))
            if refused != (phonenumbers.number_type(example) in COSTLY_TYPES):
                wrong.append((region, kind, e164, dialable_refusal(e164, region, code)))
    assert wrong == []


@pytest.mark.parametrize("code", list(SHARED_CODES))
def test_guard_splits_every_shared_calling_code(code: str) -> None:
    """Every example number of every region of a shared code, with each region of that
    code as home: dialable (unless costly) from its own region, refused as FOREIGN from
    all the others, exactly as phonenumbers.region_code_for_number assigns it."""
    regions = SHARED_CODES[code]
    wrong, used = [], set()
    for owner in regions:
        for kind in (*COSTLY_TYPES, *ALLOWED_TYPES):
            example = phonenumbers.example_number_for_type(owner, kind)
            if example is None or phonenumbers.region_code_for_number(example) != owner:
                continue  # phonenumbers itself gives this example to another region
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            if not is_home_e164(e164, code):
                continue  # too short for the call path at all: never dialled
            used.add(owner)
            own = COSTLY if phonenumbers.number_type(example) in COSTLY_TYPES else ""
            for home in regions:
                refusal = dialable_refusal(e164, home, code)
                if refusal != (own if home == owner else FOREIGN):
                    wrong.append((home, owner, kind, e164, refusal))
    assert wrong == []
    assert set(regions) - used == NO_USABLE_EXAMPLE.get(code, set())


# (id, number, the region phonenumbers gives it, or None for an invalid number): the
# edges the examples miss. Each is checked against phonenumbers first.
SHARED_CODE_NUMBERS = [
    ("mf-after-gp-and-bl", "+590590071234", "MF"),
    ("va-inside-rome", "+390669812345", "VA"),
    ("sj-leading-digits", "+4779123456", "SJ"),
    ("cc-after-au", "+61891621234", "CC"),
    ("yt-after-re", "+262269612345", "YT"),
    ("us-after-no-leading-digits", "+12125550123", "US"),
    ("gb-invalid", "+446012345678", None),
    ("ru-kz-invalid", "+75123456789", None),
    ("ma-eh-invalid", "+2129212345678", None),
    ("nanp-invalid", "+10001234567", None),
]


@pytest.mark.parametrize(("number", "owner"), [row[1:] for row in SHARED_CODE_NUMBERS],
                         ids=[row[0] for row in SHARED_CODE_NUMBERS])
def test_guard_on_shared_code_edges(number: str, owner: str | None) -> None:
    """Only the owner's home may dial it; a number no region owns is refused by all."""
    parsed = phonenumbers.parse(number)
    assert phonenumbers.region_code_for_number(parsed) == owner
    assert phonenumbers.is_valid_number(parsed) is (owner is not None)
    code = str(parsed.country_code)
    assert {home: dialable_refusal(number, home, code) for home in SHARED_CODES[code]} == {
        home: "" if home == owner else FOREIGN for home in SHARED_CODES[code]}


def test_call_path_never_imports_phonenumbers() -> None:
    code = ("import sys, agi.process_agi, agi.service\n"
            "from agi.config import load\nfrom agi.routing import decide\n"
            "for home, target in (('FR', '+33899123456'), ('US', '+18769261234'),\n"
            "                     ('GB', '+447797123456')):\n"
            "    decide('1001', {'forward_enabled': '1', 'forward_target': target}, {},\n"
            "           load({'CALLROUTE_COUNTRY': home, 'CALLROUTE_CONFIG': '/dev/null'}))\n"
            "assert 'phonenumbers' not in sys.modules, 'phonenumbers imported'\n"
            "assert 'agi.guard_tables' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "phonenumbers" not in proc.stderr
