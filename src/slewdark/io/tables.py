"""CSV tables: the writer every stage uses and the patch index reader (``docs/products.md``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path

INDEX_COLUMNS = ("patch", "exposure", "file", "detector", "channel", "row", "col", "split", "usable_fraction")


def write_table(path: str | Path, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    """Write ``rows`` as a CSV table with a header, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_index(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``index.csv`` into column arrays (int columns as int64, others as str).

    Parameters
    ----------
    path
        The ``index.csv`` file, or the patches folder holding it.

    Returns
    -------
    dict
        Column name to array, in patch order.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "index.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no patch index (run 'slewdark patches' first)") from None
    columns: dict[str, np.ndarray] = {}
    for name in INDEX_COLUMNS:
        values = [r[name] for r in records]
        if name in ("patch", "channel", "row", "col"):
            columns[name] = np.array(values, dtype=np.int64)
        elif name == "usable_fraction":
            columns[name] = np.array(values, dtype=np.float64)
        else:
            columns[name] = np.array(values, dtype=str)
    return columns
