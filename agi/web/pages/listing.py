"""The extension list, read in full on every request, its views and rows rebuilt only on
change.

admin.list_extensions builds every view through the call path's read_settings and
route_for: ~0.2 ms an extension, 40 ms for 200, most of the list page's time. A view is
a pure function of the extension's stored hash, the company hash and the (per-process)
configuration, so the page keeps the last view of each extension and calls the admin
layer's extension_view again only when one of those hashes differs. Redis is still read
whole on every request, so a change made anywhere (even by hand) shows at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from markupsafe import Markup

from agi.admin.views import ExtensionView, extension_view
from agi.config import Config
from agi.store import AdminStore

_Key = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


class ViewCache:
    def __init__(self) -> None:
        self._views: dict[str, tuple[_Key, ExtensionView]] = {}
        self._lock = threading.Lock()

    def list_extensions(self, store: AdminStore, config: Config) -> list[ExtensionView]:
        """What admin.list_extensions returns (tests/web/pages/test_listing.py checks)."""
        company = store.get_company()
        company_key = tuple(sorted(company.items()))
        with self._lock:
            known = self._views
        fresh: dict[str, tuple[_Key, ExtensionView]] = {}
        for ext, fields in store.all_extensions().items():
            if not fields:
                continue
            key = (company_key, tuple(sorted(fields.items())))
            cached = known.get(ext)
            view = cached[1] if cached is not None and cached[0] == key else \
                extension_view(ext, fields, company, config)
            fresh[ext] = (key, view)
        with self._lock:
            self._views = fresh
        return [view for _, view in fresh.values()]


class RowCache:
    """Each extension's row of the list, as HTML, per language: rendered again only when
    ViewCache gave a new view for it (a view is replaced, never changed in place)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, tuple[ExtensionView, Markup]]] = {}

    def rows(self, views: list[ExtensionView], lang: str,
             render_row: Callable[[ExtensionView], str]) -> list[Markup]:
        known = self._rows.get(lang, {})
        fresh: dict[str, tuple[ExtensionView, Markup]] = {}
        for view in views:
            cached = known.get(view.extension)
            html = cached[1] if cached is not None and cached[0] is view else \
                Markup(render_row(view))  # our own autoescaped template
            fresh[view.extension] = (view, html)
        self._rows[lang] = fresh
        return [html for _, html in fresh.values()]
