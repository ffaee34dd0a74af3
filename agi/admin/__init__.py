"""The admin layer: every read for display and every write, for every interface.

The CLI, the desk-phone feature codes and the HTTP API call these functions and only
present their results: the rules live here, once. Typed inputs (agi.admin.inputs),
views (agi.admin.views), refusals as values (agi.admin.errors). Never imported on the
call path (`callroute-agi`): it pulls in dataclasses, redis-py and phonenumbers.
"""

from agi.admin.audit import read_audit
from agi.admin.devices import put_device, remove_device, update_device
from agi.admin.errors import NotFound, Refusal, Refused, Stale
from agi.admin.extensions import (
    get_company,
    get_extension,
    list_extensions,
    put_extension,
    remove_extension,
    set_company,
    update_extension,
)
from agi.admin.forwarding import set_forwarding, toggle_forwarding
from agi.admin.inputs import UNSET, Actor, DeviceChanges, ExtensionChanges, ForwardingChanges
from agi.admin.views import AuditRecord, CompanyView, ExtensionView
from agi.store import AdminStore, StoreError

__all__ = [
    "UNSET", "Actor", "AdminStore", "AuditRecord", "CompanyView", "DeviceChanges",
    "ExtensionChanges", "ExtensionView", "ForwardingChanges", "NotFound", "Refusal",
    "Refused", "Stale", "StoreError", "get_company", "get_extension", "list_extensions",
    "put_device", "put_extension", "read_audit", "remove_device", "remove_extension",
    "set_company", "set_forwarding", "toggle_forwarding", "update_device", "update_extension",
]
