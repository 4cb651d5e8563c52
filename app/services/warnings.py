"""监管预警 (§7.8): the rules, the evaluation job and its state machine, and the warning list.

**What a rule watches.** Per platform and enabled rule, a set of *subjects* for which the rule's
condition holds right now:

* ``indicator`` — ``indicator:{code}``: the status of the indicator for this month (in the
  reporting time zone) is in ``condition.status_in``;
* ``point_type`` — ``point:{room_code}/{point_code}``: the point's newest sample (at or before
  the evaluation time) has a state in ``condition.state_in`` and still stands (until its ``ts`` +
  2 × the point's ``interval_s``, 300 s when unknown);
* ``freshness`` — ``feed:{kind}``: the kind ever reported and its newest data is stale (§7.7,
  :mod:`app.services.feeds`).

**The state machine**, one :class:`WarningTracker` row per (platform, rule, subject), advanced
at every evaluation time ``now``:

* the condition holds: ``condition_since`` is set when it starts (the sample's ``ts`` for a point,
  the moment the feed went stale for a feed, the evaluation time for an indicator); once
  ``now - condition_since >= hold_s`` a warning opens with ``first_at = condition_since``. While
  it holds, the open warning's ``last_at`` moves to ``now``. A condition that ends before
  ``hold_s`` opens nothing (its ``condition_since`` is forgotten);
* the condition is absent while a warning is open: ``absent_since`` is set to the first
  evaluation that misses it; once ``now - absent_since >= clear_s`` the warning clears with
  ``cleared_at = now``. A condition back before that keeps the same warning open;
* after a clear, the condition holding again starts over: the hold time, then a **new** warning.

A disabled (or edited) rule simply stops observing its subjects: their open warnings clear after
the rule's ``clear_s``. A subject that cannot be judged this time (an indicator computation that
failed) leaves its tracker as it is — never a clear because of an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.config import get_settings
from app.db import write_session
from app.errors import BadParameter
from app.models import (
    EnvironmentPoint,
    EnvironmentSample,
    Platform,
    PointTypeDefinition,
    WarningEvent,
    WarningRule,
    WarningTracker,
)
from app.repositories.bulk import lock_platform
from app.schemas.enums import LABELS_ZH, AlarmStatus
from app.schemas.supervision_admin import RULE_SUBJECTS, WarningRuleIn
from app.security.keys import ServerKey
from app.security.principal import Principal
from app.services.feeds import platform_feeds
from app.services.indicators import compute_indicators, month_window
from app.services.query import (
    Keyset,
    decode_times,
    echo_time,
    enum_filter,
    keyset_page,
    scope_condition,
    time_window,
)

log = logging.getLogger(__name__)

#: a point whose ``interval_s`` is unknown is sampled about this often (§6.6 default)
DEFAULT_POINT_INTERVAL_S = 300
#: the newest sample of a point stands for this many usual intervals
STANDING_INTERVALS = 2
#: points whose newest sample is older than this cannot stand any more (2 × the largest interval)
_MAX_STANDING = timedelta(seconds=STANDING_INTERVALS * 86_400)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

TrackerKey = tuple[str, str]  # (rule_code, subject_key)


# --- rules (§10) ------------------------------------------------------------------------------


def rule_out(rule: WarningRule) -> dict[str, Any]:
    return {
        "rule_code": rule.rule_code,
        "name_zh": rule.name_zh,
        "subject": rule.subject,
        "target": rule.target,
        "condition": rule.condition,
        "level": rule.level,
        "hold_s": rule.hold_s,
        "clear_s": rule.clear_s,
        "enabled": rule.enabled,
        "description": rule.description,
        "updated_at": rule.updated_at,
    }


#: the rule list's order (§10): by ``rule_code``
RULE_KEYSET = Keyset("warning_rules", (WarningRule.rule_code,), lambda r: [r.rule_code])


async def list_rules(
    session: AsyncSession,
    key: ServerKey,
    *,
    subject: str | None = None,
    enabled: bool | None = None,
    limit: int = 100,
    cursor: str | None = None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Rules, enabled or not, by ``rule_code``, keyset-paged."""
    stmt = select(WarningRule)
    subjects = enum_filter(subject, "subject", RULE_SUBJECTS)
    if subjects is not None:
        stmt = stmt.where(WarningRule.subject.in_(subjects))
    if enabled is not None:
        stmt = stmt.where(WarningRule.enabled.is_(enabled))
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        RULE_KEYSET,
        server_key=key,
        filters={"subject": subjects, "enabled": enabled},
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    page: dict[str, Any] = {"items": [rule_out(r) for r in rows], "next_cursor": next_cursor}
    if with_total:
        page["total"] = total
    return page


async def put_rules(
    session: AsyncSession, key: ServerKey, rules: Sequence[WarningRuleIn], *, now: datetime
) -> dict[str, Any]:
    """Each rule given is created or replaced as a whole; rules not named are kept. Answers the
    list's first page, as ``GET`` without filters would."""
    existing = {
        r.rule_code: r
        for r in (
            await session.execute(
                select(WarningRule).where(WarningRule.rule_code.in_([r.rule_code for r in rules]))
            )
        ).scalars()
    }
    for given in sorted(rules, key=lambda r: r.rule_code):
        values = given.model_dump()
        rule = existing.get(given.rule_code)
        if rule is None:
            session.add(WarningRule(**values, updated_at=now))
            continue
        for name, value in values.items():
            setattr(rule, name, value)
        rule.updated_at = now
    await session.flush()
    return await list_rules(session, key)


# --- what holds now ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """A rule's condition holding for one subject at the evaluation time."""

    rule_code: str
    subject_key: str
    #: when the condition began to hold, as far as this evaluation can tell
    since: datetime
    title: str
    evidence: dict[str, Any]


@dataclass
class PlatformObservations:
    platform_code: str
    holding: dict[TrackerKey, Observation] = field(default_factory=dict)
    #: rules whose subjects could not be judged this time: their trackers are left alone
    unknown_rules: set[str] = field(default_factory=set)

    def add(self, observation: Observation) -> None:
        self.holding[(observation.rule_code, observation.subject_key)] = observation


def _targets(rules: Iterable[WarningRule]) -> set[str] | None:
    """The targets named by ``rules``; None when one of them says ``*``."""
    targets: set[str] = set()
    for rule in rules:
        if rule.target == "*":
            return None
        targets.add(rule.target)
    return targets


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


async def _observe_indicators(
    session: AsyncSession,
    platform: Platform,
    rules: list[WarningRule],
    out: PlatformObservations,
    *,
    now: datetime,
    tz: ZoneInfo,
    raw_retention_days: int,
) -> None:
    window = month_window(None, tz, now)
    try:
        items = await compute_indicators(
            session, [platform], window, now=now, raw_retention_days=raw_retention_days
        )
    except Exception:  # an indicator that cannot be computed is unknown, not "absent"
        log.exception("warnings: indicators of %s could not be computed", platform.platform_code)
        out.unknown_rules.update(r.rule_code for r in rules)
        return
    by_code = {item["code"]: item for item in items}
    for rule in rules:
        statuses = set(rule.condition.get("status_in") or ())
        codes = sorted(by_code) if rule.target == "*" else [rule.target]
        for code in codes:
            item = by_code.get(code)
            if item is None or item.get("status") not in statuses:
                continue
            evidence = {
                "code": code,
                "period": window.period,
                **{k: item.get(k) for k in ("value", "unit", "numerator", "denominator", "target", "status")},
                "coverage": item.get("coverage"),
                "evaluated_at": now,
            }
            name = item.get("name_zh") or code
            out.add(
                Observation(
                    rule.rule_code, f"indicator:{code}", now, f"{rule.name_zh}：{name}", _jsonable(evidence)
                )
            )


async def _point_types_zh(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(PointTypeDefinition.point_type, PointTypeDefinition.name_zh))
    return {str(code): str(name) for code, name in rows.all()}


async def _observe_points(
    session: AsyncSession,
    platform: Platform,
    rules: list[WarningRule],
    out: PlatformObservations,
    *,
    now: datetime,
) -> None:
    states = sorted({s for r in rules for s in (r.condition.get("state_in") or ())})
    if not states:
        return
    targets = _targets(rules)
    point, sample = EnvironmentPoint, EnvironmentSample
    of_platform = [point.platform_code == platform.platform_code]
    if targets is not None:
        of_platform.append(point.point_type.in_(sorted(targets)))
    columns = (
        point.room_code,
        point.point_code,
        point.point_type,
        point.interval_s,
        sample.ts,
        sample.value,
        sample.state,
    )
    same_point = and_(
        sample.platform_code == point.platform_code,
        sample.room_code == point.room_code,
        sample.point_code == point.point_code,
    )
    # the newest sample of each point: one probe per point at its ``last_ts``
    newest = await session.execute(
        select(*columns)
        .select_from(point)
        .join(sample, and_(same_point, sample.ts == point.last_ts))
        .where(
            *of_platform,
            point.last_ts <= now,
            point.last_ts > now - _MAX_STANDING,
            sample.state.in_(states),
        )
    )
    rows = list(newest.all())
    # an evaluation in the past (a replay, a test) of a point that has samples after it: the
    # newest sample at or before ``now``
    earlier = aliased(EnvironmentSample)
    newest_before = (
        select(func.max(earlier.ts))
        .where(
            earlier.platform_code == point.platform_code,
            earlier.room_code == point.room_code,
            earlier.point_code == point.point_code,
            earlier.ts <= now,
            earlier.ts > now - _MAX_STANDING,
        )
        .correlate(point)
        .scalar_subquery()
    )
    later = await session.execute(
        select(*columns)
        .select_from(point)
        .join(sample, and_(same_point, sample.ts == newest_before))
        .where(*of_platform, point.last_ts > now, sample.state.in_(states))
    )
    rows.extend(later.all())
    if not rows:
        return
    names = await _point_types_zh(session)
    for room_code, point_code, point_type, interval_s, ts, value, state in rows:
        interval = interval_s or DEFAULT_POINT_INTERVAL_S
        stands_until = ts + timedelta(seconds=STANDING_INTERVALS * interval)
        if not now < stands_until:
            continue
        for rule in rules:
            if rule.target not in {"*", point_type} or state not in (rule.condition.get("state_in") or ()):
                continue
            evidence = {
                "room_code": room_code,
                "point_code": point_code,
                "point_type": point_type,
                "ts": ts,
                "value": value,
                "state": state,
                "stands_until": stands_until,
            }
            title = (
                f"{rule.name_zh}：机房 {room_code} 测点 {point_code}（{names.get(point_type, point_type)}）"
            )
            out.add(
                Observation(
                    rule.rule_code,
                    f"point:{room_code}/{point_code}",
                    min(ts, now),
                    title,
                    _jsonable(evidence),
                )
            )


async def _observe_feeds(
    session: AsyncSession,
    platform: Platform,
    rules: list[WarningRule],
    out: PlatformObservations,
    *,
    now: datetime,
) -> None:
    kinds_zh = LABELS_ZH["data_kind"]
    for feed in await platform_feeds(session, [platform]):
        if not feed.is_stale(now):
            continue
        for rule in rules:
            if rule.target not in {"*", feed.kind}:
                continue
            evidence = {**feed.out(now), "stale_at": feed.stale_at}
            title = f"{rule.name_zh}：{kinds_zh.get(feed.kind, feed.kind)}（{feed.kind}）"
            out.add(
                Observation(
                    rule.rule_code, f"feed:{feed.kind}", min(feed.stale_at, now), title, _jsonable(evidence)
                )
            )


async def observe_platform(
    session: AsyncSession,
    platform: Platform,
    rules: Sequence[WarningRule],
    *,
    now: datetime,
    tz: ZoneInfo,
    raw_retention_days: int = 30,
) -> PlatformObservations:
    """Which (rule, subject) conditions of ``platform`` hold at ``now``."""
    out = PlatformObservations(platform.platform_code)
    if platform.status != "active":
        return out  # a decommissioned platform: its open warnings clear by their hysteresis
    by_subject: dict[str, list[WarningRule]] = {}
    for rule in rules:
        if rule.enabled:
            by_subject.setdefault(rule.subject, []).append(rule)
    if by_subject.get("indicator"):
        await _observe_indicators(
            session,
            platform,
            by_subject["indicator"],
            out,
            now=now,
            tz=tz,
            raw_retention_days=raw_retention_days,
        )
    if by_subject.get("point_type"):
        await _observe_points(session, platform, by_subject["point_type"], out, now=now)
    if by_subject.get("freshness"):
        await _observe_feeds(session, platform, by_subject["freshness"], out, now=now)
    return out


# --- the state machine ------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    evaluated_at: datetime
    platforms: int = 0
    opened: list[str] = field(default_factory=list)
    updated: int = 0
    cleared: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def out(self) -> dict[str, Any]:
        return {
            "evaluated_at": self.evaluated_at,
            "platforms": self.platforms,
            "opened": self.opened,
            "updated": self.updated,
            "cleared": self.cleared,
            "failed": self.failed,
        }


def new_warning_id(at: datetime) -> str:
    """``W`` + a ULID of ``at``: unique, and sorted like the warnings' opening times."""
    value = (int(at.timestamp() * 1000) & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "W" + "".join(reversed(chars))


async def apply_observations(
    session: AsyncSession,
    seen: PlatformObservations,
    rules: dict[str, WarningRule],
    *,
    now: datetime,
    report: EvaluationReport,
) -> None:
    """Advance every tracker of the platform to ``now`` (see the module docstring)."""
    code = seen.platform_code
    await lock_platform(session, code, "warnings")  # one evaluator per platform at a time
    trackers = {
        (t.rule_code, t.subject_key): t
        for t in (
            await session.execute(select(WarningTracker).where(WarningTracker.platform_code == code))
        ).scalars()
    }
    open_ids = sorted({t.open_warning_id for t in trackers.values() if t.open_warning_id})
    warnings: dict[str, WarningEvent] = {}
    if open_ids:
        rows = await session.execute(
            select(WarningEvent).where(
                WarningEvent.platform_code == code, WarningEvent.warning_id.in_(open_ids)
            )
        )
        warnings = {w.warning_id: w for w in rows.scalars()}
    for key in sorted(set(trackers) | set(seen.holding)):
        rule_code, subject_key = key
        if rule_code in seen.unknown_rules:
            continue
        rule = rules.get(rule_code)
        tracker = trackers.get(key)
        if tracker is not None and tracker.evaluated_at > now:
            continue  # a later evaluation (another scheduler process) already went past ``now``
        if tracker is None:
            tracker = WarningTracker(
                platform_code=code, rule_code=rule_code, subject_key=subject_key, evaluated_at=now
            )
            session.add(tracker)
        tracker.evaluated_at = now
        warning = warnings.get(tracker.open_warning_id) if tracker.open_warning_id else None
        if warning is None or warning.status != "active":
            tracker.open_warning_id = None
            warning = None
        observation = seen.holding.get(key)
        if observation is not None and rule is not None:
            tracker.absent_since = None
            if tracker.condition_since is None:
                tracker.condition_since = observation.since
            if warning is not None:
                warning.last_at = max(warning.last_at, now)
                warning.evidence = {
                    **{k: v for k, v in warning.evidence.items() if k != "latest"},
                    "latest": observation.evidence,
                }
                warning.updated_at = now
                report.updated += 1
            elif now - tracker.condition_since >= timedelta(seconds=rule.hold_s):
                warning = WarningEvent(
                    platform_code=code,
                    warning_id=new_warning_id(tracker.condition_since),
                    rule_code=rule_code,
                    subject_key=subject_key,
                    level=rule.level,
                    status="active",
                    title=observation.title[:300],
                    first_at=tracker.condition_since,
                    last_at=now,
                    cleared_at=None,
                    evidence=observation.evidence,
                    updated_at=now,
                )
                session.add(warning)
                tracker.open_warning_id = warning.warning_id
                report.opened.append(warning.warning_id)
            continue
        # the condition is absent (or its rule is gone)
        tracker.condition_since = None
        if warning is None:
            await session.delete(tracker)  # nothing to remember: a flap shorter than the hold time
            continue
        if tracker.absent_since is None:
            tracker.absent_since = now
        clear_s = rule.clear_s if rule is not None else 0
        if now - tracker.absent_since >= timedelta(seconds=clear_s):
            warning.status = "cleared"
            warning.cleared_at = now
            warning.updated_at = now
            report.cleared.append(warning.warning_id)
            await session.delete(tracker)
    await session.flush()


async def _platforms_to_evaluate(session: AsyncSession) -> tuple[list[Platform], set[str]]:
    """Active platforms and any other platform that still has trackers (warnings to clear); and
    the codes of the platforms that have trackers."""
    tracked = set((await session.execute(select(WarningTracker.platform_code).distinct())).scalars())
    rows = await session.execute(
        select(Platform)
        .where(or_(Platform.status == "active", Platform.platform_code.in_(sorted(tracked))))
        .order_by(Platform.platform_code)
    )
    return list(rows.scalars()), tracked


async def _rules(session: AsyncSession) -> dict[str, WarningRule]:
    rows = await session.execute(select(WarningRule).order_by(WarningRule.rule_code))
    return {r.rule_code: r for r in rows.scalars()}


async def evaluate_warnings(
    target: AsyncSession | async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    reporting_tz: str | None = None,
    raw_retention_days: int = 30,
) -> dict[str, Any]:
    """The §7.8 job: every active platform × every enabled rule, evaluated at ``now``.

    Given a session, everything happens in it (the caller commits). Given a sessionmaker, each
    platform is observed in a read session, then its trackers advance in a short write
    transaction of their own, so one platform's failure does not stop the others.
    """
    tz = ZoneInfo(reporting_tz or get_settings().reporting_tz)
    report = EvaluationReport(evaluated_at=now)
    if isinstance(target, AsyncSession):
        rules = await _rules(target)
        platforms, _ = await _platforms_to_evaluate(target)
        for platform in platforms:
            seen = await observe_platform(
                target, platform, list(rules.values()), now=now, tz=tz, raw_retention_days=raw_retention_days
            )
            await apply_observations(target, seen, rules, now=now, report=report)
            report.platforms += 1
        return report.out()
    async with target() as session:
        rules = await _rules(session)
        platforms, tracked = await _platforms_to_evaluate(session)
    for platform in platforms:
        try:
            async with target() as session:
                seen = await observe_platform(
                    session,
                    platform,
                    list(rules.values()),
                    now=now,
                    tz=tz,
                    raw_retention_days=raw_retention_days,
                )
            report.platforms += 1
            if not seen.holding and platform.platform_code not in tracked:
                continue  # nothing holds and nothing is remembered: no write transaction
            async with write_session(target) as session:
                await apply_observations(session, seen, rules, now=now, report=report)
        except Exception:
            log.exception("warnings: evaluation of %s failed", platform.platform_code)
            report.failed.append(platform.platform_code)
    return report.out()


# --- the list (§5) ----------------------------------------------------------------------------

WARNING_KEYSET = Keyset(
    "warnings",
    (WarningEvent.first_at, WarningEvent.platform_code, WarningEvent.warning_id),
    lambda w: [w.first_at, w.platform_code, w.warning_id],
    decode=decode_times(0),
    descending=True,
)


@dataclass(frozen=True)
class WarningFilters:
    """``from_`` / ``to`` (RFC 3339) bound ``first_at``, half-open."""

    platform_code: str | None = None
    region_code: str | None = None
    status: str | None = None
    level_max: int | None = None
    rule_code: str | None = None
    from_: str | None = None
    to: str | None = None


def warning_out(w: WarningEvent) -> dict[str, Any]:
    return {
        "warning_id": w.warning_id,
        "platform_code": w.platform_code,
        "rule_code": w.rule_code,
        "subject_key": w.subject_key,
        "level": w.level,
        "status": w.status,
        "title": w.title,
        "first_at": w.first_at,
        "last_at": w.last_at,
        "cleared_at": w.cleared_at,
        "evidence": w.evidence,
    }


async def list_warnings(
    session: AsyncSession,
    key: ServerKey,
    principal: Principal,
    filters: WarningFilters,
    *,
    now: datetime,
    reporting_tz: str,
    limit: int,
    cursor: str | None,
    with_total: bool = False,
) -> dict[str, Any]:
    """Warnings in scope, newest ``first_at`` first (then platform and id, descending), keyset-paged."""
    statuses = enum_filter(filters.status, "status", get_args(AlarmStatus))
    rule_codes: list[str] | None = None
    if filters.rule_code is not None:
        rule_codes = sorted({c.strip() for c in filters.rule_code.split(",") if c.strip()})
        if not rule_codes:
            raise BadParameter("rule_code 不能为空 (rule_code is empty)")
    start, end = time_window(filters.from_, filters.to, now=now, default_span=None)
    scope = await scope_condition(
        session,
        principal,
        WarningEvent.platform_code,
        platform_code=filters.platform_code,
        region_code=filters.region_code,
    )
    stmt = select(WarningEvent).where(scope)
    if statuses is not None:
        stmt = stmt.where(WarningEvent.status.in_(statuses))
    if filters.level_max is not None:
        stmt = stmt.where(WarningEvent.level <= filters.level_max)
    if rule_codes is not None:
        stmt = stmt.where(WarningEvent.rule_code.in_(rule_codes))
    if start is not None:
        stmt = stmt.where(WarningEvent.first_at >= start)
    if end is not None:
        stmt = stmt.where(WarningEvent.first_at < end)
    resolved = {
        "platform_code": filters.platform_code,
        "region_code": filters.region_code,
        "status": statuses,
        "level_max": filters.level_max,
        "rule_code": rule_codes,
        "from": start,
        "to": end,
    }
    rows, next_cursor, total = await keyset_page(
        session,
        stmt,
        WARNING_KEYSET,
        server_key=key,
        filters=resolved,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    page: dict[str, Any] = {
        "items": [warning_out(w) for w in rows],
        "next_cursor": next_cursor,
        "from": echo_time(start, reporting_tz),
        "to": echo_time(end, reporting_tz),
    }
    if with_total:
        page["total"] = total
    return page
