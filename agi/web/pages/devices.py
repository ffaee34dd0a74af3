"""The Devices and Voicemail tabs: external phones (the employee's too), desk devices,
mailbox, DID and confirmation (admin). Same pattern as forwarding: one admin-layer call,
refusals beside their fields with what was typed, redirect on success.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from agi import admin
from agi.admin import NotFound, Refused
from agi.web.pages import access, forms, render
from agi.web.pages.access import FormData
from agi.web.pages.extensions import _ctx, _typed, show
from agi.web.pages.sessions import Session

router = APIRouter(include_in_schema=False)


def _write(request: Request, ext: str, form: forms.Form, tab: str, *, admin_only: bool,
           write: Callable[[Session], object]) -> Response:
    session = access.post_allowed(request, form)
    if session is None or not session.user.may_access(ext) or (
            admin_only and not session.user.is_admin):
        return render.forbidden(request, session)
    try:
        write(session)
    except NotFound:
        return show(request, session, ext, tab=tab)
    except (Refused, forms.FormRefused) as exc:
        return show(request, session, ext, tab=tab, status=422, typed=_typed(form),
                    errors=forms.field_errors(exc.refusals))
    return render.see_other(f"/extensions/{ext}?tab={tab}&saved=1")


@router.post("/extensions/{ext}/devices")
def add_device(request: Request, ext: str, form: FormData) -> Response:
    store, config = _ctx(request)
    return _write(request, ext, form, "devices", admin_only=False, write=lambda s: (
        admin.put_device(store, config, ext, forms.value(form, "number"), forms.device(form),
                         access.actor(request, s))))


@router.post("/extensions/{ext}/devices/update")
def update_device(request: Request, ext: str, form: FormData) -> Response:
    store, config = _ctx(request)
    return _write(request, ext, form, "devices", admin_only=False, write=lambda s: (
        admin.update_device(store, config, ext, forms.value(form, "number"),
                            forms.device(form), access.actor(request, s))))


@router.get("/extensions/{ext}/devices/remove")
def confirm_remove(request: Request, ext: str, number: str = "") -> Response:
    """The confirmation step: a page with a POST form; nothing is removed by a GET."""
    session = access.current(request)
    if session is None:
        return render.to_login(request)
    if not session.user.may_access(ext):
        return render.forbidden(request, session)
    return show(request, session, ext, tab="devices", confirm=number[:64])


@router.post("/extensions/{ext}/devices/remove")
def remove_device(request: Request, ext: str, form: FormData) -> Response:
    store, config = _ctx(request)
    return _write(request, ext, form, "devices", admin_only=False, write=lambda s: (
        admin.remove_device(store, config, ext, forms.value(form, "number"),
                            access.actor(request, s))))


@router.post("/extensions/{ext}/desk")
def save_desk(request: Request, ext: str, form: FormData) -> Response:
    store, config = _ctx(request)
    return _write(request, ext, form, "devices", admin_only=True, write=lambda s: (
        admin.update_extension(store, config, ext, forms.desk(form),
                               access.actor(request, s))))


@router.post("/extensions/{ext}/voicemail")
def save_voicemail(request: Request, ext: str, form: FormData) -> Response:
    store, config = _ctx(request)
    return _write(request, ext, form, "voicemail", admin_only=True, write=lambda s: (
        admin.update_extension(store, config, ext, forms.voicemail(form),
                               access.actor(request, s))))
