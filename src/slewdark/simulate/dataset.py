"""A simulated data set: slew darks, their previous exposures and truth, as FITS files.

For exposure ``i`` of a data set with seed ``s`` the simulator draws a plan
(:func:`plan_exposure`): the previous exposure's kind (balanced over the data set),
tilt and sky richness, TSINCE,
0..N earlier exposures (the history), and the exposure's EXPTIME, cosmic-ray rate,
hot-pixel share and readout levels, each from its ``[lo, hi]`` range in
``params.yaml``. A stratified share of exposures is persistence-free (previous
exposure long ago, no history). Per detector it draws an orientation of the sky, the
fluence maps, the persistence they leave (``persistence.law`` times the detector's trap map),
hot pixels, cosmic rays, snowballs and the readout, observes the previous exposure as
a pipeline delivers it, and writes ``sd<s>_<i>.fits`` and ``.prev.fits`` into
``out``, and ``.truth.fits`` into ``truth_out`` (beside the exposures when null;
``docs/data-contract.md``, ``docs/simulator.md``), so that only the stages that
depend on the truth folder can read it. Each (exposure,
detector) has its own seeded generators, so files are byte-identical for the same
seed and independent of the order or subset of detectors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from slewdark import __version__
from slewdark.config import PersistenceSim, SimulateParams
from slewdark.core.instrument import ACTIVE_SIZE, REFERENCE_BORDER, is_spectroscopic
from slewdark.io.companions import companion_path
from slewdark.io.fits import fits_writer
from slewdark.ops.parallel import map_ordered
from slewdark.simulate.detector import (
    ReadoutLevels,
    cosmic_rays,
    hot_pixels,
    poisson_charge,
    readout,
    snowballs,
)
from slewdark.simulate.persistence import law_signal, trap_factor
from slewdark.simulate.render import orient
from slewdark.simulate.sky import exposure_time, previous_fluence

log = logging.getLogger(__name__)

SHAPE = (ACTIVE_SIZE, ACTIVE_SIZE)
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CADENCE_S = 3600.0
STREAM = {
    "exposure": 0,
    "sky": 1,
    "dark": 2,
    "hot": 3,
    "traps": 4,
    "previous": 5,
    "history": 6,
    "orientation": 7,
    "free": 8,
    "cosmic": 9,
    "readout": 10,
    "kinds": 11,
    "amplitude": 12,
    "read_noise": 13,
}
"""Generator streams. Draws whose count depends on the sky (Poisson) have a stream of
their own, so cosmic rays and readout noise do not change with the sky's orientation."""
SATUR_BIT = 10
"""DQ bit of saturated pixels in Euclid's NISP layout (``MSK_FLAG_SATUR``)."""
COSMIC_BIT = 16
"""DQ bit of cosmic-ray hits in Euclid's NISP layout (``MSK_FLAG_COSMIC``)."""


@dataclass(frozen=True)
class ScienceExposure:
    """A science exposure before the slew dark: what it observed and when it ended."""

    kind: str
    tilt: float
    richness: float
    exptime: float
    tsince: float
    """Seconds from its end to the start of the slew dark."""


@dataclass(frozen=True)
class ExposurePlan:
    """Everything drawn once per slew dark, shared by its detectors."""

    stem: str
    index: int
    date_obs: str
    exptime: float
    previous: ScienceExposure
    history: tuple[ScienceExposure, ...]
    persistence_free: bool
    cosmic_rate_factor: float
    hot_fraction: float
    readout: ReadoutLevels
    nan_saturated: bool
    cosmic_flagged: float
    """Share of the previous exposure's cosmic-ray hits that its pipeline flags COSMIC."""


@dataclass(frozen=True)
class PreviousImage:
    """The previous exposure as delivered: electrons and the DQ layer with the SATUR and COSMIC bits."""

    science: np.ndarray
    dq: np.ndarray


@dataclass
class DetectorLayers:
    """Everything simulated for one detector of one exposure."""

    science: np.ndarray
    previous: PreviousImage
    fluence: np.ndarray
    persistence: np.ndarray
    cosmic: np.ndarray
    hot: np.ndarray
    snow: np.ndarray
    n_cosmic_hits: int
    orientation: int
    persistence_scale: float
    amplitude_factor: float
    law: str
    law_x0: float
    law_dx: float


def generator(seed: int, *keys: int) -> np.random.Generator:
    """A numpy Generator for a stream identified by integers (seed first)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A uniform draw in ``[lo, hi]``; equal ends give exactly that value."""
    lo, hi = bounds
    return float(lo + rng.random() * (hi - lo))


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A log-uniform draw in ``[lo, hi]`` (both > 0); equal ends give exactly that value."""
    lo, hi = bounds
    u = rng.random()
    return float(lo) if lo == hi else float(lo * (hi / lo) ** u)


def draw_law(cfg: PersistenceSim, rng: np.random.Generator) -> tuple[PersistenceSim, float]:
    """The law of one detector in one exposure, and the factor on its amplitude.

    The lab law with its Fermi step moved and widened by factors drawn
    log-uniformly from ``x0_factor`` and ``dx_factor``; the amplitude factor is
    drawn first, so a data set with both shape factors at 1 holds the same
    pixels as one without them.
    """
    amplitude = log_uniform(rng, cfg.amplitude_factor)
    x0 = cfg.x0 * log_uniform(rng, cfg.x0_factor)
    dx = cfg.dx * log_uniform(rng, cfg.dx_factor)
    return cfg.model_copy(update={"x0": x0, "dx": dx}), amplitude


def is_persistence_free(cfg: SimulateParams, index: int) -> bool:
    """Whether exposure ``index`` is persistence-free, stratified over the data set.

    Exposure ``i`` is free when ``floor(p (i + 1) + phase) > floor(p i + phase)`` with
    ``p = persistence_free_fraction`` and a phase drawn from the seed: the share is
    ``p``, and any ``1 / p`` consecutive exposures hold at least one free dark.
    """
    share = cfg.persistence_free_fraction
    phase = generator(cfg.seed, STREAM["free"]).random()
    return bool(np.floor(share * (index + 1) + phase) > np.floor(share * index + phase))


def previous_kind(cfg: SimulateParams, index: int) -> str:
    """Kind of exposure ``index``'s previous exposure, balanced over the data set.

    Exposures take the kinds in cycles of ``len(kinds)``, each cycle in an order
    shuffled from the seed, so every run of that many exposures holds each kind once.
    """
    kinds = cfg.sky.kinds
    order = generator(cfg.seed, STREAM["kinds"], index // len(kinds)).permutation(len(kinds))
    return kinds[order[index % len(kinds)]]


def draw_science_exposure(
    cfg: SimulateParams, rng: np.random.Generator, kind: str, tsince: float
) -> ScienceExposure:
    """Tilt and sky richness of a ``kind`` exposure that ended ``tsince`` s before the dark."""
    tilt = float(rng.choice(cfg.sky.tilts)) if is_spectroscopic(kind) else 0.0
    richness = log_uniform(rng, cfg.sky.richness)
    return ScienceExposure(kind, tilt, richness, exposure_time(kind, cfg.sky), tsince)


def draw_history(
    cfg: SimulateParams, rng: np.random.Generator, previous: ScienceExposure
) -> tuple[ScienceExposure, ...]:
    """0..``history.max_exposures`` exposures before ``previous``, each a ``gap`` before the next."""
    history = []
    start = previous.tsince + previous.exptime
    for _ in range(int(rng.integers(0, cfg.history.max_exposures + 1))):
        kind = str(rng.choice(cfg.sky.kinds))
        earlier = draw_science_exposure(cfg, rng, kind, start + log_uniform(rng, cfg.history.gap))
        history.append(earlier)
        start = earlier.tsince + earlier.exptime
    return tuple(history)


def plan_exposure(cfg: SimulateParams, index: int) -> ExposurePlan:
    """Draw everything that exposure ``index`` shares between its detectors."""
    rng = generator(cfg.seed, STREAM["exposure"], index)
    free = is_persistence_free(cfg, index)
    tsince = log_uniform(rng, cfg.persistence_free_tsince if free else cfg.tsince)
    previous = draw_science_exposure(cfg, rng, previous_kind(cfg, index), tsince)
    history = () if free else draw_history(cfg, rng, previous)
    start = EPOCH + dt.timedelta(seconds=CADENCE_S * (index + 1000 * cfg.seed))
    return ExposurePlan(
        stem=f"sd{cfg.seed:03d}_{index:04d}",
        index=index,
        date_obs=start.strftime("%Y-%m-%dT%H:%M:%S.000"),
        exptime=uniform(rng, cfg.exptime),
        previous=previous,
        history=history,
        persistence_free=free,
        cosmic_rate_factor=log_uniform(rng, cfg.cosmic_rays.rate_factor),
        hot_fraction=uniform(rng, cfg.hot_pixels.fraction),
        readout=ReadoutLevels(
            read_noise=uniform(generator(cfg.seed, STREAM["read_noise"], index), cfg.detector.read_noise),
            channel_offset_sigma=uniform(rng, cfg.detector.channel_offset_sigma),
            row_noise_sigma=uniform(rng, cfg.detector.row_noise_sigma),
            amp_glow=uniform(rng, cfg.detector.amp_glow),
        ),
        nan_saturated=bool(rng.random() < cfg.previous.nan_saturated_probability),
        cosmic_flagged=uniform(rng, cfg.previous.cosmic_flagged),
    )


def draw_orientation(cfg: SimulateParams, plan: ExposurePlan, det: int) -> int:
    """The sky transform (0..7) of one detector in one exposure, from its own stream."""
    return int(generator(cfg.seed, STREAM["orientation"], plan.index, det).choice(cfg.orientation))


def exposure_fluence(
    cfg: SimulateParams, exposure: ScienceExposure, orientation: int, rng: np.random.Generator
) -> np.ndarray:
    """Fluence (e-, unclipped) of a science exposure on a detector, in its pixel frame."""
    sky = previous_fluence(SHAPE, exposure.kind, exposure.tilt, exposure.richness, cfg.sky, rng)
    return orient(sky, orientation)


def history_persistence(
    cfg: SimulateParams, plan: ExposurePlan, det: int, orientation: int, law: PersistenceSim
) -> np.ndarray:
    """Persistence (e-, median trap density) that the earlier exposures leave in the dark by ``law``.

    Summed in the sky frame (persistence is per pixel) and turned once.
    """
    total = np.zeros(SHAPE, dtype=np.float32)
    for k, earlier in enumerate(plan.history):
        rng = generator(cfg.seed, STREAM["history"], plan.index, det, k)
        fluence = exposure_fluence(cfg, earlier, 0, rng)
        total += law_signal(fluence, cfg.detector.full_well, earlier.tsince, plan.exptime, law)
    return orient(total, orientation)


def observe_previous(
    cfg: SimulateParams, plan: ExposurePlan, fluence: np.ndarray, rng: np.random.Generator
) -> PreviousImage:
    """The previous exposure as a pipeline delivers it, from its true fluence.

    Poisson noise on the fluence, cosmic rays at the previous exposure's EXPTIME and
    the dark's rate, read noise; pixels whose charge reached full well are capped
    there (or NaN when the plan says so) and flagged with the SATUR bit of the DQ
    layer; the pipeline's cosmic-ray detection (:func:`flagged_hits`) sets the
    COSMIC bit on a share of the hits. Reference pixels of a 2048 frame hold
    read noise only.
    """
    exposure = plan.previous
    cosmic, _ = cosmic_rays(
        SHAPE, exposure.exptime, plan.cosmic_rate_factor, cfg.cosmic_rays, cfg.detector, rng
    )
    lit = fluence > 0
    collected = cosmic.copy()
    collected[lit] += rng.poisson(fluence[lit])
    saturated = collected >= cfg.detector.full_well
    full = (SHAPE[0] + 2 * REFERENCE_BORDER, SHAPE[1] + 2 * REFERENCE_BORDER)
    science = rng.standard_normal(full, dtype=np.float32) * np.float32(plan.readout.read_noise)
    inner = (
        slice(REFERENCE_BORDER, REFERENCE_BORDER + SHAPE[0]),
        slice(REFERENCE_BORDER, REFERENCE_BORDER + SHAPE[1]),
    )
    science[inner] += collected
    science[inner][saturated] = np.nan if plan.nan_saturated else cfg.detector.full_well
    dq = np.zeros(full, dtype=np.uint32)
    dq[inner][saturated] = 1 << SATUR_BIT
    flagged = flagged_hits(cosmic, plan.cosmic_flagged, cfg.previous.cosmic_flag_min, rng)
    dq[inner][flagged] |= 1 << COSMIC_BIT
    if cfg.frame == SHAPE[0]:
        science, dq = science[inner], dq[inner]
    return PreviousImage(science=np.ascontiguousarray(science), dq=np.ascontiguousarray(dq))


def flagged_hits(cosmic: np.ndarray, share: float, charge_min: float, rng: np.random.Generator) -> np.ndarray:
    """The pixels a pipeline flags COSMIC: a ``share`` of the hits, drawn hit by hit.

    A hit is an 8-connected group of pixels that received at least ``charge_min``
    e- of cosmic-ray charge; a flagged hit has all of them flagged, a missed one none.
    """
    hits, n_hits = ndimage.label(cosmic >= charge_min, structure=np.ones((3, 3), bool))
    kept = rng.random(n_hits + 1) < share
    kept[0] = False
    return kept[hits]


def with_nan(science: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Set a random ``fraction`` of the active pixels of a frame to NaN (in place)."""
    if fraction > 0:
        border = (science.shape[0] - SHAPE[0]) // 2
        active = science[border : border + SHAPE[0], border : border + SHAPE[1]]
        active[rng.random(SHAPE) < fraction] = np.nan
    return science


def simulate_detector(cfg: SimulateParams, plan: ExposurePlan, detector: str) -> DetectorLayers:
    """Simulate one detector of a slew dark and the previous exposure that it follows."""
    det = int(detector)
    well, exptime = cfg.detector.full_well, plan.exptime
    orientation = draw_orientation(cfg, plan, det)
    fluence = exposure_fluence(
        cfg, plan.previous, orientation, generator(cfg.seed, STREAM["sky"], plan.index, det)
    )
    law, amplitude = draw_law(cfg.persistence, generator(cfg.seed, STREAM["amplitude"], plan.index, det))
    pers = law_signal(fluence, well, plan.previous.tsince, exptime, law)
    pers += history_persistence(cfg, plan, det, orientation, law)
    traps, scale = trap_factor(SHAPE, cfg.persistence, generator(cfg.seed, STREAM["traps"], det))
    pers = (pers * traps * np.float32(amplitude)).astype(np.float32)
    hot = hot_pixels(SHAPE, plan.hot_fraction, cfg.hot_pixels, generator(cfg.seed, STREAM["hot"], det))
    dark_rng = generator(cfg.seed, STREAM["dark"], plan.index, det)
    collected = poisson_charge(cfg.detector.dark_current * exptime, hot.rate * exptime + pers, dark_rng)
    cosmic_rng = generator(cfg.seed, STREAM["cosmic"], plan.index, det)
    cosmic, n_hits = cosmic_rays(
        SHAPE, exptime, plan.cosmic_rate_factor, cfg.cosmic_rays, cfg.detector, cosmic_rng
    )
    snow = snowballs(SHAPE, exptime, cfg.cosmic_rays, cosmic_rng)
    readout_rng = generator(cfg.seed, STREAM["readout"], plan.index, det)
    science = readout(collected + cosmic + snow, cfg.detector, plan.readout, cfg.frame, readout_rng)
    science = with_nan(science, cfg.nan_fraction, readout_rng)
    previous = observe_previous(cfg, plan, fluence, generator(cfg.seed, STREAM["previous"], plan.index, det))
    return DetectorLayers(
        science=science,
        previous=previous,
        fluence=fluence,
        persistence=pers,
        cosmic=cosmic,
        hot=hot.mask,
        snow=snow,
        n_cosmic_hits=n_hits,
        orientation=orientation,
        persistence_scale=scale,
        amplitude_factor=amplitude,
        law=law.law,
        law_x0=law.x0,
        law_dx=law.dx,
    )


def _science_hdu(
    science: np.ndarray, detector: str, cfg: SimulateParams, plan: ExposurePlan
) -> fits.ImageHDU:
    """The ``DETxy.SCI`` extension in the configured unit."""
    header = fits.Header()
    header["DET_ID"] = detector
    header["BUNIT"] = cfg.bunit
    if cfg.bunit == "electron/s":
        science = science / np.float32(plan.exptime)
    elif cfg.bunit == "adu":
        science = science / np.float32(cfg.detector.gain)
        header["GAIN"] = (cfg.detector.gain, "e-/ADU")
    return fits.ImageHDU(science.astype(np.float32), header=header, name=f"DET{detector}.SCI")


def _primary_headers(cfg: SimulateParams, plan: ExposurePlan) -> tuple[fits.Header, fits.Header, fits.Header]:
    """Primary headers of the slew dark, of its previous exposure and of the truth file.

    Every value drawn for the exposure is recorded (``SIM*``); the history, which no
    file but the truth holds, is described in the truth header only.
    """
    previous = plan.previous
    dark = fits.Header()
    dark["TELESCOP"] = "EUCLID"
    dark["INSTRUME"] = "NISP"
    dark["OBS_ID"] = plan.stem
    dark["DATE-OBS"] = plan.date_obs
    dark["EXPTIME"] = (plan.exptime, "s")
    dark["PREVFILE"] = f"{plan.stem}.prev.fits"
    dark["PREVGWA"] = previous.kind
    dark["PREVTILT"] = (previous.tilt, "deg")
    dark["TSINCE"] = (previous.tsince, "s, end of PREVFILE to start of this exposure")
    dark["SIMSEED"] = (cfg.seed, "slewdark simulator seed")
    dark["SDVER"] = (__version__, "slewdark version")
    dark["SIMPFREE"] = (plan.persistence_free, "persistence-free dark (long TSINCE, no history)")
    dark["SIMCRF"] = (plan.cosmic_rate_factor, "cosmic-ray rate factor")
    dark["SIMHOTF"] = (plan.hot_fraction, "hot-pixel fraction")
    dark["SIMGLOW"] = (plan.readout.amp_glow, "e-, amplifier glow at the corners")
    dark["SIMCHOFF"] = (plan.readout.channel_offset_sigma, "e-, sigma of channel offsets")
    dark["SIMROWN"] = (plan.readout.row_noise_sigma, "e-, sigma of row noise")
    dark["SIMRDN"] = (plan.readout.read_noise, "e-, read noise")
    dark["SIMNANF"] = (cfg.nan_fraction, "share of pixels set to NaN")
    dark["SIMFRAME"] = (cfg.frame, "written frame side, px")
    prev = fits.Header()
    prev["TELESCOP"] = "EUCLID"
    prev["INSTRUME"] = "NISP"
    prev["OBS_ID"] = f"{plan.stem}.prev"
    prev["GWA"] = (previous.kind if is_spectroscopic(previous.kind) else "OPEN", "grism wheel")
    prev["FILTER"] = (previous.kind if not is_spectroscopic(previous.kind) else "OPEN", "filter wheel")
    prev["TILT"] = (previous.tilt, "deg")
    prev["EXPTIME"] = (previous.exptime, "s")
    prev["HIERARCH MSK_FLAG_SATUR"] = (SATUR_BIT, "DQ bit of saturated pixels")
    prev["HIERARCH MSK_FLAG_COSMIC"] = (COSMIC_BIT, "DQ bit of cosmic-ray hits")
    prev["SIMCRFLG"] = (plan.cosmic_flagged, "share of cosmic-ray hits flagged COSMIC")
    prev["SIMRICH"] = (previous.richness, "sky richness factor on n_sources")
    prev["SIMNANS"] = (plan.nan_saturated, "saturated pixels are NaN, not capped")
    truth = fits.Header({"OBS_ID": plan.stem})
    truth["NHIST"] = (len(plan.history), "earlier exposures adding persistence")
    for k, earlier in enumerate(plan.history, start=1):
        truth[f"HIST{k}GWA"] = (earlier.kind, f"history exposure {k}: grism/filter")
        truth[f"HIST{k}TLT"] = (earlier.tilt, "deg")
        truth[f"HIST{k}RCH"] = (earlier.richness, "sky richness factor")
        truth[f"HIST{k}TSI"] = (earlier.tsince, "s, its end to the start of the dark")
    return dark, prev, truth


def _law_cards(header: fits.Header, layers: DetectorLayers) -> None:
    """The persistence law one detector's persistence was drawn with (slew dark and truth headers)."""
    header["SIMPLAW"] = (layers.law, "persistence law: fermi (lab fit) | traps")
    header["SIMPSCAL"] = (layers.persistence_scale, "detector persistence amplitude scale")
    header["SIMPAMP"] = (layers.amplitude_factor, "factor on the law's amplitude, this exposure")
    header["SIMPX0"] = (layers.law_x0, "e-, the law's Fermi step centre, this exposure")
    header["SIMPDX"] = (layers.law_dx, "e-, the law's Fermi step width, this exposure")


def _detector_hdus(
    cfg: SimulateParams, plan: ExposurePlan, layers: DetectorLayers, detector: str
) -> tuple[list[fits.ImageHDU], list[fits.ImageHDU], list[fits.ImageHDU]]:
    """One detector's extensions of the slew dark, the previous exposure and the truth file."""
    science = _science_hdu(layers.science, detector, cfg, plan)
    science.header["SIMORIEN"] = (layers.orientation, "sky transform 0..7 (rot90 k; 4..7 transposed)")
    _law_cards(science.header, layers)
    previous = fits.ImageHDU(layers.previous.science, name=f"DET{detector}.SCI")
    previous.header["DET_ID"] = detector
    previous.header["BUNIT"] = "electron"
    previous.header["SIMORIEN"] = (layers.orientation, "sky transform 0..7 (rot90 k; 4..7 transposed)")
    dq = fits.ImageHDU(layers.previous.dq, name=f"DET{detector}.DQ")
    dq.header["HIERARCH MSK_FLAG_SATUR"] = (SATUR_BIT, "DQ bit of saturated pixels")
    dq.header["HIERARCH MSK_FLAG_COSMIC"] = (COSMIC_BIT, "DQ bit of cosmic-ray hits")
    threshold = cfg.cosmic_rays.truth_threshold
    pers = fits.ImageHDU(layers.persistence, name=f"DET{detector}.PERS")
    pers.header["BUNIT"] = "electron"
    pers.header["SIMORIEN"] = (layers.orientation, "sky transform 0..7")
    _law_cards(pers.header, layers)
    cosmic = fits.ImageHDU((layers.cosmic > threshold).astype(np.uint8), name=f"DET{detector}.CR")
    cosmic.header["NHITS"] = (layers.n_cosmic_hits, "cosmic-ray hits simulated")
    truth = [
        pers,
        cosmic,
        fits.ImageHDU(layers.hot.astype(np.uint8), name=f"DET{detector}.HOT"),
        fits.ImageHDU((layers.snow > threshold).astype(np.uint8), name=f"DET{detector}.SNOW"),
    ]
    return [science], [previous, dq], truth


def simulate_exposure(cfg: SimulateParams, index: int, out: Path, truth_dir: Path | None) -> Path:
    """Simulate and write one slew dark with its ``.prev.fits`` and ``.truth.fits``.

    The three files are written together, one detector at a time, so memory holds
    a single detector whatever the number of detectors. Each goes to a temporary
    file that is renamed into place only when every detector is written; the slew
    dark is renamed last, so it never appears without its companions.

    Parameters
    ----------
    cfg
        The data set's simulation.
    index
        Exposure number in the data set.
    out
        Folder of the slew dark and its ``.prev.fits``.
    truth_dir
        Folder of the ``.truth.fits``; None: beside the slew dark.

    Returns
    -------
    Path
        The slew-dark file.
    """
    plan = plan_exposure(cfg, index)
    path = out / f"{plan.stem}.fits"
    files = exposure_files(path, truth_dir)
    targets = tuple(zip(files, _primary_headers(cfg, plan), strict=True))
    with contextlib.ExitStack() as stack:
        appends = [stack.enter_context(fits_writer(target, header)) for target, header in targets]
        for detector in cfg.detectors:
            layers = simulate_detector(cfg, plan, detector)
            for append, hdus in zip(appends, _detector_hdus(cfg, plan, layers, detector), strict=True):
                for hdu in hdus:
                    append(hdu)
            del layers
    log.info(
        "%s: previous %s tilt %+.0f, TSINCE %.0f s, %d earlier exposures, %d detectors",
        plan.stem,
        plan.previous.kind,
        plan.previous.tilt,
        plan.previous.tsince,
        len(plan.history),
        len(cfg.detectors),
    )
    return path


def simulate_dataset(cfg: SimulateParams, workers: int = 1) -> list[Path]:
    """Simulate ``cfg.n_exposures`` slew darks into ``cfg.out``, truth into ``cfg.truth_out``.

    Files of a previous run that this one does not write again are removed, so each
    folder holds exactly this data set (each is a DVC output).

    Parameters
    ----------
    cfg
        The data set's simulation.
    workers
        Exposures made side by side on local Dask workers (:mod:`slewdark.ops.parallel`);
        the files are the same whatever the number.

    Returns
    -------
    list of Path
        The slew-dark files, in order.
    """
    return simulate_datasets([cfg], workers)[0]


def simulate_datasets(cfgs: Sequence[SimulateParams], workers: int = 1) -> list[list[Path]]:
    """Simulate several data sets as :func:`simulate_dataset`, their exposures on one set of workers.

    Returns
    -------
    list of list of Path
        Per data set, its slew-dark files in order.
    """
    for cfg in cfgs:
        for folder in _folders(cfg):
            folder.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, index) for cfg in cfgs for index in range(cfg.n_exposures)]
    paths = iter(map_ordered(_simulate_job, jobs, workers, desc="simulate", unit="exposure"))
    written = [[next(paths) for _ in range(cfg.n_exposures)] for cfg in cfgs]
    for cfg, files in zip(cfgs, written, strict=True):
        _remove_stale(cfg, files)
    return written


def _truth_dir(cfg: SimulateParams) -> Path | None:
    """Folder of the truth files; None: beside the slew darks."""
    return None if cfg.truth_out is None else Path(cfg.truth_out)


def _folders(cfg: SimulateParams) -> set[Path]:
    """The folders a data set writes into."""
    truth_dir = _truth_dir(cfg)
    return {Path(cfg.out)} if truth_dir is None else {Path(cfg.out), truth_dir}


def _simulate_job(job: tuple[SimulateParams, int]) -> Path:
    """One exposure of a data set (a task of :func:`simulate_datasets`)."""
    cfg, index = job
    return simulate_exposure(cfg, index, Path(cfg.out), _truth_dir(cfg))


def _remove_stale(cfg: SimulateParams, written: list[Path]) -> None:
    """Remove the FITS files of the data set's folders that this run did not write."""
    keep = {p.resolve() for path in written for p in exposure_files(path, _truth_dir(cfg))}
    for stale in sorted(f for folder in _folders(cfg) for f in folder.glob("*.fits")):
        if stale.resolve() not in keep:
            stale.unlink()


def exposure_files(path: Path, truth_dir: Path | None) -> tuple[Path, Path, Path]:
    """A slew dark, its ``.prev.fits`` beside it and its ``.truth.fits`` (in ``truth_dir``, or beside)."""
    return path, companion_path(path, "prev"), companion_path(path, "truth", truth_dir)
