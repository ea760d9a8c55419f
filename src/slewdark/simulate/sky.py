"""The previous science exposure: the fluence map that persistence remembers.

Spectroscopic exposures (grisms RGS000, RGS180, BGS000) leave, per source, a
first-order trace along the dispersion direction rotated by the grism tilt, with a
smooth spectral profile and a Gaussian cross profile, plus a zeroth-order spot
offset against the dispersion. Photometric exposures (Y, J, H) leave point sources
whose peak is ``photo_peak_factor`` times the same source's trace peak (a filter
band puts hundreds of nm of spectrum on a PSF core, a grism pixel about 1.4 nm).
Source brightness follows power-law number counts, N(>f) proportional to
f ** (-2.5 * count_slope), scaled so that about one source per detector reaches
``bright_flux`` at richness 1: most sources are faint and a few saturate. The
exposure's richness multiplies the source density at every flux, so sparse fields
leave a few faint traces and rich ones many saturated ones.

Everything is drawn in the sky frame of the detector (orientation 0, RGS000
dispersing along +y); :func:`slewdark.simulate.render.orient` turns it into the
detector's pixel frame.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import SkySim
from slewdark.core.instrument import DISPERSION_ANGLE, is_spectroscopic
from slewdark.simulate.render import blur, gaussian_spots, line_points, splat

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
SPECTRUM_CENTRE, SPECTRUM_WIDTH = 0.55, 0.28
BRIGHTEST_CLIP = 10.0
TRACE_STEP = 1.0
"""Pixels between the points of a trace; the blur across it (trace_width) smooths them."""


def exposure_time(kind: str, cfg: SkySim) -> float:
    """Exposure time of a previous exposure of this kind (s)."""
    return cfg.spectro_exptime if is_spectroscopic(kind) else cfg.photo_exptime


def source_fluxes(n: int, cfg: SkySim, rng: np.random.Generator) -> np.ndarray:
    """Peak fluxes (e-/s/px) of ``n`` sources drawn from power-law number counts.

    Per detector area, N(>f) = n_sources * (f / f_min) ** -gamma with
    gamma = 2.5 * count_slope and f_min chosen so that N(>bright_flux) = 1 at
    richness 1; clipped at ten times ``bright_flux``.
    """
    gamma = 2.5 * cfg.count_slope
    f_min = cfg.bright_flux * max(cfg.n_sources, 1) ** (-1.0 / gamma)
    flux = f_min * rng.uniform(size=n) ** (-1.0 / gamma)
    return np.minimum(flux, BRIGHTEST_CLIP * cfg.bright_flux)


def spectral_profile(t: np.ndarray) -> np.ndarray:
    """Smooth relative throughput along a first-order trace (peak 1 near its middle)."""
    return np.exp(-0.5 * ((t - SPECTRUM_CENTRE) / SPECTRUM_WIDTH) ** 2)


def crosses(
    shape: tuple[int, int], x0: np.ndarray, y0: np.ndarray, angle: float, length: float, reach: float
) -> np.ndarray:
    """Whether segments from (x0, y0) pass within ``reach`` pixels of the image (bounding boxes)."""
    x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
    rows, cols = shape
    inside_x = (np.maximum(x0, x1) >= -reach) & (np.minimum(x0, x1) <= cols - 1 + reach)
    inside_y = (np.maximum(y0, y1) >= -reach) & (np.minimum(y0, y1) <= rows - 1 + reach)
    return inside_x & inside_y


def trace_rate(
    shape: tuple[int, int],
    x0: np.ndarray,
    y0: np.ndarray,
    flux: np.ndarray,
    kind: str,
    tilt: float,
    cfg: SkySim,
) -> np.ndarray:
    """Count rate (e-/s) of first-order traces and zeroth orders of sources at (x0, y0).

    The trace starts at the source position and runs along the grism's dispersion
    direction rotated by ``tilt`` degrees; its peak rate is ``flux``.
    """
    angle = np.deg2rad(DISPERSION_ANGLE[kind] + tilt)
    length = cfg.trace_length if kind.startswith("RGS") else cfg.trace_length_blue
    seen = crosses(shape, x0, y0, angle, length, reach=4 * cfg.trace_width + 1)
    n = int(seen.sum())
    x, y, owner, t = line_points(x0[seen], y0[seen], np.full(n, angle), np.full(n, length), TRACE_STEP)
    step = length / np.maximum(np.ceil(length / TRACE_STEP), 1)
    density = flux[seen][owner] * spectral_profile(t) * step * np.sqrt(2 * np.pi) * cfg.trace_width
    traces = blur(splat(shape, x, y, density), cfg.trace_width)
    zx = x0 - cfg.zeroth_order_offset * np.cos(angle)
    zy = y0 - cfg.zeroth_order_offset * np.sin(angle)
    return traces + point_sources(shape, zx, zy, cfg.zeroth_order_fraction * flux, cfg)


def point_sources(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, peak: np.ndarray, cfg: SkySim):
    """Point sources (e-/s): a Gaussian core of FWHM ``psf_fwhm`` and a wide Gaussian wing.

    ``peak`` is the peak of a source whose light were all in the core; the wing
    holds ``psf_wing_fraction`` of it, so bright stars leave extended spots.
    """
    core = cfg.psf_fwhm * FWHM_TO_SIGMA
    image = gaussian_spots(shape, x, y, (1 - cfg.psf_wing_fraction) * peak, core)
    if cfg.psf_wing_fraction > 0:
        wing_peak = cfg.psf_wing_fraction * (core / cfg.psf_wing_sigma) ** 2 * peak
        image += gaussian_spots(shape, x, y, wing_peak, cfg.psf_wing_sigma)
    return image


def previous_fluence(
    shape: tuple[int, int], kind: str, tilt: float, richness: float, cfg: SkySim, rng: np.random.Generator
) -> np.ndarray:
    """Fluence map (e-, not clipped at full well) of one detector in a science exposure, sky frame.

    ``richness * n_sources`` sources per detector area fall anywhere on the detector
    or up to a trace length outside it, so traces enter and leave the detector and
    overlap.
    """
    rows, cols = shape
    margin = cfg.trace_length if is_spectroscopic(kind) else 0.0
    area = (cols + 2 * margin) * (rows + 2 * margin) / (rows * cols)
    n = rng.poisson(richness * cfg.n_sources * area)
    x0 = rng.uniform(-margin, cols + margin, n)
    y0 = rng.uniform(-margin, rows + margin, n)
    flux = source_fluxes(n, cfg, rng)
    if is_spectroscopic(kind):
        rate = trace_rate(shape, x0, y0, flux, kind, tilt, cfg)
    else:
        rate = point_sources(shape, x0, y0, cfg.photo_peak_factor * flux, cfg)
    return rate * exposure_time(kind, cfg)
