"""Every table, imported here so Alembic and the metadata see all of them."""

from app.models.alarm import Alarm
from app.models.asset import Asset, AssetChange, AssetSnapshot, AssetSnapshotMember
from app.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from app.models.base import Base
from app.models.batch import BatchReceipt, ChangeCounter, QuarantinedRecord
from app.models.catalog import PointTypeDefinition
from app.models.client import Client
from app.models.log import LogChainHead, LogCheckpoint, LogRecord
from app.models.metric import MetricDefinition, MetricSample, MetricSeries
from app.models.platform import Platform
from app.models.ratelimit import RateBucket
from app.models.reference import DomesticListEntry
from app.models.rollup import (
    EnvironmentRollup1d,
    EnvironmentRollup1h,
    EnvironmentRollup5m,
    MetricRollup1d,
    MetricRollup1h,
    MetricRollup5m,
    RollupState,
)
from app.models.room import EnvironmentPoint, EnvironmentSample, Room
from app.models.security import UsedNonce
from app.models.source import Source, SourceRun
from app.models.supervision import (
    EnvironmentExcursion,
    IndicatorPolicy,
    IndicatorSnapshot,
    ThresholdOverride,
    WarningEvent,
    WarningRule,
    WarningTracker,
)

__all__ = [
    "Alarm",
    "Asset",
    "AssetChange",
    "AssetSnapshot",
    "AssetSnapshotMember",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Base",
    "BatchReceipt",
    "ChangeCounter",
    "Client",
    "DomesticListEntry",
    "EnvironmentExcursion",
    "EnvironmentPoint",
    "EnvironmentRollup1d",
    "EnvironmentRollup1h",
    "EnvironmentRollup5m",
    "EnvironmentSample",
    "IndicatorPolicy",
    "IndicatorSnapshot",
    "LogChainHead",
    "LogCheckpoint",
    "LogRecord",
    "MetricDefinition",
    "MetricRollup1d",
    "MetricRollup1h",
    "MetricRollup5m",
    "MetricSample",
    "MetricSeries",
    "Platform",
    "PointTypeDefinition",
    "QuarantinedRecord",
    "RateBucket",
    "RollupState",
    "Room",
    "Source",
    "SourceRun",
    "ThresholdOverride",
    "UsedNonce",
    "WarningEvent",
    "WarningRule",
    "WarningTracker",
]
