"""The pages' words: one JSON catalog per language, chosen per request.

Templates and Python code hold only catalog keys, so a translation never needs a code
change; a key missing from a catalog is a test failure (tests/web/test_pages_i18n.py),
and shows as the key itself rather than crashing a page.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "fr")
DEFAULT = "en"
_DIR = Path(__file__).parent / "catalogs"


@cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str):
    words = catalog(lang)

    def t(key: str, **values: object) -> str:
        text = words.get(key, key)
        return text.format(**values) if values else text

    return t


def from_accept_language(header: str) -> str:
    """The best of LANGUAGES for an Accept-Language header (q-values honoured)."""
    best, best_q = DEFAULT, -1.0
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        q -= position / 1000  # earlier wins a tie
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def choose(session_lang: str, accept_language: str) -> str:
    return session_lang if session_lang in LANGUAGES else from_accept_language(
        accept_language)
