"""Who is asking: bearer tokens, the Basic login that issues them, and role checks.

The user is read from Redis on every request, so a role change, a removal or a revocation
applies at the next request, in every process.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from agi.accounts import TOKEN_HOURS_DEFAULT, Accounts, User, token_key, user_from_fields
from agi.schema import user_key
from agi.web.errors import ApiError

router = APIRouter(tags=["tokens"])
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callroute"'}
# The token's user and that user's hash in one round trip (half the auth cost of a
# request). The user key is built inside the script from the token's value, so it can't
# be declared in KEYS: fine on one Redis or Sentinel, which is what callroute supports.
_TOKEN_USER = """
local name = redis.call('HGET', KEYS[1], 'user')
if not name then return false end
return {name, redis.call('HGETALL', ARGV[1] .. name)}
"""
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="callroute", charset="UTF-8"'}


def accounts_of(request: Request) -> Accounts:
    return request.app.state.accounts


def client_address(request: Request) -> str:
    """The client's address: uvicorn puts the proxy's X-Forwarded-For here only when
    callroute-web runs with --behind-proxy."""
    return request.client.host if request.client else ""


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def token_user(request: Request, token: str) -> User | None:
    """The live user a token belongs to, or None; on redis.asyncio, so the check costs
    no trip through the thread pool (the sync twin is Accounts.token_user)."""
    if not 20 <= len(token) <= 128:
        return None
    prefix = request.app.state.config.prefix
    found = await request.app.state.aredis.eval(_TOKEN_USER, 1, token_key(prefix, token),
                                                user_key(prefix, ""))
    if not found:
        return None
    name, flat = found
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return user_from_fields(name, fields) if fields else None


async def current_user(request: Request) -> User:
    """The token's user, or 401. Missing, malformed, expired and revoked look the same."""
    token = bearer_token(request)
    user = await token_user(request, token) if token else None
    if user is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required "
                       "(POST /api/v1/tokens with your user name and password)",
                       headers=_BEARER_CHALLENGE)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise ApiError(403, "admin_only", "only an admin may do this")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def extension_user(ext: str, user: CurrentUser) -> User:
    """The user, if `ext` is one of theirs (admins: any). Checked before the extension is
    read, so a 403 says nothing about whether it exists."""
    if not user.may_access(ext):
        raise ApiError(403, "not_yours", "this extension is not one of yours", field="ext")
    return user


ExtensionUser = Annotated[User, Depends(extension_user)]


def _basic_credentials(request: Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            name, sep, password = base64.b64decode(encoded.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if sep and name:
            return name[:64], password[:1024]
    raise ApiError(401, "unauthorized", "log in with HTTP Basic credentials",
                   headers=_BASIC_CHALLENGE)


@router.post("/tokens", status_code=201)
def create_token(request: Request) -> dict[str, str]:
    """Log in with HTTP Basic credentials: a bearer token for 12 hours.

    After 5 failures for one user name, or from one address, within 15 minutes, every
    attempt answers 429 with Retry-After for 15 minutes. An unknown user and a wrong
    password get the same answer after the same work (one argon2 verification).
    """
    name, password = _basic_credentials(request)
    accounts = accounts_of(request)
    address = client_address(request)
    wait = accounts.locked_for(name, address)
    if wait:
        request.app.state.metrics.login("api", "locked")
        raise ApiError(429, "too_many_attempts", "too many failed logins; try again later",
                       headers={"Retry-After": str(wait)})
    user = accounts.authenticate(name, password)
    if user is None:
        accounts.record_failure(name, address)
        request.app.state.metrics.login("api", "wrong")
        raise ApiError(401, "unauthorized", "wrong user name or password",
                       headers=_BASIC_CHALLENGE)
    accounts.clear_failures(name)
    request.app.state.metrics.login("api", "ok")
    token, expires = accounts.issue(user.name, timedelta(hours=TOKEN_HOURS_DEFAULT))
    return {"token": token, "expires": expires.isoformat().replace("+00:00", "Z")}


@router.delete("/tokens/current", status_code=204)
def revoke_current_token(request: Request, user: CurrentUser) -> Response:
    """Log out: the token in the Authorization header stops working now."""
    accounts_of(request).revoke_token(bearer_token(request))
    return Response(status_code=204)


@router.get("/me")
async def me(user: CurrentUser) -> dict:
    """Who the token belongs to: {"username", "role", "extensions"}."""
    return user.to_json()
