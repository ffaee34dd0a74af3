"""Rendering: the Jinja environment (autoescaped), numbers for people, page responses."""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path
from urllib.parse import parse_qs

import phonenumbers
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from agi.web.pages import i18n, sessions
from agi.web.pages.sessions import Session

_TEMPLATES = Path(__file__).parent / "templates"
MAX_FIELD = 1024


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(
        default=True, default_for_string=True), undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    return env


@cache
def national(number: str, country: str) -> str:
    """+33612345678 -> 06 12 34 56 78 (numbers are stored E.164); other text as is."""
    if not number.startswith("+"):
        return number
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return number
    fmt = phonenumbers.PhoneNumberFormat
    region = phonenumbers.region_code_for_number(parsed)
    return phonenumbers.format_number(parsed, fmt.NATIONAL if region == country
                                      else fmt.INTERNATIONAL)


def language(request: Request, session: Session | None) -> str:
    return i18n.choose(session.lang if session else "",
                       request.headers.get("accept-language", ""))


def fragment(request: Request, template: str, session: Session | None,
             **context: object) -> str:
    """`template` rendered in the request's language, with what every page gets."""
    lang = language(request, session)
    country = request.app.state.config.country
    return environment().get_template(template).render(
        t=i18n.translator(lang), lang=lang, session=session,
        user=session.user if session else None, csrf=session.csrf if session else "",
        national=partial(national, country=country), path=request.url.path,
        here=here(request), **context)


def page(request: Request, template: str, session: Session | None, *, status: int = 200,
         **context: object) -> HTMLResponse:
    """A page in the request's language; `session` None for the login page."""
    return HTMLResponse(fragment(request, template, session, **context),
                        status_code=status, headers={"Cache-Control": "no-store"})


def here(request: Request) -> str:
    """The page to come back to after switching language: this page, or for a
    refused POST the page its form is on (the POST URL itself is not a page)."""
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    parts = request.url.path.strip("/").split("/")
    return "/" + "/".join(parts[:2] if parts[0] == "extensions" else parts[:1])


def forbidden(request: Request, session: Session | None) -> HTMLResponse:
    return page(request, "error.html", session, status=403, title_key="error.forbidden.title",
                message_key="error.forbidden.text")


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def to_login(request: Request) -> RedirectResponse:
    response = see_other("/login")
    sessions.clear_cookie(response, request)
    return response


async def form_data(request: Request) -> dict[str, list[str]]:
    """The urlencoded body (RequestGuard caps it at 64 KiB); each value capped."""
    body = (await request.body()).decode("utf-8", "replace")
    return {key[:64]: [value[:MAX_FIELD] for value in values]
            for key, values in parse_qs(body, keep_blank_values=True).items()}


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]
