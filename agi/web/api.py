"""/api/v1: extensions, forwarding, devices, the company and the audit trail.

Thin by design: each route checks who may ask (agi.web.auth), converts the strict body
(agi.web.models) and calls one admin-layer function, which validates, writes atomically
with its audit record, and raises refusals that agi.web.app turns into errors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from agi import admin, schema
from agi.accounts import User
from agi.admin import Actor, AuditRecord, ExtensionView, checks
from agi.admin.errors import NotFound
from agi.admin.views import extension_view
from agi.config import Config
from agi.store import AdminStore
from agi.web import auth
from agi.web.auth import AdminUser, CurrentUser, ExtensionUser
from agi.web.errors import ApiError
from agi.web.models import (
    USER_FORWARDING_FIELDS,
    CompanyPatch,
    DeviceCreate,
    DevicePatch,
    ExtensionCreate,
    ExtensionPatch,
    ForwardingPatch,
)

router = APIRouter(tags=["api"])
router.include_router(auth.router)
AUDIT_LIMIT = (1, 1000)
IfMatch = Annotated[str | None, Header(max_length=128)]


def _ctx(request: Request) -> tuple[AdminStore, Config]:
    return request.app.state.store, request.app.state.config


def _actor(request: Request, user: User) -> Actor:
    return Actor(f"api:{user.name}", auth.client_address(request))


def _version(if_match: str | None) -> str | None:
    """The version an If-Match names ("*" or absent: any)."""
    if if_match is None or if_match.strip() == "*":
        return None
    return if_match.strip().removeprefix("W/").strip('"')


def _view(view: ExtensionView, status: int = 200, **headers: str) -> JSONResponse:
    """The extension in the `ext show --json` shape, its version as the ETag. Responses
    are built here rather than by FastAPI's response models: the views are already
    plain JSON, and validating them again would cost every request."""
    return JSONResponse(view.to_json(), status_code=status,
                        headers={"ETag": f'"{view.version}"', **headers})


def _stored_device(view: ExtensionView, raw: str, config: Config) -> dict:
    """The device a POST/PATCH stored, found by its E.164 form (`raw` passed the admin
    layer's checks already, so it normalises)."""
    from agi.numbers import normalise

    number = normalise(raw, config.country, purpose="own")
    return next((d for d in view.to_json()["external_devices"] if d["number"] == number),
                {"number": number})


@router.get("/extensions")
def list_extensions(request: Request, user: CurrentUser) -> JSONResponse:
    """Every extension the caller may see, each in the `ext show --json` shape."""
    store, config = _ctx(request)
    if user.is_admin:
        return JSONResponse([view.to_json() for view in admin.list_extensions(store, config)])
    views = []
    for ext in user.extensions:
        try:
            views.append(admin.get_extension(store, config, ext).to_json())
        except NotFound:
            continue
    return JSONResponse(views)


@router.get("/extensions/{ext}")
async def get_extension(ext: str, request: Request, user: ExtensionUser) -> JSONResponse:
    """One extension, with its version as the ETag (send it back as If-Match).

    The most frequent request, so it runs on the event loop: admin.get_extension's own
    checks and view builder, with both hashes read in one pipelined round trip on
    redis.asyncio instead of two on a pool thread."""
    checks.extension(ext)
    prefix = request.app.state.config.prefix
    pipe = request.app.state.aredis.pipeline(transaction=False)
    pipe.hgetall(schema.ext_key(prefix, ext))
    pipe.hgetall(schema.company_key(prefix))
    fields, company = await pipe.execute()
    return _view(extension_view(ext, checks.exists(ext, fields), company,
                                request.app.state.config))


@router.post("/extensions", status_code=201)
def create_extension(body: ExtensionCreate, request: Request,
                     user: AdminUser) -> JSONResponse:
    """Create an extension (admin). 409 `exists` if it is there already."""
    store, config = _ctx(request)
    try:
        admin.get_extension(store, config, body.extension)
    except NotFound:
        view = admin.put_extension(store, config, body.extension, body.changes(),
                                   _actor(request, user))
        return _view(view, 201, Location=f"{request.url.path}/{body.extension}")
    raise ApiError(409, "exists", f"extension {body.extension} already exists",
                   field="extension")


@router.patch("/extensions/{ext}")
def update_extension(ext: str, body: ExtensionPatch, request: Request, user: AdminUser,
                     if_match: IfMatch = None) -> JSONResponse:
    """Desk devices, DID, mailbox, confirmation, externals-during-calls (admin)."""
    store, config = _ctx(request)
    return _view(admin.update_extension(
        store, config, ext, body.changes(), _actor(request, user),
        if_match=_version(if_match)))


@router.delete("/extensions/{ext}", status_code=204)
def delete_extension(ext: str, request: Request, user: AdminUser,
                     if_match: IfMatch = None) -> Response:
    store, config = _ctx(request)
    admin.remove_extension(store, config, ext, _actor(request, user),
                           if_match=_version(if_match))
    return Response(status_code=204)


@router.patch("/extensions/{ext}/forwarding")
def set_forwarding(ext: str, body: ForwardingPatch, request: Request, user: ExtensionUser,
                   if_match: IfMatch = None) -> JSONResponse:
    """Any subset of enabled, target, when, after, caller_id (admin), require_keypress."""
    if not user.is_admin:
        forbidden = sorted(body.model_fields_set - USER_FORWARDING_FIELDS)
        if forbidden:
            raise ApiError(403, "admin_only", f"only an admin may change {forbidden[0]}",
                           field=forbidden[0])
    store, config = _ctx(request)
    return _view(admin.set_forwarding(
        store, config, ext, body.changes(), _actor(request, user),
        if_match=_version(if_match)))


@router.post("/extensions/{ext}/devices", status_code=201)
def add_device(ext: str, body: DeviceCreate, request: Request, user: ExtensionUser,
               if_match: IfMatch = None) -> JSONResponse:
    """Add an external phone (or change the one with that number): the stored device."""
    store, config = _ctx(request)
    view = admin.put_device(store, config, ext, body.number, body.changes(),
                            _actor(request, user), if_match=_version(if_match))
    return JSONResponse(_stored_device(view, body.number, config), status_code=201,
                        headers={"ETag": f'"{view.version}"'})


@router.patch("/extensions/{ext}/devices/{number}")
def update_device(ext: str, number: str, body: DevicePatch, request: Request,
                  user: ExtensionUser, if_match: IfMatch = None) -> JSONResponse:
    store, config = _ctx(request)
    view = admin.update_device(store, config, ext, number, body.changes(),
                               _actor(request, user), if_match=_version(if_match))
    return JSONResponse(_stored_device(view, number, config),
                        headers={"ETag": f'"{view.version}"'})


@router.delete("/extensions/{ext}/devices/{number}", status_code=204)
def remove_device(ext: str, number: str, request: Request, user: ExtensionUser,
                  if_match: IfMatch = None) -> Response:
    store, config = _ctx(request)
    admin.remove_device(store, config, ext, number, _actor(request, user),
                        if_match=_version(if_match))
    return Response(status_code=204)


@router.get("/company")
def get_company(request: Request, user: AdminUser) -> JSONResponse:
    store, config = _ctx(request)
    return JSONResponse(admin.get_company(store, config).to_json())


@router.patch("/company")
def set_company(body: CompanyPatch, request: Request, user: AdminUser) -> JSONResponse:
    """The company caller-ID number, name and language (admin)."""
    store, config = _ctx(request)
    admin.set_company(store, config, actor=_actor(request, user),
                      **{name: value for name, value in body.given().items()})
    return JSONResponse(admin.get_company(store, config).to_json())


@router.get("/audit")
def read_audit(request: Request, user: CurrentUser,
               ext: Annotated[str | None, Query(max_length=64)] = None,
               limit: Annotated[int, Query(ge=AUDIT_LIMIT[0], le=AUDIT_LIMIT[1])] = 100,
               ) -> JSONResponse:
    """Recent changes, newest first: admins see all, users their extensions'."""
    store, _ = _ctx(request)
    return JSONResponse([record.to_json() for record in audit_records(store, user, ext, limit)])


def audit_records(store: AdminStore, user: User, ext: str | None, limit: int
                  ) -> list[AuditRecord]:
    """The audit records `user` may read (the pages' /audit uses it too), or 403."""
    if ext is not None and not user.may_access(ext):
        raise ApiError(403, "not_yours", "this extension is not one of yours", field="ext")
    if user.is_admin or ext is not None:
        records = admin.read_audit(store, ext=ext or None, limit=limit)
    else:
        records = [r for own in user.extensions
                   for r in admin.read_audit(store, ext=own, limit=limit)]
        records.sort(key=lambda r: _stream_order(r.id), reverse=True)
    return records[:limit]


def _stream_order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)

