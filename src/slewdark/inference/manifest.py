"""The record of a ``slewdark predict`` batch: ``DIR/manifest.csv``, one row per input.

Every input that a run into ``DIR`` met has one row: which file (its absolute
path and ``INPUTSHA``), which model (``MODEL``, ``MODELSHA``, ``MODELVER``,
``MLRUN``), what happened (``ok``, ``failed`` with the error line, or
``skipped`` because its product was already current), how long it took and how
many detectors it has. The file is rewritten atomically each time a row
changes, so a batch killed at any moment leaves a readable manifest of what
finished; rows of inputs that a later run does not name are kept.
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from slewdark.errors import SlewdarkError
from slewdark.io.atomic import write_text_atomic

MANIFEST_NAME = "manifest.csv"
OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (OK, FAILED, SKIPPED)


@dataclass(frozen=True)
class ManifestRow:
    """What became of one input.

    Attributes
    ----------
    input
        Absolute path of the input file.
    inputsha
        sha256 of its bytes (``INPUTSHA``); empty when it could not be read.
    model, modelsha, modelver, mlrun
        The model as given (``MODEL``), the sha256 of its checkpoint file
        (``MODELSHA``), its registered version (``MODELVER``) and MLflow run (``MLRUN``).
    status
        ``ok``, ``failed`` or ``skipped``.
    error
        The one-line error of a failed input, else empty.
    seconds
        Wall time spent on the input.
    detectors
        Detectors in the input (0 when it could not be read).
    """

    input: str
    inputsha: str
    model: str
    modelsha: str
    modelver: str
    mlrun: str
    status: str
    error: str
    seconds: float
    detectors: int


COLUMNS = tuple(f.name for f in fields(ManifestRow))


class Manifest:
    """The manifest of an output folder, saved on every :meth:`record`.

    Parameters
    ----------
    path
        ``DIR/manifest.csv``.
    rows
        Rows by input path.
    """

    def __init__(self, path: Path, rows: dict[str, ManifestRow]) -> None:
        self.path = path
        self.rows = rows

    @classmethod
    def load(cls, out_dir: str | Path) -> Manifest:
        """The manifest of ``out_dir``, empty when it has none yet.

        Raises
        ------
        SlewdarkError
            When the file exists but is not a manifest (other columns, a bad value).
        """
        path = Path(out_dir) / MANIFEST_NAME
        if not path.is_file():
            return cls(path, {})
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise SlewdarkError(f"{path}: not a slewdark manifest (columns {reader.fieldnames})")
            try:
                rows = [_parse(line) for line in reader]
            except ValueError as error:
                raise SlewdarkError(f"{path}: line {reader.line_num}: {error}") from None
        return cls(path, {row.input: row for row in rows})

    def record(self, row: ManifestRow) -> None:
        """Add or replace the row of ``row.input`` and rewrite the file atomically."""
        self.rows[row.input] = row
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        for key in sorted(self.rows):
            writer.writerow(_format(self.rows[key]))
        write_text_atomic(self.path, text.getvalue())


def _parse(line: dict[str, str]) -> ManifestRow:
    """A row read back from CSV; ValueError when a value is not of its column's kind."""
    if line["status"] not in STATUSES:
        raise ValueError(f"status {line['status']!r} is not one of {', '.join(STATUSES)}")
    values = {**line, "seconds": float(line["seconds"]), "detectors": int(line["detectors"])}
    return ManifestRow(**values)


def _format(row: ManifestRow) -> tuple[str, ...]:
    """The CSV cells of a row (seconds to 0.01 s)."""
    return tuple(f"{value:.2f}" if isinstance(value, float) else str(value) for value in astuple(row))
