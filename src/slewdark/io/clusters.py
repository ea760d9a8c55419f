"""The cluster stage's ``assignments.csv`` and the label stage's ``clusters.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slewdark.errors import SlewdarkError
from slewdark.io.atomic import write_text_atomic


def write_labels(path: str | Path, decisions: list[dict[str, Any]]) -> None:
    """Write ``clusters.yaml`` atomically (``docs/products.md``)."""
    header = "# Persistence decision per cluster (slewdark label); edit labels/overrides.yaml instead.\n"
    write_text_atomic(path, header + yaml.safe_dump(decisions, sort_keys=False, width=200))


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Read ``clusters.yaml``.

    Raises
    ------
    SlewdarkError
        When the file is missing or not a list of decisions.
    """
    path = Path(path)
    try:
        decisions = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no cluster labels (run 'slewdark label' first)") from None
    if not isinstance(decisions, list) or not all(
        isinstance(d, dict) and {"cluster", "persistence"} <= set(d) for d in decisions
    ):
        raise SlewdarkError(f"{path}: expected a list of {{cluster, persistence, ...}}")
    return decisions


def read_assignments(cluster_dir: str | Path, n_patches: int) -> dict[str, np.ndarray]:
    """``patch``, ``group``, ``cluster``, ``probability``, ``embedding`` (UMAP x, y) per patch, in order.

    Read from ``assignments.csv``.

    Raises
    ------
    SlewdarkError
        When the file is missing or does not cover every patch exactly once.
    """
    import csv

    path = Path(cluster_dir) / "assignments.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no cluster assignments (run 'slewdark cluster' first)") from None
    patch = np.array([int(r["patch"]) for r in records], dtype=np.int64)
    if len(patch) != n_patches or not np.array_equal(np.sort(patch), np.arange(n_patches)):
        raise SlewdarkError(f"{path}: does not assign each of the {n_patches} patches of index.csv once")
    order = np.argsort(patch)
    return {
        "patch": patch[order],
        "group": np.array([r["group"] for r in records])[order],
        "cluster": np.array([int(r["cluster"]) for r in records], dtype=np.int64)[order],
        "probability": np.array([float(r["probability"]) for r in records])[order],
        "embedding": np.array([[float(r["umap_x"]), float(r["umap_y"])] for r in records])[order],
    }
