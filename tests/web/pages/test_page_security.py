"""Every state change is a same-origin POST with the session's CSRF token; GETs change
nothing; headers forbid framing, sniffing, inline script and referrers; output is
escaped; an employee reaches only their own extensions, through every page."""

from __future__ import annotations

import pytest

from agi.web.pages.security import CSP
from tests.web.conftest import ADMIN
from tests.web.pages.conftest import EMPLOYEE

FORWARD_ON = {"enabled": "on", "target": "06 12 34 56 78", "when": "always", "after": "20"}
# Every POST a page makes, with a body that would change something if accepted.
POSTS = [
    ("/extensions/1001/forwarding", FORWARD_ON),
    ("/extensions/1001/devices", {"number": "07 81 22 33 44", "delay": "0", "form": "add"}),
    ("/extensions/1001/desk", {"devices": "PJSIP/1009"}),
    ("/extensions/1001/voicemail", {"mailbox": "9@default"}),
    ("/extensions", {"extension": "1003"}),
    ("/company", {"caller_id": "01 40 00 00 01", "name": "Evil"}),
    ("/users", {"username": "mallory", "role": "admin"}),
    (f"/users/{EMPLOYEE}/password", {}),
    (f"/users/{EMPLOYEE}/remove", {}),
    ("/logout", {}),
    ("/language", {"lang": "fr", "next": "/"}),
]


@pytest.mark.parametrize(("path", "data"), POSTS)
def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(
        browser, snapshot, path, data):
    page = browser()
    page.login(ADMIN)
    before = snapshot()
    assert page.post(path, data, csrf=False).status_code == 403
    page.csrf = "x" * 43
    assert page.post(path, data).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(("path", "data"), POSTS)
def test_a_cross_origin_post_is_refused_and_writes_nothing(browser, snapshot, path, data):
    page = browser()
    page.login(ADMIN)
    before = snapshot()
    assert page.post(path, data, origin="https://evil.example").status_code == 403
    assert page.post(path, data, origin=None,
                     headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert page.post(path, data, origin=None).status_code == 403
    assert snapshot() == before


def test_sec_fetch_site_same_origin_is_enough_without_origin(browser, redis_client):
    page = browser()
    page.login(ADMIN)
    response = page.post("/extensions/1001/forwarding", FORWARD_ON, origin=None,
                         headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303
    assert redis_client.hget("callroute:ext:1001", "forward_target") == "+33612345678"


def test_no_get_changes_anything(browser, snapshot):
    page = browser()
    page.login(ADMIN)
    before = snapshot()
    for path in ("/extensions", "/extensions?q=10", "/extensions/1001",
                 "/extensions/1001?tab=devices", "/extensions/1001?tab=voicemail",
                 "/extensions/1001/devices/remove?number=%2B33781223344", "/company",
                 "/users", "/users?remove=eve", "/audit", "/audit?ext=1001", "/logout",
                 "/extensions/1001/forwarding?enabled=on&target=0612345678"):
        assert page.get(path).status_code in (200, 405), path
    # Sessions' idle expiry is pushed back (a TTL, not a value): compare values only.
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_every_page_has_the_security_headers(browser):
    page = browser()
    page.login(ADMIN)
    for path in ("/login", "/extensions", "/extensions/1001", "/company", "/users",
                 "/audit", "/static/live.js", "/nope"):
        headers = page.get(path).headers
        assert headers["content-security-policy"] == CSP, path
        assert "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_no_inline_script_or_style_in_any_page(browser):
    page = browser()
    page.login(ADMIN)
    for path in ("/extensions", "/extensions/1001", "/extensions/1001?tab=devices",
                 "/company", "/users", "/audit"):
        html = page.get(path).text
        assert "<script>" not in html and "<style" not in html and " style=" not in html
        assert " on" + "click=" not in html


def test_a_company_name_with_a_script_tag_is_shown_as_text(browser):
    page = browser()
    page.login(ADMIN)
    page.get("/company")
    assert page.post("/company", {"caller_id": "01 40 00 00 00",
                                  "name": "<script>alert(1)</script>"}).status_code == 303
    html = page.get("/company").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_employee_lands_on_their_extension_and_is_refused_the_rest(browser, snapshot):
    page = browser()
    response = page.login(EMPLOYEE)
    assert response.headers["location"] == "/extensions/1002"
    own = page.get("/extensions/1002")
    assert own.status_code == 200 and 'name="caller_id"' not in own.text
    assert 'action="/extensions/1002/desk"' not in own.text
    before = snapshot()
    for path in ("/extensions", "/extensions/1001", "/extensions/1001?tab=devices",
                 "/extensions/1003", "/extensions/1002?tab=voicemail", "/company",
                 "/users", "/audit?ext=1001"):
        answer = page.get(path)
        if path.endswith("voicemail"):  # falls back to the forwarding tab
            assert 'action="/extensions/1002/voicemail"' not in answer.text
            continue
        assert answer.status_code == 403, path
        # Nothing stored leaks: not the other desk, mailbox, company name or users.
        for secret in ("PJSIP/1001", "1001@default", "Acme", ADMIN):
            assert secret not in answer.text, (path, secret)
    for path, data in POSTS[:4]:
        assert page.post(path, data).status_code == 403, path
    assert page.post("/extensions/1002/forwarding",
                     {**FORWARD_ON, "caller_id": "company"}).status_code == 403
    assert page.post("/extensions/1002/desk", {"devices": "PJSIP/1"}).status_code == 403
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}


def test_an_employee_turns_their_forwarding_on(browser, redis_client):
    page = browser()
    page.login(EMPLOYEE)
    assert page.post("/extensions/1002/forwarding", FORWARD_ON).status_code == 303
    assert redis_client.hget("callroute:ext:1002", "forward_target") == "+33612345678"
    record = redis_client.xrevrange("callroute:audit", count=1)[0][1]
    assert record["actor"] == f"web:{EMPLOYEE}" and record["ext"] == "1002"


@pytest.mark.parametrize("path", ["/extensions/..%2f1002", "/extensions/" + "9" * 300,
                                  "/extensions/10%2001", "/extensions/%3Cscript%3E",
                                  "/extensions/1009"])
def test_odd_extension_urls_get_a_page_and_change_nothing(browser, snapshot, path):
    page, employee = browser(), browser()
    page.login(ADMIN)
    employee.login(EMPLOYEE)
    before = snapshot()
    answer = page.get(path)
    assert answer.status_code in (403, 404), (path, answer.status_code)
    assert "<script>" not in answer.text
    assert employee.get(path).status_code in (403, 404)
    assert {k: v[1] for k, v in snapshot().items()} == {k: v[1] for k, v in before.items()}
