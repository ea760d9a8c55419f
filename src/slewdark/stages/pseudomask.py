"""The ``pseudomask`` stage: persistence-cluster patches segmented and reassembled into detector masks.

For every exposure of ``index.csv`` and each of its detectors:

1. every persistence patch is segmented with the study's four steps
   (:func:`slewdark.core.segment.segment`, ``pseudomask.segment``); other patches get
   an empty mask. With ``pseudomask.rule: cluster`` a persistence patch is one
   whose cluster is labelled persistence (``data/labels/clusters.yaml``); with
   ``neighbourhood`` (the study's next steps 2-3,
   :func:`slewdark.latent.neighbourhood.in_labelled_neighbourhood`) also one
   within ``cluster.neighbourhood_threshold`` standard deviations of a
   persistence cluster of its group in the UMAP space; these added patches are
   not confident (weight ``weight.uncertain``);
2. when the exposure names its previous exposure (``PREVFILE``), the patch masks
   are kept only where that exposure was bright (saturated, or median-filtered
   fluence at ``label.bright_level``, grown by ``label.bright_dilation``:
   :func:`slewdark.core.brightmap.bright_map`): persistence cannot appear anywhere else, so this
   removes cosmic rays and noise blobs that the segmentation kept;
   with ``pseudomask.law: clusters`` the pixels of persistence patches where the
   lab law scaled to the dark (:mod:`slewdark.core.law_fit`) reaches
   ``law_fit.mask_electrons`` (or ``mask_sigma`` noise sigmas) are added: the faint persistence that no
   per-pixel threshold can separate from noise, wherever the dark's own
   amplitude puts it, including below ``label.bright_level``; with
   ``everywhere``, those of every patch, with weight 1; with ``only``, the law
   alone labels the detector, every usable pixel with weight 1 (the
   segmentation labels only darks without ``PREVFILE`` or timing);
3. patches are put back at their ``row``/``col`` in the 2040 x 2040 frame. The
   channels (horizontal bands) are thereby concatenated; where patches overlap
   (``stride < size``) the detector mask is the **maximum** of the patch masks (a
   pixel is persistence if any covering patch says so) and the weight is the
   **mean** of the patch weights.

Weight map (``DETxy.WEIGHT``, confidence of the label for the UNet loss):

- 0 on unusable pixels and on pixels that no patch covers;
- 1 where the previous exposure was not bright: persistence is impossible
  there, so label 0 is certain whatever the cluster;
- in a persistence-cluster patch: 1 when the cluster's decision is confident
  (an override, or a score at least ``label.margin`` from its threshold) and the
  patch's GMM posterior reaches ``weight.min_probability``; ``weight.uncertain``
  otherwise;
- in other patches, where the previous exposure was bright or is unknown:
  ``weight.outside`` (0 by default: no label). Clusters are not pure, so a patch
  outside a persistence cluster can still hold faint persistence exactly there;
  calling it background (weight 0.25) went with a held-out UNet recall of
  0.46 (see the README).

Output: ``<out>/<stem>.pseudo.fits`` per exposure with ``DETxy.MASK`` (uint8, 1 =
persistence) and ``DETxy.WEIGHT`` (float32 in [0, 1]), written atomically.
Simulator truth is never read here (see :mod:`slewdark.stages.pseudomask_quality`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from slewdark.config import Params, PseudomaskWeightParams, SegmentParams
from slewdark.core.brightmap import label_bright_map
from slewdark.core.heuristic import segment_floor
from slewdark.core.instrument import ACTIVE_SIZE
from slewdark.core.law_fit import fit_dark, law_fit_settings, persistence_model
from slewdark.core.patch_grid import cut_patches
from slewdark.core.scaling import Scaling
from slewdark.core.segment import segment
from slewdark.errors import ContractError
from slewdark.io.clusters import read_assignments, read_labels
from slewdark.io.fits import DetectorImage, read_detector, read_info, write_fits_atomic
from slewdark.io.patches import open_patches
from slewdark.io.previous import previous_exposure
from slewdark.io.pseudomasks import pseudo_mask_hdus, pseudo_mask_header, pseudo_mask_path
from slewdark.io.tables import read_index
from slewdark.ops.parallel import map_ordered
from slewdark.ops.tracking import stage_run

log = logging.getLogger(__name__)

STAGE = "pseudomask"


def patch_labels(
    clusters: np.ndarray, probability: np.ndarray, decisions: list[dict[str, Any]], min_probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per patch: in a persistence cluster, and confidently so.

    Parameters
    ----------
    clusters, probability
        Cluster id and GMM posterior of every patch.
    decisions
        Entries of ``clusters.yaml`` (``confident`` defaults to True when absent).
    min_probability
        Posterior a confident patch needs.

    Returns
    -------
    persistence, confident : ndarray
        Boolean per patch.
    """
    if not decisions:
        return np.zeros(len(clusters), bool), np.zeros(len(clusters), bool)
    ids = np.array([d["cluster"] for d in decisions], dtype=np.int64)
    persistent = np.array([bool(d["persistence"]) for d in decisions])
    sure = np.array([bool(d.get("confident", True)) for d in decisions])
    order = np.argsort(ids)
    where = np.searchsorted(ids[order], clusters)
    known = (where < len(ids)) & (ids[order][np.minimum(where, len(ids) - 1)] == clusters)
    pick = order[np.minimum(where, len(ids) - 1)]
    persistence = known & persistent[pick]
    confident = known & sure[pick] & (probability >= min_probability)
    return persistence, confident


def patch_products(
    patches: np.ndarray,
    usable: np.ndarray,
    bright: np.ndarray | None,
    persistence: np.ndarray,
    confident: np.ndarray,
    segment_cfg: SegmentParams,
    weight_cfg: PseudomaskWeightParams,
    floor: float = -np.inf,
    law: np.ndarray | None = None,
    law_everywhere: bool = False,
    law_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask and weight of each patch of one detector (see the module docstring).

    Parameters
    ----------
    patches, usable
        (n, P, P) normalised patches and their usable pixels.
    bright
        (n, P, P) previous-exposure bright pixels, or None when unknown.
    persistence, confident
        Per patch (:func:`patch_labels`).
    segment_cfg, weight_cfg
        ``pseudomask.segment`` and ``pseudomask.weight``.
    floor
        Lowest segmentation level in patch units (:func:`slewdark.core.heuristic.segment_floor`).
    law
        (n, P, P) pixels where the law scaled to the dark reaches its mask level
        (``pseudomask.law``), or None: added to the masks of persistence patches.
    law_everywhere
        Add ``law`` to every patch's mask, with weight 1 (``pseudomask.law: everywhere``).
    law_only
        ``law`` is the whole label, certain on every usable pixel (``pseudomask.law: only``):
        the pixels below the mask level are as much its answer as those above.

    Returns
    -------
    masks : ndarray
        bool (n, P, P).
    weights : ndarray
        float32 (n, P, P).
    """
    masks = np.zeros(patches.shape, dtype=bool)
    weights = np.full(patches.shape, weight_cfg.outside, dtype=np.float32)
    for i in np.nonzero(persistence)[0]:
        masks[i] = segment(np.asarray(patches[i]), np.asarray(usable[i]), segment_cfg, floor)
    weights[persistence] = weight_cfg.uncertain
    weights[persistence & confident] = 1.0
    usable = np.asarray(usable, dtype=bool)
    if bright is not None:
        masks &= bright
        weights[~bright if law is None else ~bright & ~law] = 1.0
    if law is not None and law_only:
        masks = law & usable
        weights[:] = 1.0
    elif law is not None and law_everywhere:
        masks |= law & usable
        weights[law] = 1.0
    elif law is not None:
        masks |= law & usable & persistence[:, None, None]
    weights[~usable] = 0.0
    return masks, weights


def reassemble(
    masks: np.ndarray, weights: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Put patch masks and weights back into the detector frame.

    Overlaps: the mask is the maximum of the covering patch masks, the weight
    their mean; pixels no patch covers get mask 0 and weight 0.

    Parameters
    ----------
    masks
        (n, P, P) boolean or uint8 patch masks.
    weights
        (n, P, P) float patch weights.
    rows, cols
        Top-left pixel of each patch.
    shape
        Detector shape.

    Returns
    -------
    mask : ndarray
        uint8 detector mask.
    weight : ndarray
        float32 detector weight.
    """
    size = masks.shape[1]
    mask = np.zeros(shape, dtype=np.uint8)
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.int32)
    for patch_mask, patch_weight, r, c in zip(masks, weights, rows, cols, strict=True):
        window = np.s_[int(r) : int(r) + size, int(c) : int(c) + size]
        np.maximum(mask[window], patch_mask.astype(np.uint8), out=mask[window])
        total[window] += patch_weight
        count[window] += 1
    weight = np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
    return mask, weight


def neighbourhood_patches(
    assignments: dict[str, np.ndarray], decisions: list[dict[str, Any]], params: Params
) -> np.ndarray:
    """Per patch: inside the neighbourhood of a persistence cluster of its group (study steps 2-3)."""
    from slewdark.latent.neighbourhood import in_labelled_neighbourhood, load_group_models

    labelled = {int(d["cluster"]) for d in decisions if d["persistence"]}
    models = load_group_models(Path(params.cluster.out) / "models")
    inside = in_labelled_neighbourhood(
        models,
        assignments["group"],
        assignments["embedding"],
        labelled,
        params.cluster.neighbourhood_threshold,
    )
    log.info("neighbourhood rule: %d patches inside a persistence cluster's neighbourhood", int(inside.sum()))
    return inside


def law_mask(
    file: str, detector: str, prev: DetectorImage, timing: tuple[float, float], params: Params
) -> np.ndarray:
    """Pixels of a dark's detector where the law scaled to it reaches its mask level (``law_fit``).

    Raises
    ------
    ContractError
        When the detector has no usable pixel.
    """
    dark = read_detector(file, detector)
    scaling, settings = Scaling(**params.scaling.model_dump()), law_fit_settings(params)
    try:
        fit = fit_dark(dark, prev, persistence_model(params), timing, settings, scaling)
    except ValueError as error:
        raise ContractError(file, f"DET{detector}: {error}") from None
    log.debug("%s DET%s: law scaled by %.2f on %d pixels", file, detector, fit.scale, fit.pixels)
    return fit.mask(settings)


@dataclass(frozen=True)
class ExposureJob:
    """One exposure's pseudo-mask to write: its rows of ``index.csv`` and their patch decisions.

    Attributes
    ----------
    stem
        Exposure stem.
    rows
        Its patch rows (into ``patches.npy``).
    index
        Its rows of ``index.csv``, column by column.
    persistence, confident
        Per row: a persistence patch; its label is confident.
    header
        Primary header of the product, without ``OBS_ID``.
    params
        All parameters.
    """

    stem: str
    rows: np.ndarray
    index: dict[str, np.ndarray]
    persistence: np.ndarray
    confident: np.ndarray
    header: fits.Header
    params: Params


def write_exposure(job: ExposureJob) -> dict[str, int]:
    """Write one exposure's ``<stem>.pseudo.fits`` and return its detectors and pixel counts."""
    stats = {"detectors": 0, "mask_pixels": 0, "confident_pixels": 0}
    primary = job.header.copy()
    primary["OBS_ID"] = job.stem
    write_fits_atomic(
        pseudo_mask_path(job.params.pseudomask.out, job.stem), primary, _detector_hdus(job, stats)
    )
    return stats


def _detector_hdus(job: ExposureJob, stats: dict[str, int]) -> Iterator[fits.ImageHDU]:
    """MASK and WEIGHT extensions of one exposure, computed one detector at a time."""
    params, index = job.params, job.index
    patches, usable = open_patches(params.patches.out)
    file = str(index["file"][0])
    info = read_info(file)
    prev, _ = previous_exposure(info)
    for detector in dict.fromkeys(index["detector"]):
        local = np.flatnonzero(index["detector"] == detector)
        rows = job.rows[local]
        corners = (index["row"][local].astype(np.int64), index["col"][local].astype(np.int64))
        size = patches.shape[1]
        bright = law = None
        if prev is not None:
            prev_detector = read_detector(prev, detector)
            full = label_bright_map(prev_detector, params, info.tsince, info.exptime)
            bright = cut_patches(full, *corners, size)
            if params.pseudomask.law != "none" and info.tsince is not None and info.exptime is not None:
                full = law_mask(file, detector, prev_detector, (info.tsince, info.exptime), params)
                law = cut_patches(full, *corners, size)
        masks, weights = patch_products(
            patches[rows],
            usable[rows],
            bright,
            job.persistence[local],
            job.confident[local],
            params.pseudomask.segment,
            params.pseudomask.weight,
            segment_floor(params),
            law,
            params.pseudomask.law in ("everywhere", "only"),
            params.pseudomask.law == "only",
        )
        mask, weight = reassemble(masks, weights, *corners, (ACTIVE_SIZE,) * 2)
        stats["mask_pixels"] += int(mask.sum())
        stats["confident_pixels"] += int((weight >= 1.0).sum())
        stats["detectors"] += 1
        yield from pseudo_mask_hdus(detector, mask, weight)


def run_pseudomask(params: Params) -> dict[str, Any]:
    """Run the ``pseudomask`` stage: write ``<stem>.pseudo.fits`` for every exposure of the patch index.

    The exposures are written side by side on ``params.workers`` local Dask processes.

    Returns
    -------
    dict
        Exposures, detectors, mask pixels and confident (weight 1) pixels written.

    Raises
    ------
    SlewdarkError, ContractError
        On missing or malformed inputs.
    """
    cfg = params.pseudomask
    index = read_index(params.patches.out)
    assignments = read_assignments(params.cluster.out, len(index["patch"]))
    decisions = read_labels(params.label.out)
    persistence, confident = patch_labels(
        assignments["cluster"], assignments["probability"], decisions, cfg.weight.min_probability
    )
    if cfg.rule == "neighbourhood":
        persistence |= neighbourhood_patches(assignments, decisions, params)
    header = pseudo_mask_header(params, "PSEUDOMASK", "pseudo-label mask for UNet training")
    jobs = []
    for stem in dict.fromkeys(index["exposure"]):
        rows = np.flatnonzero(index["exposure"] == stem)
        columns = {name: index[name][rows] for name in ("file", "detector", "row", "col")}
        jobs.append(ExposureJob(stem, rows, columns, persistence[rows], confident[rows], header, params))
    stats = {"exposures": len(jobs), "detectors": 0, "mask_pixels": 0, "confident_pixels": 0}
    for counts in map_ordered(write_exposure, jobs, params.workers, desc="pseudomask", unit="exposure"):
        for name, value in counts.items():
            stats[name] += value
    stats["persistence_patches"] = int(persistence.sum())
    with stage_run(
        STAGE,
        params.tracking.uri,
        params.tracking.experiment,
        {"pseudomask": cfg.model_dump(exclude={"quality"})},
        run_name=STAGE if cfg.rule == "cluster" else f"{STAGE}-{cfg.rule}",
    ) as run:
        run.log_metrics({k: float(v) for k, v in stats.items()})
    log.info("pseudo-masks: %s", stats)
    return stats
