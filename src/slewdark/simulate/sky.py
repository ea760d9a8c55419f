"""The previous science exposure: the fluence map that persistence remembers.

Spectroscopic exposures (grisms RGS000, RGS180, BGS000) leave, per source, a
first-order trace along the dispersion direction rotated by the grism tilt, with a
smooth spectral profile and a Gaussian cross profile, plus a zeroth-order spot
offset against the dispersion. Photometric exposures (Y, J, H) leave point sources.
Source brightness follows power-law number counts, N(>f) proportional to
f ** (-2.5 * count_slope), scaled so that about one source per detector reaches
``bright_flux``: most sources are faint and a few saturate.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import SkySim
from slewdark.simulate.render import blur, line_points, splat

DISPERSION_ANGLE = {"RGS000": 90.0, "RGS180": 270.0, "BGS000": 90.0}
"""Dispersion direction of each grism on the detector, degrees from +x (columns).

RGS000 and RGS180 disperse in opposite directions; the blue grism like RGS000."""
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
SPECTRUM_CENTRE, SPECTRUM_WIDTH = 0.55, 0.28
BRIGHTEST_CLIP = 10.0


def is_spectroscopic(kind: str) -> bool:
    """True for a grism (RGS000, RGS180, BGS000), False for a filter (Y, J, H)."""
    return kind in DISPERSION_ANGLE


def exposure_time(kind: str, cfg: SkySim) -> float:
    """Exposure time of a previous exposure of this kind (s)."""
    return cfg.spectro_exptime if is_spectroscopic(kind) else cfg.photo_exptime


def source_fluxes(n: int, cfg: SkySim, rng: np.random.Generator) -> np.ndarray:
    """Peak fluxes (e-/s/px) drawn from power-law number counts.

    N(>f) = n * (f / f_min) ** -gamma with gamma = 2.5 * count_slope and f_min chosen
    so that N(>bright_flux) = 1; clipped at ten times ``bright_flux``.
    """
    gamma = 2.5 * cfg.count_slope
    f_min = cfg.bright_flux * max(n, 1) ** (-1.0 / gamma)
    flux = f_min * rng.uniform(size=n) ** (-1.0 / gamma)
    return np.minimum(flux, BRIGHTEST_CLIP * cfg.bright_flux)


def spectral_profile(t: np.ndarray) -> np.ndarray:
    """Smooth relative throughput along a first-order trace (peak 1 near its middle)."""
    return np.exp(-0.5 * ((t - SPECTRUM_CENTRE) / SPECTRUM_WIDTH) ** 2)


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
    n = len(flux)
    x, y, owner, t = line_points(x0, y0, np.full(n, angle), np.full(n, length))
    step = length / np.maximum(np.ceil(length / 0.5), 1)
    line_density = flux[owner] * spectral_profile(t) * step * np.sqrt(2 * np.pi) * cfg.trace_width
    traces = blur(splat(shape, x, y, line_density), cfg.trace_width)
    zx = x0 - cfg.zeroth_order_offset * np.cos(angle)
    zy = y0 - cfg.zeroth_order_offset * np.sin(angle)
    return traces + point_sources(shape, zx, zy, cfg.zeroth_order_fraction * flux, cfg.psf_fwhm)


def point_sources(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, peak: np.ndarray, fwhm: float):
    """Gaussian point sources of the given peak rates (e-/s) and FWHM (px)."""
    sigma = fwhm * FWHM_TO_SIGMA
    return blur(splat(shape, x, y, peak * 2 * np.pi * sigma**2), sigma)


def previous_fluence(
    shape: tuple[int, int], kind: str, tilt: float, cfg: SkySim, rng: np.random.Generator
) -> np.ndarray:
    """Fluence map (e-, not clipped at full well) of one detector in the previous exposure.

    Sources fall anywhere on the detector or up to a trace length outside it, so
    traces enter and leave the detector and overlap.
    """
    rows, cols = shape
    margin = cfg.trace_length if is_spectroscopic(kind) else 0.0
    n = rng.poisson(cfg.n_sources * (cols + 2 * margin) * (rows + 2 * margin) / (rows * cols))
    x0 = rng.uniform(-margin, cols + margin, n)
    y0 = rng.uniform(-margin, rows + margin, n)
    flux = source_fluxes(n, cfg, rng)
    if is_spectroscopic(kind):
        rate = trace_rate(shape, x0, y0, flux, kind, tilt, cfg)
    else:
        rate = point_sources(shape, x0, y0, flux, cfg.psf_fwhm)
    return rate * exposure_time(kind, cfg)
