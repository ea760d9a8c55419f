"""The ``label`` stage: which clusters hold persistence, decided without hand labels or truth.

Persistence can only appear where the previous exposure (``PREVFILE``, in the
exposure's folder) was bright, so the study's "compare with the features
expected from the spectroscopic images" becomes a score:

1. In the previous exposure of each detector, *bright* pixels are those that
   saturated (its DQ layer's SATUR bit, or NaN there) or whose fluence, median
   filtered over ``label.bright_median`` px so that cosmic-ray tracks and noise
   do not count, reaches ``label.bright_level`` electrons, grown by
   ``label.bright_dilation`` px (IPC, PSF wings) (:func:`slewdark.core.brightmap.bright_map`).
2. In every patch, *signal* pixels are those of the Gaussian-smoothed patch
   (``smooth_sigma``) above its mean + ``signal_sigma`` standard deviations
   (the segmentation's first step, :func:`slewdark.core.segment.threshold_at_mean`).
   A patch with at least ``min_signal_pixels`` of them votes with its
   *coincidence*: the share of its signal pixels that are bright; its *chance*
   is the share of all its usable pixels that are bright (what randomly placed
   signal, noise or cosmic rays, would reach).
3. A cluster's score is the mean coincidence minus the mean chance over its
   voting patches (in -1..1: about 0 for noise and cosmic rays, near 1 when the
   patches' structure sits exactly on the previous exposure's bright places).
   With at least ``min_prev_patches`` voters it is persistence when the score
   reaches ``label.threshold``.

Fallback (fewer voters with a previous exposure): a patch looks like
persistence when signal pixels cover at least ``min_signal_fraction`` of it
(extended structure), no sharp peak (brightest pixel
over its 8-neighbour mean, both above the patch median, at most
``fallback.max_peak_ratio``: cosmic rays and hot pixels are sharp), few pixels
at the top of the stretch (``max_saturated_fraction``: they saturate,
persistence is faint) and, when the header names a grism (``PREVGWA``), its
signal pixels form a streak (major/minor axis ratio at least ``min_elongation``)
whose major axis lies along the dispersion direction rotated by ``PREVTILT``
(within ``max_angle``). The cluster's score is the share of such
patches; persistence when it reaches ``fallback.threshold``.

Human overrides (``label.overrides``, git-tracked) are applied last. A decision
within ``label.margin`` of its threshold is marked not confident, which lowers
the pseudo-mask weight (:mod:`slewdark.stages.pseudomask`). Outputs:
``data/labels/clusters.yaml`` (``docs/products.md``) and a PNG per cluster in
``label.gallery``. Simulator truth is never read here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slewdark.config import LabelFallbackParams, LabelParams, Params
from slewdark.core.brightmap import label_bright_map
from slewdark.core.segment import threshold_at_mean
from slewdark.errors import SlewdarkError
from slewdark.io.clusters import read_assignments, write_labels
from slewdark.io.fits import read_detector, read_info
from slewdark.io.patches import open_patches
from slewdark.io.previous import previous_exposure
from slewdark.io.tables import read_index
from slewdark.ops.parallel import map_ordered
from slewdark.ops.tracking import stage_run

log = logging.getLogger(__name__)

STAGE = "label"
SATURATED = 0.999
"""Normalised level counted as the top of the stretch."""


@dataclass
class PatchEvidence:
    """What the label stage measures on every patch (arrays in ``index.csv`` order).

    Attributes
    ----------
    signal_pixels
        int64 number of signal pixels.
    coincidence, chance
        float64 share of signal / usable pixels that were bright in the previous
        exposure; NaN without a previous exposure.
    elongation, angle
        Major/minor axis ratio and major-axis angle (deg from +x, in [0, 180)) of
        the signal pixels; 1 and NaN with fewer than 3.
    peak_ratio
        Brightest pixel over its 8-neighbour mean, both above the patch median.
    saturated_fraction
        Share of usable pixels at the top of the stretch.
    dispersion
        Expected trace angle (deg, mod 180) from PREVGWA and PREVTILT; NaN when
        the previous exposure was not a grism exposure or is not named.
    """

    signal_pixels: np.ndarray
    coincidence: np.ndarray
    chance: np.ndarray
    elongation: np.ndarray
    angle: np.ndarray
    peak_ratio: np.ndarray
    saturated_fraction: np.ndarray
    dispersion: np.ndarray

    @classmethod
    def empty(cls, n: int) -> PatchEvidence:
        """Evidence of ``n`` patches, not measured yet."""
        nan = np.full(n, np.nan)
        return cls(
            np.zeros(n, np.int64),
            nan.copy(),
            nan.copy(),
            np.ones(n),
            nan.copy(),
            np.ones(n),
            np.zeros(n),
            nan.copy(),
        )


def coincidence(signal: np.ndarray, bright: np.ndarray, usable: np.ndarray) -> tuple[float, float]:
    """Share of the signal pixels, and of all usable pixels, that are bright.

    Returns
    -------
    coincidence, chance : float
        NaN when there is no signal (coincidence) or no usable pixel (chance).
    """
    n_signal, n_usable = int(signal.sum()), int(usable.sum())
    hit = float((signal & bright).sum()) / n_signal if n_signal else np.nan
    chance = float((bright & usable).sum()) / n_usable if n_usable else np.nan
    return hit, chance


def shape_features(signal: np.ndarray) -> tuple[float, float]:
    """Elongation and major-axis angle of a set of pixels (second moments).

    Returns
    -------
    elongation : float
        sqrt of the ratio of the covariance eigenvalues (1 for a round blob).
    angle : float
        Major axis in degrees from +x (columns) towards +y (rows), in [0, 180);
        NaN with fewer than 3 pixels.
    """
    rows, cols = np.nonzero(signal)
    if len(rows) < 3:
        return 1.0, np.nan
    cov = np.cov(np.vstack([cols, rows]).astype(np.float64))
    low, high = np.linalg.eigvalsh(cov)
    elongation = float(np.sqrt(high / max(low, 1e-3)))
    angle = 0.5 * np.degrees(np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1]))
    return elongation, float(angle % 180.0)


def peak_ratio(patch: np.ndarray, usable: np.ndarray) -> float:
    """Sharpness of the brightest usable pixel: its excess over the median, over its neighbours' excess.

    Returns
    -------
    float
        ``(peak - median) / (mean of its 8 neighbours - median)``; large for a
        cosmic ray or hot pixel, about 1-2 for smooth persistence; 1 for a flat patch.
    """
    values = np.where(usable, patch, np.nan).astype(np.float64)
    if not np.isfinite(values).any():
        return 1.0
    median = float(np.nanmedian(values))
    r, c = np.unravel_index(int(np.nanargmax(values)), values.shape)
    window = values[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]
    neighbours = (np.nansum(window) - values[r, c]) / max(np.isfinite(window).sum() - 1, 1)
    excess = values[r, c] - median
    if excess <= 0:
        return 1.0
    return float(excess / max(neighbours - median, excess * 1e-3))


def measure_patch(
    patch: np.ndarray, usable: np.ndarray, bright: np.ndarray | None, cfg: LabelParams
) -> tuple[int, float, float, float, float, float, float]:
    """Every feature of one patch (see :class:`PatchEvidence`), dispersion excluded."""
    signal = threshold_at_mean(patch, usable, cfg.signal_sigma, cfg.smooth_sigma)
    hit, chance = coincidence(signal, bright, usable) if bright is not None else (np.nan, np.nan)
    elongation, angle = shape_features(signal)
    n_usable = max(int(usable.sum()), 1)
    saturated = float((usable & (patch >= SATURATED)).sum()) / n_usable
    return int(signal.sum()), hit, chance, elongation, angle, peak_ratio(patch, usable), saturated


@dataclass(frozen=True)
class DetectorJob:
    """One detector of one exposure to measure: its patches' rows and top-left corners."""

    patch_dir: str
    file: str
    detector: str
    rows: np.ndarray
    corners: np.ndarray
    params: Params


def measure_detector(job: DetectorJob) -> tuple[np.ndarray, float]:
    """Features of a detector's patches (:func:`measure_patch`, one row each) and its dispersion."""
    patches, usable = open_patches(job.patch_dir)
    info = read_info(job.file)
    prev, dispersion = previous_exposure(info)
    full_bright = None
    if prev is not None:
        full_bright = label_bright_map(
            read_detector(prev, job.detector), job.params, info.tsince, info.exptime
        )
    size = patches.shape[1]
    values = np.empty((len(job.rows), 7))
    for k, (i, (r, c)) in enumerate(zip(job.rows, job.corners, strict=True)):
        bright = None if full_bright is None else full_bright[r : r + size, c : c + size]
        values[k] = measure_patch(np.asarray(patches[i]), np.asarray(usable[i]), bright, job.params.label)
    return values, dispersion


def collect_evidence(patch_dir: str | Path, params: Params) -> PatchEvidence:
    """Measure every patch, one (exposure, detector) at a time, side by side on ``params.workers``.

    Raises
    ------
    ContractError
        When an exposure or its previous exposure breaks the data contract.
    """
    index = read_index(patch_dir)
    evidence = PatchEvidence.empty(len(index["patch"]))
    jobs = []
    for file, detector in sorted({(f, d) for f, d in zip(index["file"], index["detector"], strict=True)}):
        rows = np.nonzero((index["file"] == file) & (index["detector"] == detector))[0]
        corners = np.column_stack([index["row"][rows], index["col"][rows]]).astype(np.int64)
        jobs.append(DetectorJob(str(patch_dir), file, detector, rows, corners, params))
    measured = map_ordered(measure_detector, jobs, params.workers, desc="label evidence", unit="detector")
    for job, (values, dispersion) in zip(jobs, measured, strict=True):
        evidence.signal_pixels[job.rows] = values[:, 0].astype(np.int64)
        evidence.coincidence[job.rows] = values[:, 1]
        evidence.chance[job.rows] = values[:, 2]
        evidence.elongation[job.rows] = values[:, 3]
        evidence.angle[job.rows] = values[:, 4]
        evidence.peak_ratio[job.rows] = values[:, 5]
        evidence.saturated_fraction[job.rows] = values[:, 6]
        evidence.dispersion[job.rows] = dispersion
    return evidence


def fallback_votes(evidence: PatchEvidence, patch_pixels: int, rule: LabelFallbackParams) -> np.ndarray:
    """Patches that look like persistence by their features alone (see the module docstring)."""
    looks = (
        (evidence.signal_pixels >= rule.min_signal_fraction * patch_pixels)
        & (evidence.peak_ratio <= rule.max_peak_ratio)
        & (evidence.saturated_fraction <= rule.max_saturated_fraction)
    )
    grism = np.isfinite(evidence.dispersion)
    offset = np.nan_to_num(np.abs((evidence.angle - evidence.dispersion + 90.0) % 180.0 - 90.0), nan=180.0)
    along = (evidence.elongation >= rule.min_elongation) & (offset <= rule.max_angle)
    return looks & (~grism | along)


def score_clusters(
    clusters: np.ndarray, groups: np.ndarray, evidence: PatchEvidence, patch_pixels: int, cfg: LabelParams
) -> list[dict[str, Any]]:
    """The automatic decision for every cluster.

    Parameters
    ----------
    clusters, groups
        Cluster id and group of every patch (``assignments.csv``, index order).
    evidence
        :func:`collect_evidence`.
    patch_pixels
        Pixels per patch (P * P).
    cfg
        The ``label`` section.

    Returns
    -------
    list of dict
        ``{cluster, group, persistence, score, reason, source: auto, confident}`` by cluster id.
    """
    votes = np.isfinite(evidence.coincidence) & (evidence.signal_pixels >= cfg.min_signal_pixels)
    looks = fallback_votes(evidence, patch_pixels, cfg.fallback)
    decisions = []
    for cluster in np.unique(clusters):
        members = clusters == cluster
        voters = members & votes
        n_voters = int(voters.sum())
        if n_voters >= cfg.min_prev_patches:
            hit = float(evidence.coincidence[voters].mean())
            chance = float(evidence.chance[voters].mean())
            score, threshold = hit - chance, cfg.threshold
            reason = (
                f"previous exposure: {hit:.2f} of signal pixels bright vs {chance:.2f} by chance "
                f"({n_voters} of {int(members.sum())} patches voting)"
            )
        else:
            score, threshold = float(looks[members].mean()), cfg.fallback.threshold
            reason = (
                f"fallback rule: {score:.2f} of {int(members.sum())} patches look like persistence "
                f"({n_voters} voters with a previous exposure)"
            )
        decisions.append(
            {
                "cluster": int(cluster),
                "group": str(groups[members][0]),
                "persistence": bool(score >= threshold),
                "score": round(score, 4),
                "reason": reason,
                "source": "auto",
                "confident": bool(abs(score - threshold) >= cfg.margin),
            }
        )
    return decisions


def read_overrides(path: str | Path) -> dict[int, dict[str, Any]]:
    """Human decisions ``{cluster id: {persistence: bool, reason: str}}``; empty when the file is absent.

    Raises
    ------
    SlewdarkError
        Naming the file and the bad entry.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SlewdarkError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SlewdarkError(f"{path}: expected a mapping {{cluster id: {{persistence, reason}}}}")
    overrides = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("persistence"), bool):
            raise SlewdarkError(f"{path}: cluster {key}: needs 'persistence: true|false' (and a reason)")
        extra = set(entry) - {"persistence", "reason"}
        if extra:
            raise SlewdarkError(f"{path}: cluster {key}: unknown key(s) {sorted(extra)}")
        try:
            cluster = int(key)
        except ValueError:
            raise SlewdarkError(f"{path}: cluster id {key!r} is not an integer") from None
        overrides[cluster] = {"persistence": entry["persistence"], "reason": str(entry.get("reason", ""))}
    return overrides


def apply_overrides(
    decisions: list[dict[str, Any]], overrides: dict[int, dict[str, Any]], source: str
) -> list[dict[str, Any]]:
    """Replace automatic decisions by human ones (confident by definition).

    Raises
    ------
    SlewdarkError
        When an override names a cluster that does not exist.
    """
    known = {d["cluster"] for d in decisions}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SlewdarkError(f"{source}: no cluster {unknown} in the clustering (ids change when it is rerun)")
    result = []
    for decision in decisions:
        entry = overrides.get(decision["cluster"])
        if entry is not None:
            reason = entry["reason"] or "human override"
            auto = "yes" if decision["persistence"] else "no"
            decision = {
                **decision,
                "persistence": entry["persistence"],
                "source": "override",
                "confident": True,
                "reason": f"{reason} (auto: {auto}, {decision['reason']})",
            }
        result.append(decision)
    return result


def run_label(params: Params) -> dict[str, Any]:
    """Run the ``label`` stage: decide, apply overrides, write clusters.yaml and the gallery.

    Returns
    -------
    dict
        Summary: clusters, persistence clusters, overrides, fallback decisions.

    Raises
    ------
    SlewdarkError, ContractError
        On missing or malformed inputs.
    """
    from slewdark.plots.label import save_gallery

    cfg = params.label
    patch_dir = params.patches.out
    index = read_index(patch_dir)
    assignments = read_assignments(params.cluster.out, len(index["patch"]))
    evidence = collect_evidence(patch_dir, params)
    patches, _ = open_patches(patch_dir)
    pixels = patches.shape[1] * patches.shape[2]
    decisions = score_clusters(assignments["cluster"], assignments["group"], evidence, pixels, cfg)
    decisions = apply_overrides(decisions, read_overrides(cfg.overrides), cfg.overrides)
    write_labels(cfg.out, decisions)
    summary = {
        "n_clusters": len(decisions),
        "n_persistence": sum(d["persistence"] for d in decisions),
        "n_overrides": sum(d["source"] == "override" for d in decisions),
        "n_fallback": sum(d["reason"].startswith("fallback") for d in decisions),
        "n_confident": sum(d["confident"] for d in decisions),
    }
    figures = save_gallery(
        cfg.gallery, decisions, assignments["cluster"], patches, cfg.gallery_samples, params.seed
    )
    tracking = params.tracking
    with stage_run(STAGE, tracking.uri, tracking.experiment, {"label": cfg.model_dump()}) as run:
        run.log_metrics({k: float(v) for k, v in summary.items()})
        run.log_artifact(cfg.out)
        for figure in figures[:1]:
            run.log_artifact(figure, "gallery")
    log.info("labels: %s", json.dumps(summary))
    return summary
