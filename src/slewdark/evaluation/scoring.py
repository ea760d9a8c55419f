"""Scoring methods against the truth, one detector at a time, and the Markdown tables of the scores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from slewdark.config import Params
from slewdark.core.instrument import previous_kind
from slewdark.core.metrics import MethodScore, pr_thresholds
from slewdark.errors import ContractError
from slewdark.evaluation.methods import MethodFn
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.io.fits import iter_detectors, read_info

MISSING = "n/a"
"""Table cell of a figure that is None (a rate the method never meets)."""


def score_exposures(
    exposures: list[Path],
    methods: dict[str, MethodFn],
    params: Params,
    truth_dir: str | Path | None,
    edges: Sequence[float] | None = None,
    desc: str = "evaluate",
) -> tuple[dict[str, MethodScore], dict[str, int]]:
    """Score every method on every detector of the exposures, one detector at a time.

    Parameters
    ----------
    exposures
        Held-out exposure files, each with its ``<stem>.truth.fits`` in ``truth_dir``.
    methods
        Name to method (:func:`slewdark.stages.evaluate.build_methods`).
    params
        Validated params (``evaluate`` section).
    truth_dir
        Folder of the truth files (``data.heldout_truth``); None: beside the exposures.
    edges
        Amplitude bin edges (e-); None = ``evaluate.amplitude_bins``.
    desc
        Progress-bar label.

    Returns
    -------
    scores
        Name to accumulated :class:`MethodScore`.
    data
        Exposures, detectors, usable pixels and truth-positive pixels seen.
    """
    cfg = params.evaluate
    edges = np.asarray(cfg.amplitude_bins if edges is None else edges, dtype=np.float64)
    thresholds = pr_thresholds(cfg.pr_thresholds)
    scores = {name: MethodScore(edges, thresholds, cfg.object_hit_fraction) for name in methods}
    infos = [read_info(path) for path in exposures]
    data = {"exposures": len(exposures), "detectors": 0, "usable_pixels": 0, "positive_pixels": 0}
    total = sum(len(info.detectors) for info in infos)
    with tqdm(total=total, desc=desc, unit="det") as progress:
        for path, info in zip(exposures, infos, strict=True):
            truth_path = truth_file(path, truth_dir)
            previous = previous_kind(info.prev_gwa)
            for detector in iter_detectors(path):
                truth = read_truth(truth_path, detector.detector)
                if truth.pers.shape != detector.data.shape:
                    raise ContractError(truth_path, f"DET{detector.detector}: truth shape differs from data")
                valid = detector.usable
                positive = (truth.pers > cfg.truth_threshold) & valid
                clean = valid & (truth.pers < cfg.clean_threshold) & ~(truth.cr | truth.hot | truth.snow)
                for name, method in methods.items():
                    mask, prob = method(path, info, detector)
                    scores[name].add(
                        mask, prob, truth.pers, positive, truth.cr, truth.hot, valid, clean, previous
                    )
                data["detectors"] += 1
                data["usable_pixels"] += int(valid.sum())
                data["positive_pixels"] += int(positive.sum())
                progress.update(1)
    return scores, data


def markdown_table(
    caption: str,
    labels: Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[tuple[Sequence[str], dict[str, Any]]],
) -> str:
    """A captioned Markdown table: label columns, then one 3-decimal column per figure (``n/a`` for None).

    Parameters
    ----------
    caption
        Line above the table.
    labels
        Titles of the label columns (e.g. ``method``).
    columns
        ``(title, key)`` of each figure column.
    rows
        ``(label values, figures by key)`` per row.
    """
    header = "| " + " | ".join([*labels, *(title for title, _ in columns)]) + " |"
    rule = "|" + "---|" * len(labels) + "---:|" * len(columns)
    lines = [
        "| " + " | ".join([*names, *(table_cell(figures[key]) for _, key in columns)]) + " |"
        for names, figures in rows
    ]
    return "\n".join([caption, "", header, rule, *lines]) + "\n"


def table_cell(value: float | None) -> str:
    """A figure with 3 decimals, or :data:`MISSING` for None."""
    return MISSING if value is None else f"{value:.3f}"
