"""The cluster-free heuristic: the study's segmentation of the whole detector, gated on the bright map.

A detector is scaled as the patches are (``scaling``) and segmented with the
study's four steps (:func:`slewdark.core.segment.segment`, ``pseudomask.segment``,
floor :func:`slewdark.core.heuristic.segment_floor`) over the whole detector; where
the exposure names its previous exposure, the mask is kept only where that
exposure was bright (:func:`slewdark.core.brightmap.bright_map` with ``label.bright_level``,
``bright_dilation``, ``bright_median``), as the ``pseudomask`` stage gates its
masks. There is no cluster selection: this is what the segmentation alone
achieves, so it measures what the autoencoder -> UMAP -> GMM -> label chain adds.

Two uses, one implementation (:class:`slewdark.core.heuristic.HeuristicSegmentation`):

- the ``heuristic_segmentation`` row of the evaluation (held-out exposures);
- the ``heuristic_masks`` stage (:func:`run_heuristic_masks`): the same masks
  of the training exposures, written as pseudo-masks (``DETxy.MASK``, and
  ``DETxy.WEIGHT`` 1 on usable pixels), so that a UNet can be trained on them
  (the ablation's ``heuristic`` labels).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits
from tqdm import tqdm

from slewdark.config import Params
from slewdark.core.heuristic import HeuristicSegmentation
from slewdark.io.exposures import exposure_files
from slewdark.io.fits import (
    exposure_stem,
    iter_detectors,
    read_detector,
    read_info,
    write_fits_atomic,
)
from slewdark.io.previous import previous_exposure
from slewdark.io.pseudomasks import pseudo_mask_hdus, pseudo_mask_header, pseudo_mask_path

log = logging.getLogger(__name__)


def _exposure_hdus(path: Path, heuristic: HeuristicSegmentation) -> Iterator[fits.ImageHDU]:
    """MASK and WEIGHT extensions of one exposure, one detector in memory at a time."""
    info = read_info(path)
    prev_path, _ = previous_exposure(info)
    for detector in iter_detectors(path):
        prev = None if prev_path is None else read_detector(prev_path, detector.detector)
        mask = heuristic(detector, prev, info.tsince, info.exptime).astype(np.uint8)
        yield from pseudo_mask_hdus(detector.detector, mask, detector.usable.astype(np.float32))


def run_heuristic_masks(params: Params, out: str | Path) -> int:
    """Run the ``heuristic_masks`` stage: heuristic masks of the training exposures (``data.train``).

    Parameters
    ----------
    params
        Validated params (``data.train``, ``scaling``, ``pseudomask.segment``, ``label`` bright map).
    out
        Output folder of ``<stem>.pseudo.fits``.

    Returns
    -------
    int
        Exposures written.
    """
    heuristic = HeuristicSegmentation(params)
    files = exposure_files(params.data.train)
    header = pseudo_mask_header(params, "HEURISTIC", "cluster-free heuristic mask for UNet training")
    for path in tqdm(files, desc="heuristic masks", unit="exposure"):
        primary = header.copy()
        primary["OBS_ID"] = exposure_stem(path)
        write_fits_atomic(
            pseudo_mask_path(out, exposure_stem(path)), primary, _exposure_hdus(path, heuristic)
        )
    log.info("wrote %d heuristic masks to %s", len(files), out)
    return len(files)
