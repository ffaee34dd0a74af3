"""The forms: refusals beside their field with the admin layer's code, in the page's
language, the typed text kept and nothing written; successes stored in E.164 and shown
in national format; devices, users, company and the audit trail."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import ADMIN
from tests.web.pages.conftest import EMPLOYEE


def error_codes(html: str, field: str) -> list[str]:
    return re.findall(rf'<p class="error" id="{field}-error" data-code="([a-z_]+)"', html)


@pytest.mark.parametrize(("typed", "code"), [
    ("+32 470 12 34 56", "international"),
    ("08 99 12 34 56", "premium_rate"),
    ("112", "emergency"),
    ("01 40 00 00 00", "own_number"),
    ("06 12 & 34", "invalid_number"),
])
def test_a_refused_target_is_shown_beside_the_field_and_nothing_is_written(
        browser, snapshot, typed, code):
    page = browser("fr")
    page.login(ADMIN)
    page.get("/extensions/1001")
    before = snapshot()
    response = page.post("/extensions/1001/forwarding", {
        "enabled": "on", "target": typed, "caller_id": "company", "when": "always"})
    assert response.status_code == 422
    assert error_codes(response.text, "target") == [code]
    assert f'id="target" name="target" type="tel" inputmode="tel" autocomplete="off" ' \
           f'value="{typed.replace("&", "&amp;")}"' in response.text
    assert "Rien n&#39;a été enregistré" in response.text
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_english_errors_and_a_bad_after(browser, redis_client):
    page = browser("en")
    page.login(ADMIN)
    page.get("/extensions/1001")
    response = page.post("/extensions/1001/forwarding", [
        ("enabled", "on"), ("target", "0612345678"), ("when", "noanswer"), ("after", "999")])
    assert response.status_code == 422 and error_codes(response.text, "after") == [
        "out_of_range"]
    assert "outside the allowed range" in response.text
    assert redis_client.hget("callroute:ext:1001", "forward_enabled") == "0"


def test_saved_forwarding_is_e164_in_redis_and_national_on_the_page(browser, redis_client):
    page = browser("fr")
    page.login(ADMIN)
    page.get("/extensions/1001")
    response = page.post("/extensions/1001/forwarding", [
        ("enabled", "on"), ("target", "06 12 34 56 78"), ("caller_id", "company"),
        ("require_keypress", "on"), ("when", "busy"), ("when", "noanswer"), ("after", "15")])
    assert response.status_code == 303
    stored = redis_client.hgetall("callroute:ext:1001")
    assert stored["forward_target"] == "+33612345678"
    assert stored["forward_when"] == "busy,noanswer" and stored["forward_after"] == "15"
    html = page.get(response.headers["location"]).text
    assert 'value="06 12 34 56 78"' in html and "Activé → 06 12 34 56 78" in html
    assert "Enregistré." in html
    listing = page.get("/extensions").text
    assert "Activé → 06 12 34 56 78" in listing and "Si personne ne répond" in listing


def test_external_phone_added_edited_and_removed_after_confirmation(browser, redis_client):
    page = browser("en")
    page.login(EMPLOYEE)
    page.get("/extensions/1002?tab=devices")
    added = page.post("/extensions/1002/devices", {
        "form": "add", "number": "07 81 22 33 44", "require_keypress": "true",
        "delay": "5", "ring": "25"})
    assert added.status_code == 303
    assert "+33781223344" in redis_client.hget("callroute:ext:1002", "external_devices")
    html = page.get("/extensions/1002?tab=devices").text
    assert "07 81 22 33 44" in html
    changed = page.post("/extensions/1002/devices/update", {
        "number": "+33781223344", "require_keypress": "", "delay": "0", "ring": ""})
    assert changed.status_code == 303
    confirm = page.get("/extensions/1002/devices/remove?number=%2B33781223344")
    assert "Remove the external phone 07 81 22 33 44?" in confirm.text
    assert "+33781223344" in redis_client.hget("callroute:ext:1002", "external_devices")
    assert page.post("/extensions/1002/devices/remove",
                     {"number": "+33781223344"}).status_code == 303
    assert "+33781223344" not in (redis_client.hget("callroute:ext:1002",
                                                    "external_devices") or "")


def test_a_refused_device_keeps_the_form_open_with_what_was_typed(browser, snapshot):
    page = browser("fr")
    page.login(ADMIN)
    page.get("/extensions/1001?tab=devices")
    before = snapshot()
    response = page.post("/extensions/1001/devices", {
        "form": "add", "number": "+44 7911 123456", "delay": "0"})
    assert response.status_code == 422 and error_codes(response.text, "number") == [
        "international"]
    assert '<details id="add-device" open>' in response.text
    assert 'value="+44 7911 123456"' in response.text
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_users_added_with_a_password_shown_once_reset_and_removed(browser, accounts,
                                                                 redis_client):
    page = browser("en")
    page.login(ADMIN)
    page.get("/users")
    added = page.post("/users", {"username": "zoe", "role": "user", "extensions": "1001"})
    shown = re.search(r'<code id="new-password">([^<]+)</code>', added.text).group(1)
    assert accounts.authenticate("zoe", shown) is not None
    assert shown not in page.get("/users").text
    reset = page.post("/users/zoe/password", {})
    again = re.search(r'<code id="new-password">([^<]+)</code>', reset.text).group(1)
    assert again != shown and accounts.authenticate("zoe", again) is not None
    assert page.post("/users/zoe/remove", {}).status_code == 303
    assert accounts.get_user("zoe") is None
    trail = redis_client.xrange("callroute:audit")
    assert [(f["actor"], f["action"]) for _id, f in trail
            if f["action"].startswith("user.")] == [
        (f"web:{ADMIN}", "user.add"), (f"web:{ADMIN}", "user.password"),
        (f"web:{ADMIN}", "user.remove")]
    assert shown not in str(trail) and again not in str(trail)
    bad = page.post("/users", {"username": "Bad Name", "role": "user"})
    assert bad.status_code == 422 and error_codes(bad.text, "username") == [
        "invalid_username"]


def test_audit_page_shows_web_changes_filtered_by_extension(browser):
    page = browser("en")
    page.login(ADMIN)
    page.get("/extensions/1001")
    page.post("/extensions/1001/forwarding", {"enabled": "on", "target": "0612345678"})
    html = page.get("/audit?ext=1001").text
    assert f"web:{ADMIN}" in html and "Call forwarding changed" in html
    assert "06 12 34 56 78" in html
    assert "Company changed" not in html


def test_language_switch_is_kept_in_the_session(browser):
    page = browser("en")
    page.login(ADMIN)
    page.get("/extensions")
    switched = page.post("/language", {"lang": "fr", "next": "/extensions"})
    assert switched.headers["location"] == "/extensions"
    assert "Renvoi automatique" in page.get("/extensions").text
    outside = page.post("/language", {"lang": "en", "next": "//evil.example/"})
    assert outside.headers["location"] == "/"


def test_the_phone_language_is_the_admins_on_the_company_and_voicemail_pages(
        browser, redis_client, snapshot):
    page = browser("fr")
    page.login(ADMIN)
    page.get("/company")
    saved = page.post("/company", {"caller_id": "01 40 00 00 00", "name": "Acme",
                                   "language": "fr"})
    assert saved.status_code == 303, saved.text
    assert redis_client.hget("callroute:company", "language") == "fr"
    assert 'id="language" name="language" value="fr"' in page.get("/company").text
    before = snapshot()
    refused = page.post("/company", {"caller_id": "01 40 00 00 00", "name": "Acme",
                                     "language": "fr;Dial(x)"})
    assert refused.status_code == 422
    assert error_codes(refused.text, "language") == ["invalid_language"]
    assert 'value="fr;Dial(x)"' in refused.text  # what was typed stays
    assert snapshot() == before
    page.get("/extensions/1001")
    vm = page.post("/extensions/1001/voicemail", {"mailbox": "1001@default",
                                                  "language": "en"})
    assert vm.status_code == 303, vm.text
    assert redis_client.hget("callroute:ext:1001", "language") == "en"


def test_an_employee_is_not_offered_the_language(browser):
    page = browser("en")
    page.login(EMPLOYEE)
    own = page.get("/extensions/1002")
    assert own.status_code == 200
    assert 'name="forward_target"' in own.text or 'name="target"' in own.text
    assert 'name="language"' not in own.text
