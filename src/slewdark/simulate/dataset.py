"""A simulated data set: slew darks, their previous exposures and truth, as FITS files.

For exposure ``i`` of a data set with seed ``s`` the simulator draws the previous
exposure's kind, tilt and TSINCE, then per detector the previous fluence map, the
persistence it leaves, hot pixels, cosmic rays, snowballs and the readout, and writes
``sd<s>_<i>.fits``, ``.prev.fits`` and ``.truth.fits`` (``docs/data-contract.md``).
Each (exposure, detector) has its own seeded generator, so files are byte-identical
for the same seed and independent of the order or subset of detectors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from tqdm import tqdm

from slewdark import __version__
from slewdark.config import SimulateParams
from slewdark.io.fits import fits_writer
from slewdark.simulate.detector import cosmic_rays, hot_pixels, readout, snowballs
from slewdark.simulate.persistence import persistence_signal
from slewdark.simulate.sky import exposure_time, is_spectroscopic, previous_fluence

log = logging.getLogger(__name__)

SHAPE = (2040, 2040)
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CADENCE_S = 3600.0
STREAM = {"exposure": 0, "sky": 1, "dark": 2, "hot": 3}


@dataclass(frozen=True)
class ExposurePlan:
    """What precedes one slew dark: previous exposure kind, tilt, and the time since it ended."""

    stem: str
    index: int
    kind: str
    tilt: float
    tsince: float
    date_obs: str


@dataclass
class DetectorLayers:
    """Everything simulated for one detector of one exposure."""

    science: np.ndarray
    fluence: np.ndarray
    persistence: np.ndarray
    cosmic: np.ndarray
    hot: np.ndarray
    snow: np.ndarray
    n_cosmic_hits: int


def generator(seed: int, *keys: int) -> np.random.Generator:
    """A numpy Generator for a stream identified by integers (seed first)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def plan_exposure(cfg: SimulateParams, index: int) -> ExposurePlan:
    """Draw the previous exposure's kind and tilt and the TSINCE of exposure ``index``."""
    rng = generator(cfg.seed, STREAM["exposure"], index)
    kind = str(rng.choice(cfg.sky.kinds))
    tilt = float(rng.choice(cfg.sky.tilts)) if is_spectroscopic(kind) else 0.0
    tsince = float(rng.choice(cfg.tsince))
    start = EPOCH + dt.timedelta(seconds=CADENCE_S * (index + 1000 * cfg.seed))
    return ExposurePlan(
        stem=f"sd{cfg.seed:03d}_{index:04d}",
        index=index,
        kind=kind,
        tilt=tilt,
        tsince=tsince,
        date_obs=start.strftime("%Y-%m-%dT%H:%M:%S.000"),
    )


def simulate_detector(cfg: SimulateParams, plan: ExposurePlan, detector: str) -> DetectorLayers:
    """Simulate one detector of a slew dark and the previous exposure that it follows."""
    det = int(detector)
    sky_rng = generator(cfg.seed, STREAM["sky"], plan.index, det)
    dark_rng = generator(cfg.seed, STREAM["dark"], plan.index, det)
    fluence = previous_fluence(SHAPE, plan.kind, plan.tilt, cfg.sky, sky_rng)
    pers = persistence_signal(fluence, cfg.detector.full_well, plan.tsince, cfg.exptime, cfg.persistence)
    hot = hot_pixels(SHAPE, cfg.hot_pixels, generator(cfg.seed, STREAM["hot"], det))
    mean_charge = cfg.detector.dark_current * cfg.exptime + hot.rate * cfg.exptime + pers
    collected = dark_rng.poisson(mean_charge).astype(np.float64)
    cosmic, n_hits = cosmic_rays(SHAPE, cfg.exptime, cfg.cosmic_rays, cfg.detector, dark_rng)
    snow = snowballs(SHAPE, cfg.exptime, cfg.cosmic_rays, dark_rng)
    science = readout(collected + cosmic + snow, cfg.detector, dark_rng)
    return DetectorLayers(science, fluence, pers, cosmic, hot.mask, snow, n_hits)


def _science_hdu(science: np.ndarray, detector: str, cfg: SimulateParams) -> fits.ImageHDU:
    """The ``DETxy.SCI`` extension in the configured unit."""
    header = fits.Header()
    header["DET_ID"] = detector
    header["BUNIT"] = cfg.bunit
    if cfg.bunit == "electron/s":
        science = science / np.float32(cfg.exptime)
    elif cfg.bunit == "adu":
        science = science / np.float32(cfg.detector.gain)
        header["GAIN"] = (cfg.detector.gain, "e-/ADU")
    return fits.ImageHDU(science.astype(np.float32), header=header, name=f"DET{detector}.SCI")


def _primary_headers(cfg: SimulateParams, plan: ExposurePlan) -> tuple[fits.Header, fits.Header]:
    """Primary headers of the slew dark and of its previous exposure."""
    prev_exptime = exposure_time(plan.kind, cfg.sky)
    dark = fits.Header()
    dark["TELESCOP"] = "EUCLID"
    dark["INSTRUME"] = "NISP"
    dark["OBS_ID"] = plan.stem
    dark["DATE-OBS"] = plan.date_obs
    dark["EXPTIME"] = (cfg.exptime, "s")
    dark["PREVFILE"] = f"{plan.stem}.prev.fits"
    dark["PREVGWA"] = plan.kind
    dark["PREVTILT"] = (plan.tilt, "deg")
    dark["TSINCE"] = (plan.tsince, "s, end of PREVFILE to start of this exposure")
    dark["SIMSEED"] = (cfg.seed, "slewdark simulator seed")
    dark["SDVER"] = (__version__, "slewdark version")
    prev = fits.Header()
    prev["TELESCOP"] = "EUCLID"
    prev["INSTRUME"] = "NISP"
    prev["OBS_ID"] = f"{plan.stem}.prev"
    prev["GWA"] = (plan.kind if is_spectroscopic(plan.kind) else "OPEN", "grism wheel")
    prev["FILTER"] = (plan.kind if not is_spectroscopic(plan.kind) else "OPEN", "filter wheel")
    prev["TILT"] = (plan.tilt, "deg")
    prev["EXPTIME"] = (prev_exptime, "s")
    return dark, prev


def _detector_hdus(
    cfg: SimulateParams, layers: DetectorLayers, detector: str
) -> tuple[list[fits.ImageHDU], list[fits.ImageHDU], list[fits.ImageHDU]]:
    """One detector's extensions of the slew dark, the previous exposure and the truth file."""
    recorded = np.minimum(layers.fluence, cfg.detector.full_well).astype(np.float32)
    previous = fits.ImageHDU(recorded, name=f"DET{detector}.SCI")
    previous.header["BUNIT"] = "electron"
    threshold = cfg.cosmic_rays.truth_threshold
    pers = fits.ImageHDU(layers.persistence, name=f"DET{detector}.PERS")
    pers.header["BUNIT"] = "electron"
    cosmic = fits.ImageHDU((layers.cosmic > threshold).astype(np.uint8), name=f"DET{detector}.CR")
    cosmic.header["NHITS"] = (layers.n_cosmic_hits, "cosmic-ray hits simulated")
    truth = [
        pers,
        cosmic,
        fits.ImageHDU(layers.hot.astype(np.uint8), name=f"DET{detector}.HOT"),
        fits.ImageHDU((layers.snow > threshold).astype(np.uint8), name=f"DET{detector}.SNOW"),
    ]
    return [_science_hdu(layers.science, detector, cfg)], [previous], truth


def simulate_exposure(cfg: SimulateParams, index: int, out: Path) -> Path:
    """Simulate and write one slew dark with its ``.prev.fits`` and ``.truth.fits``.

    The three files are written side by side, one detector at a time, so memory holds
    a single detector whatever the number of detectors. Each goes to a temporary
    file that is renamed into place only when every detector is written; the slew
    dark is renamed last, so it never appears without its companions.

    Returns
    -------
    Path
        The slew-dark file.
    """
    plan = plan_exposure(cfg, index)
    dark_header, prev_header = _primary_headers(cfg, plan)
    path = out / f"{plan.stem}.fits"
    prev_path, truth_path = companions(path)
    targets = (
        (path, dark_header),
        (prev_path, prev_header),
        (truth_path, fits.Header({"OBS_ID": plan.stem})),
    )
    with contextlib.ExitStack() as stack:
        appends = [stack.enter_context(fits_writer(target, header)) for target, header in targets]
        for detector in cfg.detectors:
            layers = simulate_detector(cfg, plan, detector)
            for append, hdus in zip(appends, _detector_hdus(cfg, layers, detector), strict=True):
                for hdu in hdus:
                    append(hdu)
            del layers
    log.info(
        "%s: previous %s tilt %+.0f, TSINCE %.0f s, %d detectors",
        plan.stem,
        plan.kind,
        plan.tilt,
        plan.tsince,
        len(cfg.detectors),
    )
    return path


def simulate_dataset(cfg: SimulateParams) -> list[Path]:
    """Simulate ``cfg.n_exposures`` slew darks into ``cfg.out`` (see the module docstring).

    Files of a previous run that this one does not write again are removed, so the
    folder holds exactly this data set (it is a DVC output).

    Returns
    -------
    list of Path
        The slew-dark files, in order.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        simulate_exposure(cfg, index, out)
        for index in tqdm(range(cfg.n_exposures), desc="simulate", unit="exposure")
    ]
    keep = {p.name for path in written for p in (path, *companions(path))}
    for stale in sorted(out.glob("*.fits")):
        if stale.name not in keep:
            stale.unlink()
    return written


def companions(path: Path) -> tuple[Path, Path]:
    """The ``.prev.fits`` and ``.truth.fits`` files beside a slew dark."""
    stem = path.name.removesuffix(".fits")
    return path.with_name(f"{stem}.prev.fits"), path.with_name(f"{stem}.truth.fits")
