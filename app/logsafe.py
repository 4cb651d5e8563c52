"""Client values in the hub's log, escaped (§13): a pushed newline never starts a log line.

Log calls interpolate values a client or a source chose (batch ids, paths, names, a source's
answer in an error text). Rather than trusting every call site, the hub installs one log record
factory that escapes control characters in every argument of every record, and in the message
of a logged exception (its traceback's last line quotes it), the way ``repr`` writes them:
``\\n``, ``\\x1b``, ``\\u2028``. The format string itself is the code's, so it is left alone.
Numbers keep their type, so ``%d`` and ``%.1f`` still work.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any

#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a terminal or
#: a log shipper may take as the end of a line, or as a command
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with its control characters written as ``repr`` writes them (nothing else changes)."""
    if _UNSAFE.search(text) is None:
        return text

    def one(match: re.Match[str]) -> str:
        char = match.group()
        named = _NAMED.get(char)
        if named is not None:
            return named
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNSAFE.sub(one, text)


class _Escaped:
    """An argument shown escaped, whichever conversion the format string asks for."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape(str(self.value))

    def __repr__(self) -> str:
        return escape(repr(self.value))

    def __format__(self, spec: str) -> str:
        return escape(format(self.value, spec))


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _UNSAFE.search(value) is None:
        return value  # the common case: nothing to escape, ``%r`` still quotes it
    return _Escaped(value)


def _safe_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(_safe_arg(a) for a in args)
    if isinstance(args, Mapping):  # ``log.info("%(name)s", {"name": …})``
        return {k: _safe_arg(v) for k, v in args.items()}
    return args


def _escaped_traceback(exc_info: Any) -> str:
    """The traceback as ``logging`` writes it, with the exception messages (which may quote a
    client's value) escaped; the frames are the hub's own code and keep their lines."""
    exc_type, exc, tb = exc_info
    lines: list[str] = []
    for chunk in traceback.format_exception(exc_type, exc, tb):
        # frames ("  File …") and the chaining notes are the hub's; the rest is exception text
        if chunk.startswith(("  ", "Traceback (most recent call last)")) or chunk in {
            "\nThe above exception was the direct cause of the following exception:\n\n",
            "\nDuring handling of the above exception, another exception occurred:\n\n",
        }:
            lines.append(chunk)
        else:
            lines.append(escape(chunk.removesuffix("\n")) + "\n")
    return "".join(lines).removesuffix("\n")


def _wrap(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.args:
            record.args = _safe_args(record.args)
        if not isinstance(record.msg, str):  # ``log.error(exc)``: the message is a client's text
            record.msg = _Escaped(record.msg)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            try:
                record.exc_text = _escaped_traceback(record.exc_info)
            except Exception:  # pragma: no cover - never lose a log line over its traceback
                record.exc_text = None
        return record

    make.suphub_escaping = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Escape client values in every log record of this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "suphub_escaping", False):
        logging.setLogRecordFactory(_wrap(current))
