"""The exceptions of a collector run (the tree is drawn in :mod:`app.collectors.base`)."""

from __future__ import annotations


class SourceError(Exception):
    """The run fails with this message (never containing a credential)."""


class SourceUnavailable(SourceError):
    pass


class SourceHTTPError(SourceError):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class SourceDataError(SourceError):
    pass


class SourceRefused(SourceError):
    """A connection the §8 peer policy forbids (an address, a host); never retried."""


class SourceTooLarge(SourceError):
    """An answer beyond ``SUPHUB_SOURCE_MAX_RESPONSE_BYTES``; the rest is not read."""
