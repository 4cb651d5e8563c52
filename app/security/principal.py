"""Who is calling and what they may see (§1): roles, platforms, regions and kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true

from app.errors import Forbidden
from app.models import Platform
from app.schemas.types import normalise_region

ALL_KINDS = frozenset({"assets", "logs", "metrics", "environment", "alarms", "indicators"})


@dataclass(frozen=True)
class Principal:
    app_key: str
    role: str
    platforms: frozenset[str] = field(default_factory=frozenset)
    regions: tuple[str, ...] = ()
    kinds: frozenset[str] = ALL_KINDS

    @property
    def reporter(self) -> str:
        """The name a push is recorded under (snapshots retire only their reporter's assets)."""
        return f"key:{self.app_key}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    # --- checks -----------------------------------------------------------------------------
    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"角色 {self.role} 无权执行此操作 (role {self.role} may not do this)")

    def require_kind(self, kind: str) -> None:
        if self.role == "integrator" and kind not in self.kinds:
            raise Forbidden(f"未授权的数据类别 {kind} (kind {kind} is not granted to this key)")

    def platform_in_scope(self, platform_code: str, region_code: str) -> bool:
        if self.role == "admin":
            return True
        if self.role in {"provider", "integrator"} and platform_code in self.platforms:
            return True
        if self.role in {"regulator", "integrator"}:
            prefix = normalise_region(region_code)
            return any(prefix.startswith(r) for r in self.regions)
        return False

    # --- SQL --------------------------------------------------------------------------------
    def platform_condition(self, platform_col: Any) -> ColumnElement[bool]:
        """A WHERE condition limiting ``platform_col`` to platforms in scope (applied in SQL)."""
        if self.role == "admin":
            return true()
        conditions: list[ColumnElement[bool]] = []
        if self.role in {"provider", "integrator"} and self.platforms:
            conditions.append(platform_col.in_(sorted(self.platforms)))
        if self.role in {"regulator", "integrator"} and self.regions:
            region_match = or_(*(Platform.region_prefix.startswith(r) for r in self.regions))
            conditions.append(platform_col.in_(select(Platform.platform_code).where(region_match)))
        if not conditions:
            return false()
        return or_(*conditions)
