"""§7 indicators (监管指标) of a platform or a region over a period; see docs/indicators.md."""

from __future__ import annotations

from app.services.indicators.engine import Window, compute_indicators, month_window

__all__ = ["Window", "compute_indicators", "month_window"]
