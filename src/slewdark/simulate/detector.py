"""The H2RG detector of a slew dark: hot pixels, cosmic rays, snowballs and readout.

Everything is drawn from a numpy Generator, so a seed fixes the result; hot pixels
use a generator of their own per detector and seed family, so they sit on the same
pixels in every exposure of a data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from slewdark.config import CosmicRaySim, DetectorSim, HotPixelSim
from slewdark.simulate.render import blur, line_points, splat

CHANNEL_COLUMNS = 64
BORDER = 4
CLUSTER_NEIGHBOURS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1)])


@dataclass(frozen=True)
class HotPixels:
    """Dark rate of hot pixels (e-/s, 0 elsewhere) and their mask."""

    rate: np.ndarray
    mask: np.ndarray


def hot_pixels(shape: tuple[int, int], cfg: HotPixelSim, rng: np.random.Generator) -> HotPixels:
    """Hot pixels: ``fraction`` of the pixels, log-uniform rates, a share in small clusters.

    A cluster is a seed pixel with two of its neighbours; the remaining hot pixels
    are isolated.
    """
    rows, cols = shape
    n_hot = round(cfg.fraction * rows * cols)
    n_seeds = round(cfg.cluster_fraction * n_hot / 3)
    seeds = rng.integers(0, [rows, cols], size=(n_seeds, 2))
    picks = CLUSTER_NEIGHBOURS[rng.integers(0, len(CLUSTER_NEIGHBOURS), size=(n_seeds, 2))]
    cluster = np.concatenate([seeds, seeds + picks[:, 0], seeds + picks[:, 1]]) % [rows, cols]
    single = rng.integers(0, [rows, cols], size=(n_hot - len(cluster), 2))
    where = np.concatenate([cluster, single])
    mask = np.zeros(shape, dtype=bool)
    mask[where[:, 0], where[:, 1]] = True
    rate = np.zeros(shape, dtype=np.float32)
    rate[mask] = np.exp(rng.uniform(np.log(cfg.rate_min), np.log(cfg.rate_max), int(mask.sum())))
    return HotPixels(rate=rate, mask=mask)


def expected_cosmic_hits(
    exptime: float, cfg: CosmicRaySim, det: DetectorSim, shape: tuple[int, int]
) -> float:
    """Mean number of cosmic-ray hits on a detector in ``exptime`` seconds."""
    area_cm2 = shape[0] * shape[1] * (det.pixel_size * 1e-4) ** 2
    return cfg.rate * area_cm2 * exptime


def power_law(n: int, low: float, high: float, index: float, rng: np.random.Generator) -> np.ndarray:
    """Draws from a pdf proportional to q ** -index on [low, high] (inverse CDF)."""
    u = rng.uniform(size=n)
    if np.isclose(index, 1.0):
        return low * (high / low) ** u
    a = 1.0 - index
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def cosmic_rays(
    shape: tuple[int, int], exptime: float, cfg: CosmicRaySim, det: DetectorSim, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Charge (e-) deposited by cosmic rays, and the number of hits.

    Isotropic incidence gives track lengths ``thickness * tan(theta)`` up to
    ``max_track_length``; charges follow a power law; diffusion blurs the tracks.
    """
    rows, cols = shape
    n = rng.poisson(expected_cosmic_hits(exptime, cfg, det, shape))
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
    image = np.zeros(shape)
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
    kernel = np.array([[0, coupling, 0], [coupling, 1 - 4 * coupling, coupling], [0, coupling, 0]])
    return ndimage.convolve(image, kernel, mode="nearest")


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


def readout(charge: np.ndarray, cfg: DetectorSim, rng: np.random.Generator) -> np.ndarray:
    """Collected charge to the measured signal: IPC, saturation, read and correlated noise, glow.

    Returns float32 electrons.
    """
    rows, cols = charge.shape
    signal = np.minimum(ipc(charge, cfg.ipc), cfg.full_well)
    signal += cfg.read_noise * rng.standard_normal(charge.shape)
    channel_width = (cols + 2 * BORDER) // cfg.n_output_channels
    channel = (np.arange(cols) + BORDER) // max(channel_width, 1)
    offsets = cfg.channel_offset_sigma * rng.standard_normal(int(channel.max()) + 1)
    signal += offsets[channel][None, :]
    signal += row_noise(rows, cfg.row_noise_sigma, rng)[:, None]
    if cfg.amp_glow > 0:
        yy, xx = np.ogrid[:rows, :cols]
        glow = np.exp(-np.hypot(yy, xx) / cfg.amp_glow_scale)
        glow += np.exp(-np.hypot(yy, cols - 1 - xx) / cfg.amp_glow_scale)
        signal += cfg.amp_glow * glow
    return signal.astype(np.float32)
