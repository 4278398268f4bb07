"""Input files for ``dashscope-embed embed``: ``.txt`` (one text per line), ``.jsonl`` (a field)
and ``.csv`` (a column), read lazily, with ids.

The whole file is checked once before anything is sent (:func:`scan`), so a bad line 900,000
stops the command before the first request is billed; :func:`iter_records` then reads it again,
streaming, while embedding. Neither pass holds the file in memory.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["CliError", "InputSpec", "Scan", "iter_records", "line_numbers", "line_of", "scan"]

INPUT_FORMATS = (".txt", ".jsonl", ".csv")


class CliError(Exception):
    """A problem the user can fix (bad file, bad option): printed, exit code 2."""


@dataclass(frozen=True)
class InputSpec:
    """Where the texts are and how to find them.

    Attributes:
        path: The input file.
        field: JSONL key / CSV column holding the text.
        id_field: JSONL key / CSV column holding the row id; ``None``: ``"id"`` if present.
        skip_empty: Skip empty texts instead of failing (ids keep the alignment: the file's
            ids, or line numbers when it has none).
    """

    path: Path
    field: str = "text"
    id_field: str | None = None
    skip_empty: bool = False

    @property
    def kind(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix not in INPUT_FORMATS:
            raise CliError(
                f"unsupported input {self.path.name!r}: use .txt (one text per line), "
                ".jsonl (--field NAME) or .csv (--field COLUMN)"
            )
        return suffix[1:]


@dataclass(frozen=True)
class Scan:
    """What the checking pass found."""

    rows: int
    id_field: str | None
    skipped: int


def _raw(spec: InputSpec) -> Iterator[tuple[int, str | None, object]]:
    """``(line number, id, text value)`` for every record, before checks (a CSV record's number
    is the line it starts on). Without ``--id-field`` a JSONL record's ``id`` is its id when it
    has one; :func:`scan` then requires every record to have one."""
    kind = spec.kind
    if not spec.path.is_file():
        raise CliError(f"input file not found: {spec.path}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        fh = open(spec.path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:  # the input itself (unreadable): something for the user to fix
        raise CliError(f"cannot read the input {spec.path}: {exc.strerror or exc}") from None
    with fh:
        lines = _decoded(spec, fh)
        if kind == "txt":
            # a line ends at "\n" only (a lone "\r" is part of the text)
            for number, line in lines:
                yield number, None, _chomp(line)
        elif kind == "jsonl":
            for number, line in lines:
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{spec.path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(doc, dict):
                    raise CliError(f"{spec.path}:{number}: expected a JSON object per line")
                if spec.field not in doc:
                    raise CliError(
                        f"{spec.path}:{number}: no field {spec.field!r} "
                        f"(fields: {', '.join(map(str, doc)) or 'none'}); choose one with --field"
                    )
                id_field = spec.id_field or ("id" if "id" in doc else "")
                yield number, _id(spec, number, doc, id_field), doc[spec.field]
        else:
            yield from _csv_records(spec, (line for _, line in lines))


def _decoded(spec: InputSpec, fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` per ``\n``-terminated line, decoded as UTF-8 one line at a time,
    so invalid bytes are reported with their line (a UTF-8 BOM on line 1 is dropped)."""
    for number, raw in enumerate(fh, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(
                f"{spec.path}:{number}: not valid UTF-8 (byte {exc.start + 1} of the line: "
                f"{raw[exc.start : exc.start + 4]!r}); save the file as UTF-8"
            ) from None


def _chomp(line: str) -> str:
    """The line without its ``\n`` or ``\r\n`` (nothing else is stripped)."""
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _csv_records(spec: InputSpec, lines: Iterator[str]) -> Iterator[tuple[int, str | None, object]]:
    """CSV records, parsed strictly: a quote left open is an error naming its line, never a
    field that swallows the rest of the file. Blank lines are skipped; a text or id column
    named twice in the header is an error (which one would be meant?)."""
    reader = csv.reader(lines, strict=True)

    def records() -> Iterator[tuple[int, list[str]]]:
        while True:
            number = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CliError(
                    f"{spec.path}:{number}: malformed CSV ({exc}); check the quoting of the "
                    "record that starts on this line (a quote left open?)"
                ) from None
            if record:
                yield number, record

    rows = records()
    header = next(rows, (0, []))[1]
    if spec.field not in header:
        columns = ", ".join(header) or "none"
        raise CliError(
            f"{spec.path}: no column {spec.field!r} (columns: {columns}); choose one with --field"
        )
    id_field = spec.id_field
    if id_field is None:
        id_field = "id" if "id" in header else ""
    if id_field and id_field not in header:
        raise CliError(f"{spec.path}: no id column {id_field!r}")
    for name in dict.fromkeys((spec.field, id_field)):
        if name and header.count(name) > 1:
            raise CliError(
                f"{spec.path}:1: the header names column {name!r} {header.count(name)} times; "
                "rename the duplicates so the column to read is unambiguous"
            )
    for number, record in rows:
        doc = dict(zip(header, record, strict=False))  # a short record lacks the last columns
        yield number, _id(spec, number, doc, id_field), doc.get(spec.field)


def _id(spec: InputSpec, number: int, doc: dict[str, Any], id_field: str) -> str | None:
    if not id_field:
        return None
    if id_field not in doc or doc[id_field] in (None, ""):
        raise CliError(f"{spec.path}:{number}: no id in {id_field!r}")
    value = doc[id_field]
    return value if isinstance(value, str) else json.dumps(value)


def _text(spec: InputSpec, number: int, value: object) -> str | None:
    """The text, ``None`` to skip it, or a :class:`CliError`."""
    if not isinstance(value, str):
        raise CliError(
            f"{spec.path}:{number}: {spec.field!r} is {type(value).__name__}, not a string"
        )
    if not value.strip():
        if spec.skip_empty:
            return None
        raise CliError(
            f"{spec.path}:{number}: empty text (DashScope rejects empty inputs); remove the line "
            "or pass --skip-empty"
        )
    return value


def scan(spec: InputSpec) -> Scan:
    """Check every record; count rows.

    ``id_field`` is the id column/key when the file has ids; else ``"line"`` when texts are
    skipped (line numbers become the ids, so rows stay aligned with the input); else ``None``.

    Raises:
        CliError: a missing file, bad JSON or CSV, a missing field/column, a non-string or
            empty text, naming the file and line.
    """
    rows = skipped = 0
    has_ids = False
    first: tuple[int, bool] | None = None  # (line, has an id) of the first record
    for number, row_id, value in _raw(spec):
        if first is None:
            first = (number, row_id is not None)
        elif (row_id is not None) != first[1]:
            with_id, without = (first[0], number) if first[1] else (number, first[0])
            raise CliError(
                f"{spec.path}:{without}: no 'id', but line {with_id} has one: give every "
                "record an id, or none (ids must stay aligned with the rows)"
            )
        if _text(spec, number, value) is None:
            skipped += 1
            continue
        rows += 1
        has_ids = has_ids or row_id is not None
    id_field: str | None = None
    if has_ids:
        id_field = spec.id_field or "id"
    elif skipped:
        id_field = "line"
    return Scan(rows, id_field, skipped)


def iter_records(spec: InputSpec, *, line_ids: bool = False) -> Iterator[tuple[str | None, str]]:
    """``(id, text)`` per row, streaming; with ``line_ids`` a record without an id gets its
    line number (see :func:`scan`)."""
    for number, row_id, value in _raw(spec):
        text = _text(spec, number, value)
        if text is None:
            continue
        if row_id is None and line_ids:
            row_id = str(number)
        yield row_id, text


def line_numbers(spec: InputSpec, rows: set[int]) -> dict[int, int]:
    """The file line of each of ``rows`` (skipped texts not counted), in one pass."""
    out: dict[int, int] = {}
    index = 0
    if not rows:
        return out
    last = max(rows)
    for number, _, value in _raw(spec):
        if _text(spec, number, value) is None:
            continue
        if index in rows:
            out[index] = number
        if index >= last:
            break
        index += 1
    return out


def line_of(spec: InputSpec, row: int) -> int | None:
    """The line number of input row ``row`` (skipped texts not counted), ``None`` past the end."""
    index = 0
    for number, _, value in _raw(spec):
        if _text(spec, number, value) is None:
            continue
        if index == row:
            return number
        index += 1
    return None
