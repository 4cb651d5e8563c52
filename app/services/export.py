"""Exports (§5 ``/export/{kind}``): csv (UTF-8 with BOM, optional Chinese headers), ndjson, xlsx.

Constant memory: rows are read in keyset chunks by a session of the export's own (the request's
session is gone once the answer starts), written out chunk by chunk; xlsx goes through
openpyxl's write-only mode into a temporary file that is streamed and deleted. Cells starting
with ``= + - @`` (or a tab / carriage return) are prefixed with ``'`` so no spreadsheet runs them.
An export never fails on a stored value (§14): characters a workbook cannot hold (C0 controls
that rows stored before the push refused them may carry) are written escaped, ``\x01``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import orjson
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._writer import ALL_TEMP_FILES
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import PayloadTooLarge
from app.services.query import Keyset

SHEET_ROWS = 1_000_000
CHUNK = 2_000
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
#: the most characters a spreadsheet cell holds (Excel); longer text is cut, marked with …
XLSX_CELL_CHARS = 32_767


@dataclass(frozen=True)
class Column:
    key: str
    header_zh: str


@dataclass
class ExportSource:
    """What one export reads: the scoped statement, its order and how to turn a row into cells."""

    name: str
    statement: Select[Any]
    keyset: Keyset
    columns: Sequence[Column]
    row_out: Callable[[Any], dict[str, Any]]
    #: whether the statement yields one ORM object per row (else a row of several columns)
    scalars: bool = True


async def count_rows(session: AsyncSession, source: ExportSource, max_rows: int) -> int:
    """The number of rows; more than ``max_rows`` is 413 ``1003`` before anything is sent."""
    total = int(
        (
            await session.execute(
                select(func.count()).select_from(source.statement.order_by(None).subquery())
            )
        ).scalar_one()
    )
    if total > max_rows:
        raise PayloadTooLarge(
            f"导出 {total} 行，超过上限 {max_rows} 行，请缩小筛选范围 "
            f"(export of {total} rows exceeds SUPHUB_EXPORT_MAX_ROWS={max_rows}; narrow the filters)"
        )
    return total


async def rows_of(
    sessionmaker: async_sessionmaker[AsyncSession], source: ExportSource
) -> AsyncIterator[list[dict[str, Any]]]:
    """The rows in chunks, in the list's order, each chunk read by a short query (keyset)."""
    last: tuple[Any, ...] | None = None
    keyset = source.keyset
    while True:
        stmt = source.statement
        if last is not None:
            position = tuple_(*keyset.columns)
            stmt = stmt.where(position < tuple_(*last) if keyset.descending else position > tuple_(*last))
        async with sessionmaker() as session:
            result = await session.execute(stmt.order_by(*keyset.order_by()).limit(CHUNK))
            chunk = list(result.scalars() if source.scalars else result.all())
            rows = [source.row_out(row) for row in chunk]
            if chunk:
                last = tuple(keyset.key_of(chunk[-1]))
        if rows:
            yield rows
        if len(rows) < CHUNK:
            return


def cell(value: Any, tz: ZoneInfo) -> Any:
    """A value as a spreadsheet cell: times in the reporting zone, JSON for structures, text made inert."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = orjson.dumps(value).decode()
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_DANGEROUS) else text


def xlsx_cell(value: Any, tz: ZoneInfo) -> Any:
    """A cell a workbook can hold: :func:`cell`, with characters XML 1.0 forbids escaped."""
    out = cell(value, tz)
    if not isinstance(out, str):
        return out
    if ILLEGAL_CHARACTERS_RE.search(out) is not None:
        out = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", out)
    if len(out) > XLSX_CELL_CHARS:
        out = out[: XLSX_CELL_CHARS - 1] + "…"
    return out


async def csv_stream(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: ExportSource,
    *,
    chinese_headers: bool,
    tz: ZoneInfo,
) -> AsyncIterator[bytes]:
    yield "\ufeff".encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.header_zh if chinese_headers else c.key for c in source.columns])
    yield buffer.getvalue().encode()
    async for rows in rows_of(sessionmaker, source):
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow(["" if (v := cell(row.get(c.key), tz)) is None else v for c in source.columns])
        yield buffer.getvalue().encode()


async def ndjson_stream(
    sessionmaker: async_sessionmaker[AsyncSession], source: ExportSource
) -> AsyncIterator[bytes]:
    async for rows in rows_of(sessionmaker, source):
        yield b"".join(
            orjson.dumps({c.key: row.get(c.key) for c in source.columns}, option=orjson.OPT_UTC_Z) + b"\n"
            for row in rows
        )


async def xlsx_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: ExportSource,
    *,
    chinese_headers: bool,
    tz: ZoneInfo,
) -> str:
    """Write the workbook to a temporary file and return its path.

    openpyxl's write-only mode keeps memory flat; the CPU-bound appends and the save run in a
    worker thread chunk by chunk, so a large export does not stall the event loop. Whatever
    happens (a database error, the client gone), no temporary file is left behind: neither the
    workbook's nor openpyxl's one per sheet.
    """
    writer = _SheetWriter(source.name, [c.header_zh if chinese_headers else c.key for c in source.columns])
    path: str | None = None
    try:
        async for rows in rows_of(sessionmaker, source):
            cells = [[xlsx_cell(row.get(c.key), tz) for c in source.columns] for row in rows]
            await asyncio.to_thread(writer.append, cells)
        fd, path = tempfile.mkstemp(prefix="suphub-export-", suffix=".xlsx")
        os.close(fd)
        await asyncio.to_thread(writer.save, path)
    except BaseException:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        writer.discard()
    return path


class _SheetWriter:
    """A write-only workbook that starts a new sheet every ``SHEET_ROWS`` data rows."""

    def __init__(self, name: str, header: list[str]) -> None:
        self.workbook = Workbook(write_only=True)
        self.name, self.header = name, header
        self.sheet: Any = None
        self.sheets = 0
        self.in_sheet = SHEET_ROWS

    def append(self, rows: list[list[Any]]) -> None:
        for row in rows:
            if self.in_sheet >= SHEET_ROWS:
                self._new_sheet()
            self.sheet.append(row)
            self.in_sheet += 1

    def _new_sheet(self) -> None:
        self.sheets += 1
        self.sheet = self.workbook.create_sheet(title=f"{self.name}-{self.sheets}")
        self.sheet.append(self.header)
        self.in_sheet = 0

    def save(self, path: str) -> None:
        if self.sheet is None:
            self._new_sheet()
        self.workbook.save(path)

    def discard(self) -> None:
        """Remove the per-sheet temporary files openpyxl keeps until a save (a save removes them)."""
        for sheet in self.workbook.worksheets:
            sheet_writer = getattr(sheet, "_writer", None)
            out = getattr(sheet_writer, "out", None)
            if isinstance(out, str) and out in ALL_TEMP_FILES:
                with contextlib.suppress(Exception):
                    sheet_writer.xf.close()  # type: ignore[union-attr]
                with contextlib.suppress(OSError):
                    os.remove(out)
                ALL_TEMP_FILES.remove(out)


def file_stream(path: str) -> AsyncIterator[bytes]:
    """The file in 1 MiB chunks. Its name is removed at once (the open file stays readable), so
    nothing is left on disk even when the answer is never sent (the client gone before it began:
    a generator that never started never runs its ``finally``)."""
    fh = open(path, "rb")  # noqa: SIM115 - closed by _chunks; reads go to a thread there
    os.unlink(path)
    return _chunks(fh)


async def _chunks(fh: BinaryIO) -> AsyncIterator[bytes]:
    with fh:
        while chunk := await asyncio.to_thread(fh.read, 1 << 20):
            yield chunk
