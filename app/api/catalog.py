"""Northbound catalog endpoints (§5)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["catalog"])
