"""Building a Batch job's JSONL input files on disk, within the Batch API's limits.

Lines are packed into files in input order; a file is closed (and handed over to be uploaded)
as soon as the next line would pass ``max_lines`` requests or ``max_bytes`` bytes. Files are
written next to the state file and deleted by the caller once uploaded; a file being built when
an error strikes is deleted here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from dashscope_embed._errors import InvalidInputError

from ._files import MAX_LINE_BYTES, TextDigest, build_line
from ._state import Part

__all__ = ["InputFile", "check_text", "pack_files", "remove_stale_inputs", "verified"]


def remove_stale_inputs(folder: Path, job_id: str) -> list[Path]:
    """Delete input files a killed process left behind (``.<job>-partNNNNN-*.jsonl``, up to
    500 MB each). Call it only while holding the job's lock: another live process may be
    building one. Returns what was removed."""
    removed = []
    for path in folder.glob(f".{job_id}-part*.jsonl"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class InputFile:
    """A JSONL input file being built next to the state file (deleted once uploaded)."""

    def __init__(self, folder: Path, job_id: str, index: int, start: int) -> None:
        fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            dir=folder, prefix=f".{job_id}-part{index:05d}-", suffix=".jsonl", delete=False
        )
        self._fh = fh
        self.path = Path(fh.name)
        self.index = index
        self.start = start
        self.stop = start
        self.lines = 0
        self.bytes = 0
        self.rows: list[int] = []
        self.digest = TextDigest()

    def add(self, data: bytes, line_rows: list[tuple[int, str]]) -> None:
        self._fh.write(data)
        self.lines += 1
        self.bytes += len(data)
        for row, text in line_rows:
            self.rows.append(row)
            self.digest.update(text)
        self.stop = line_rows[-1][0] + 1

    def close(self) -> None:
        self._fh.close()


def check_text(row: int, text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(
            f"input {row} is {type(text).__name__}, not str: every input must be a string",
            index=row,
            rule="not_a_string",
        )
    if not text.strip():
        raise InvalidInputError(
            f"input {row} is empty or whitespace only; DashScope rejects it "
            "(remove it or replace it yourself, keeping your own alignment)",
            index=row,
            rule="empty_text",
        )
    return text


def pack_files(
    lines: Iterator[list[tuple[int, str]]],
    *,
    folder: Path,
    job_id: str,
    first_index: int,
    model: str,
    dimension: int | None,
    max_lines: int,
    max_bytes: int,
) -> Iterator[InputFile]:
    """Yield closed input files holding ``lines`` (lists of ``(row, text)``), in order.

    Raises:
        InvalidInputError: a line over the 6 MB per-line limit.
    """
    current: InputFile | None = None
    index = first_index
    try:
        for line_rows in lines:
            start = line_rows[0][0]
            data = build_line(start, [t for _, t in line_rows], model=model, dimension=dimension)
            if len(data) > MAX_LINE_BYTES:
                raise InvalidInputError(
                    f"rows {start}..{line_rows[-1][0]} make a {len(data)}-byte request line; the "
                    f"Batch API allows {MAX_LINE_BYTES} bytes per line (lower rows_per_line)",
                    index=start,
                    rule="line_too_large",
                )
            if current is not None and (
                current.lines >= max_lines or current.bytes + len(data) > max_bytes
            ):
                current.close()
                yield current
                current, index = None, index + 1
            if current is None:
                current = InputFile(folder, job_id, index, start)
            current.add(data, line_rows)
        if current is not None:
            current.close()
            yield current
            current = None
    finally:
        if current is not None:  # interrupted while building: leave nothing behind
            current.close()
            current.path.unlink(missing_ok=True)


def verified(rows: Iterator[tuple[int, str]], parts: Iterable[Part]) -> Iterator[Part]:
    """Consume the rows of parts already uploaded from ``rows``, yielding each part once its
    texts are proven to be the ones uploaded (a resumed job must read the same input).

    Raises:
        InvalidInputError: the input is shorter, or its texts differ (``rule="resume_mismatch"``).
    """
    for part in parts:
        digest = TextDigest()
        for _ in range(part.row_count):
            row_text = next(rows, None)
            if row_text is None:
                raise InvalidInputError(
                    f"the input ends before row {part.stop - 1} (file {part.index} was built "
                    "from more rows): resume with the same input",
                    rule="resume_mismatch",
                )
            digest.update(row_text[1])
        if digest.hexdigest() != part.sha256:
            raise InvalidInputError(
                f"rows {part.start}..{part.stop - 1} differ from the ones uploaded in file "
                f"{part.index}: resume with the same input, or start a new job",
                rule="resume_mismatch",
            )
        yield part
