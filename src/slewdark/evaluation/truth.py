"""The simulator's truth (evaluation only): truth files, their reader and the patch classes.

The one module that reads truth; learning and inference code never import it
(``pyproject.toml``, ``[tool.importlinter]``).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slewdark.errors import ContractError
from slewdark.io.companions import companion_path
from slewdark.io.fits import active_pixels, open_fits

log = logging.getLogger(__name__)


TRUTH_CLASSES = ("persistence", "cosmic_ray", "hot_pixel", "clean")


def read_truth_classes(path: str | Path, n_patches: int) -> np.ndarray | None:
    """The ``truth`` column of ``patch_truth.csv`` in patch order, or None when absent, empty or stale."""
    path = Path(path)
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        log.info("%s: no truth (real data)", path)
        return None
    if len(rows) != n_patches:
        log.warning("%s has %d rows for %d patches: ignored (rerun patch-truth)", path, len(rows), n_patches)
        return None
    classes = np.empty(n_patches, dtype=object)
    for row in rows:
        classes[int(row["patch"])] = row["truth"]
    return classes


@dataclass(frozen=True)
class Truth:
    """Simulator truth of one detector (evaluation only); ``snow`` is all False without ``DETxy.SNOW``."""

    pers: np.ndarray
    cr: np.ndarray
    hot: np.ndarray
    snow: np.ndarray


def truth_file(exposure: str | Path, truth_dir: str | Path | None = None) -> Path:
    """Where the simulator's ``<stem>.truth.fits`` of an exposure lies (evaluation only).

    Parameters
    ----------
    exposure
        The slew dark ``<stem>.fits``.
    truth_dir
        Folder of the truth files (``data.train_truth``, ``simulate.truth_out``, ...);
        None: beside the exposure, the data contract's companion layout.

    Returns
    -------
    Path
        ``truth_dir/<stem>.truth.fits``, or ``<stem>.truth.fits`` beside the exposure.
    """
    return companion_path(exposure, "truth", truth_dir)


def read_truth(path: str | Path, detector: str) -> Truth:
    """Read one detector of a simulator ``<stem>.truth.fits`` (evaluation only).

    The snowball layer ``DETxy.SNOW`` is optional (all False when absent).

    Raises
    ------
    ContractError
        If the file or one of ``DETxy.PERS``, ``DETxy.CR``, ``DETxy.HOT`` is missing.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        layers = {}
        for layer in ("PERS", "CR", "HOT"):
            name = f"DET{detector}.{layer}"
            if name not in hdul:
                raise ContractError(path, f"no {name} extension")
            layers[layer] = active_pixels(np.asarray(hdul[name].data))
        snow_name = f"DET{detector}.SNOW"
        snow = active_pixels(np.asarray(hdul[snow_name].data)) if snow_name in hdul else None
    return Truth(
        pers=layers["PERS"].astype(np.float32),
        cr=layers["CR"].astype(bool),
        hot=layers["HOT"].astype(bool),
        snow=np.zeros(layers["PERS"].shape, bool) if snow is None else snow.astype(bool),
    )
