"""The Office Manager pages: server-rendered HTML on the admin layer, for admins and
employees. Kept apart from the JSON API; `install` adds them to the app in one call.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    from agi.web.pages import devices, extensions, login, office
    from agi.web.pages.security import PageGuard

    for module in (login, extensions, devices, office):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="static")
    app.add_middleware(PageGuard)
