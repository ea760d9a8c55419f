"""The H2RG detector of a slew dark: hot pixels, cosmic rays, snowballs and readout.

Everything is drawn from a numpy Generator, so a seed fixes the result; hot pixels
use a generator of their own per detector and seed family, so they sit on the same
pixels in every exposure of a data set whatever the exposure's hot-pixel fraction.
The readout structure (output channels, row noise, glow) is fixed to the detector's
pixel grid; its levels are drawn per exposure (:class:`ReadoutLevels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from slewdark.config import MAX_HOT_FRACTION, CosmicRaySim, DetectorSim, HotPixelSim
from slewdark.core.instrument import REFERENCE_BORDER
from slewdark.simulate.render import blur, line_points, splat

CDF_BINS = 4096
"""Table size of the inverse Poisson CDF."""
GLOW_FLOOR = 1e-2
"""e-: amplifier glow below this (a thousandth of the read noise) is not computed."""
CLUSTER_NEIGHBOURS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1)])


@dataclass(frozen=True)
class HotPixels:
    """Dark rate of hot pixels (e-/s, 0 elsewhere) and their mask."""

    rate: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class ReadoutLevels:
    """Levels of the readout noise and its correlated structure drawn for one exposure (e-)."""

    read_noise: float
    channel_offset_sigma: float
    row_noise_sigma: float
    amp_glow: float


def hot_pixels(
    shape: tuple[int, int], fraction: float, cfg: HotPixelSim, rng: np.random.Generator
) -> HotPixels:
    """Hot pixels: ``fraction`` of the pixels, log-uniform rates, a share in small clusters.

    The detector's own generator draws one fixed sequence of candidate positions
    (with two cluster neighbours each) for the largest allowed fraction, and a rate
    quantile per pixel. An exposure uses the first ``fraction * pixels`` candidates,
    so a smaller fraction gives a subset of a larger one and hot pixels keep their
    positions and rates between exposures. The first ``cluster_fraction / 3`` of the
    used candidates are cluster seeds, each with two of its neighbours; the others
    are isolated.
    """
    rows, cols = shape
    n_max = round(MAX_HOT_FRACTION * rows * cols)
    where = rng.integers(0, [rows, cols], size=(n_max, 2))
    picks = CLUSTER_NEIGHBOURS[rng.integers(0, len(CLUSTER_NEIGHBOURS), size=(n_max, 2))]
    quantile = rng.random(shape, dtype=np.float32)
    n_hot = round(fraction * rows * cols)
    n_seeds = round(cfg.cluster_fraction * n_hot / 3)
    seeds = where[:n_seeds]
    hot = np.concatenate(
        [where[: n_hot - 2 * n_seeds], seeds + picks[:n_seeds, 0], seeds + picks[:n_seeds, 1]]
    )
    mask = np.zeros(shape, dtype=bool)
    mask[hot[:, 0] % rows, hot[:, 1] % cols] = True
    log_min, log_max = np.log(cfg.rate_min), np.log(cfg.rate_max)
    rate = np.zeros(shape, dtype=np.float32)
    rate[mask] = np.exp(log_min + quantile[mask] * (log_max - log_min))
    return HotPixels(rate=rate, mask=mask)


def inverse_poisson_cdf(mean: float, u: np.ndarray) -> np.ndarray:
    """Exact Poisson counts of a constant ``mean`` from uniforms ``u`` in [0, 1), by inverse CDF.

    A table over ``CDF_BINS`` equal bins of ``u`` answers every bin that holds no
    step of the CDF; only the few uniforms in the other bins are searched.
    """
    k = np.arange(int(mean + 12 * np.sqrt(mean) + 12))
    cdf = np.cumsum(np.exp(k * np.log(max(mean, 1e-300)) - mean - special.gammaln(k + 1)))
    edges = np.arange(CDF_BINS + 1) / CDF_BINS
    at_edges = np.searchsorted(cdf, edges, side="right").astype(np.int16)
    bins = (u * CDF_BINS).astype(np.int32)
    counts = at_edges[bins]
    step = counts != at_edges[bins + 1]
    counts[step] = np.searchsorted(cdf, u[step], side="right")
    return counts


def poisson_charge(constant: float, varying: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts of mean ``constant + varying`` per pixel, as float32.

    Drawn as the sum of two independent Poisson variables, which is exact: the
    constant part (dark current) by inverse CDF on every pixel, the varying part
    (hot pixels, persistence) only where it is non-zero. Several times faster than
    ``rng.poisson`` on every pixel.
    """
    counts = inverse_poisson_cdf(constant, rng.random(varying.shape)).astype(np.float32)
    lit = varying > 0
    counts[lit] += rng.poisson(varying[lit])
    return counts


def expected_cosmic_hits(
    exptime: float, rate_factor: float, cfg: CosmicRaySim, det: DetectorSim, shape: tuple[int, int]
) -> float:
    """Mean number of cosmic-ray hits on a detector in ``exptime`` s at ``rate_factor`` times ``cfg.rate``."""
    area_cm2 = shape[0] * shape[1] * (det.pixel_size * 1e-4) ** 2
    return rate_factor * cfg.rate * area_cm2 * exptime


def power_law(n: int, low: float, high: float, index: float, rng: np.random.Generator) -> np.ndarray:
    """Draws from a pdf proportional to q ** -index on [low, high] (inverse CDF)."""
    u = rng.uniform(size=n)
    if np.isclose(index, 1.0):
        return low * (high / low) ** u
    a = 1.0 - index
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def cosmic_rays(
    shape: tuple[int, int],
    exptime: float,
    rate_factor: float,
    cfg: CosmicRaySim,
    det: DetectorSim,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Charge (e-) deposited by cosmic rays, and the number of hits.

    Isotropic incidence gives track lengths ``thickness * tan(theta)`` up to
    ``max_track_length``; charges follow a power law; diffusion blurs the tracks.
    """
    rows, cols = shape
    n = rng.poisson(expected_cosmic_hits(exptime, rate_factor, cfg, det, shape))
    x0, y0 = rng.uniform(-0.5, cols - 0.5, n), rng.uniform(-0.5, rows - 0.5, n)
    cos_theta = rng.uniform(1e-6, 1.0, n)
    length = np.minimum(cfg.thickness * np.sqrt(1 - cos_theta**2) / cos_theta, cfg.max_track_length)
    phi = rng.uniform(0, 2 * np.pi, n)
    charge = power_law(n, cfg.charge_min, cfg.charge_max, cfg.charge_index, rng)
    x, y, owner, _ = line_points(x0, y0, phi, np.maximum(length, 0.01))
    per_point = charge / np.bincount(owner, minlength=n)
    return blur(splat(shape, x, y, per_point[owner]), cfg.diffusion_sigma), n


def snowballs(shape: tuple[int, int], exptime: float, cfg: CosmicRaySim, rng: np.random.Generator):
    """Charge (e-) of snowballs: rare, round, flat-topped deposits of thousands of e- per pixel."""
    image = np.zeros(shape, dtype=np.float32)
    n = rng.poisson(cfg.snowball_rate * exptime / 1000.0)
    for _ in range(n):
        radius = rng.uniform(*cfg.snowball_radius)
        core = np.exp(rng.uniform(*np.log(cfg.snowball_charge)))
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        half = int(np.ceil(2 * radius))
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, shape[0])
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, shape[1])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        distance = np.hypot(yy - cy, xx - cx) / radius
        image[y0:y1, x0:x1] += core * np.exp(-(distance**4))
    return image


def ipc(image: np.ndarray, coupling: float) -> np.ndarray:
    """Inter-pixel capacitance: ``coupling`` of each pixel's charge seen in each of its 4 neighbours."""
    if coupling == 0:
        return image
    edged = np.pad(image, 1, mode="edge")
    neighbours = edged[:-2, 1:-1] + edged[2:, 1:-1] + edged[1:-1, :-2] + edged[1:-1, 2:]
    return image * (1 - 4 * coupling) + neighbours * coupling


def row_noise(rows: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """1/f-like noise per row (the readout order), scaled to standard deviation ``sigma``."""
    if sigma == 0:
        return np.zeros(rows)
    spectrum = np.fft.rfft(rng.standard_normal(rows))
    frequency = np.fft.rfftfreq(rows)
    spectrum[1:] /= np.sqrt(frequency[1:])
    spectrum[0] = 0
    series = np.fft.irfft(spectrum, n=rows)
    return sigma * series / series.std()


def channel_offsets(cols: int, n_channels: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Offset (e-) of each of ``cols`` columns: one normal draw per output channel."""
    width = max(cols // n_channels, 1)
    channel = np.minimum(np.arange(cols) // width, n_channels - 1)
    return sigma * rng.standard_normal(n_channels)[channel]


def add_glow(image: np.ndarray, amplitude: float, scale: float) -> None:
    """Add amplifier glow (e-) in place: exponential fall-off from the two corners of the first row.

    Computed on the corner squares where it exceeds ``GLOW_FLOOR`` e- only (it is
    negligible beyond), mirrored for the second corner.
    """
    if amplitude <= 0:
        return
    rows, cols = image.shape
    reach = int(np.ceil(scale * np.log(max(amplitude, GLOW_FLOOR) / GLOW_FLOOR)))
    h, w = min(reach, rows), min(reach, cols)
    yy, xx = np.ogrid[:h, :w]
    corner = (amplitude * np.exp(-np.hypot(yy, xx, dtype=np.float32) / np.float32(scale))).astype(image.dtype)
    image[:h, :w] += corner
    image[:h, cols - w :] += corner[:, ::-1]


def readout(
    charge: np.ndarray, cfg: DetectorSim, levels: ReadoutLevels, frame: int, rng: np.random.Generator
) -> np.ndarray:
    """Collected charge to the measured signal: IPC, saturation, glow, read and correlated noise.

    The noise is drawn on the full 2048x2048 frame, fixed to the detector: output
    channels of ``2048 / n_output_channels`` columns with their own offsets, and
    row-correlated noise on the light-sensitive pixels. The ``REFERENCE_BORDER`` reference
    pixels see no light, only read noise and the channel offsets.

    Parameters
    ----------
    charge
        Charge collected in the active area (e-), 2040x2040.
    cfg
        Detector model.
    levels
        The exposure's channel-offset, row-noise and glow levels.
    frame
        2040 returns the active area, 2048 the full frame with the reference border.
    rng
        The (exposure, detector) generator.

    Returns
    -------
    numpy.ndarray
        float32 electrons, ``frame`` x ``frame``.
    """
    rows, cols = charge.shape
    active = np.minimum(ipc(charge, cfg.ipc), cfg.full_well)
    add_glow(active, levels.amp_glow, cfg.amp_glow_scale)
    full = (rows + 2 * REFERENCE_BORDER, cols + 2 * REFERENCE_BORDER)
    signal = rng.standard_normal(full, dtype=np.float32) * np.float32(levels.read_noise)
    signal += channel_offsets(full[1], cfg.n_output_channels, levels.channel_offset_sigma, rng)[None, :]
    inner = (
        slice(REFERENCE_BORDER, REFERENCE_BORDER + rows),
        slice(REFERENCE_BORDER, REFERENCE_BORDER + cols),
    )
    signal[inner] += (
        active
        + row_noise(full[0], levels.row_noise_sigma, rng)[REFERENCE_BORDER : REFERENCE_BORDER + rows, None]
    )
    return (signal if frame == full[0] else signal[inner]).astype(np.float32)
