"""The list page's view cache gives exactly what admin.list_extensions gives, after any
change, including one made in Redis by hand."""

from __future__ import annotations

import redis

from agi import admin
from agi.admin import Actor, ForwardingChanges
from agi.config import Config
from agi.store import AdminStore
from agi.web.pages.listing import ViewCache


def test_cached_views_equal_the_admin_layers_after_every_change(
        store: AdminStore, web_config: Config, extensions: None, redis_client: redis.Redis):
    cache = ViewCache()
    assert cache.list_extensions(store, web_config) == admin.list_extensions(store, web_config)
    admin.set_forwarding(store, web_config, "1001", ForwardingChanges(
        enabled=True, target="0612345678"), Actor("cli:test"))
    assert cache.list_extensions(store, web_config) == admin.list_extensions(store, web_config)
    redis_client.hset("callroute:ext:1002", "forward_enabled", "1")  # by hand, no audit
    redis_client.hset("callroute:ext:1002", "forward_target", "+33698765432")
    views = cache.list_extensions(store, web_config)
    assert views == admin.list_extensions(store, web_config)
    assert views[1].forward.enabled and views[1].forward.target == "+33698765432"
    redis_client.hset("callroute:company", "caller_id", "+33140000001")  # company changes all
    assert cache.list_extensions(store, web_config) == admin.list_extensions(store, web_config)
    redis_client.delete("callroute:ext:1001")
    redis_client.srem("callroute:extensions", "1001")
    assert [v.extension for v in cache.list_extensions(store, web_config)] == ["1002"]


def test_rows_are_rendered_again_only_for_a_changed_view(
        store: AdminStore, web_config: Config, extensions: None):
    from agi.web.pages.listing import RowCache

    views, rows, rendered = ViewCache(), RowCache(), []

    def render_row(view) -> str:
        rendered.append(view.extension)
        return f"<tr>{view.extension} {view.forward.enabled}</tr>"

    first = rows.rows(views.list_extensions(store, web_config), "fr", render_row)
    again = rows.rows(views.list_extensions(store, web_config), "fr", render_row)
    assert again == first and rendered == ["1001", "1002"]
    rows.rows(views.list_extensions(store, web_config), "en", render_row)
    assert rendered == ["1001", "1002", "1001", "1002"]
    admin.set_forwarding(store, web_config, "1002", ForwardingChanges(
        enabled=True, target="0612345678"), Actor("cli:test"))
    changed = rows.rows(views.list_extensions(store, web_config), "fr", render_row)
    assert rendered[4:] == ["1002"]
    assert changed[0] is first[0] and str(changed[1]) == "<tr>1002 True</tr>"
