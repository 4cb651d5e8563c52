"""Dependencies shared by routers: settings, sessions, the caller, envelopes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import CredentialsMissing, envelope, request_id_of
from app.security.keys import ServerKey, server_key_for
from app.security.principal import Principal


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def sessionmaker_of(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def server_key_of(request: Request) -> ServerKey:
    return server_key_for(request.app.state)


#: methods whose session may write: on SQLite its transaction takes the write lock when it starts
_WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed before the answer is sent (``scope="function"``)."""
    if request.method in _WRITING_METHODS:
        maker: async_sessionmaker[AsyncSession] = request.app.state.write_sessionmaker
    else:
        maker = sessionmaker_of(request)
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def current_principal(request: Request) -> Principal:
    """The caller, authenticated before the body was read (``app/api/guards.py``), rate limited."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # only an app built without the guard gets here: it must not serve
        raise CredentialsMissing()
    limiter = request.app.state.rate_limiter
    await limiter.take(f"key:{principal.app_key}", limiter.limit_for_role(principal.role))
    return principal


SettingsDep = Annotated[Settings, Depends(settings_of)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def ok(request: Request, data: Any) -> dict[str, Any]:
    return envelope(request_id_of(request), data=data)
