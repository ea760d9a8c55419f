"""Typed, validated view of ``params.yaml``: the one source of every tunable value.

Each section of ``params.yaml`` is a pydantic model that forbids unknown keys, so
a typo fails at start with a message naming the key, rather than being ignored.
Library code receives these objects (or plain values taken from them); it never
reads ``params.yaml`` itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slewdark.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")
DETECTOR_IDS = tuple(f"{x}{y}" for x in range(1, 5) for y in range(1, 5))
Device = Literal["auto", "cpu", "cuda"]


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _detector_list(value: Any) -> list[str]:
    """Accept ``[11, 12]``, ``["11", "12"]`` or ``"11,12"`` and check each id."""
    items = value.split(",") if isinstance(value, str) else list(value)
    ids = [str(item).strip() for item in items]
    bad = [d for d in ids if d not in DETECTOR_IDS]
    if bad or not ids:
        raise ValueError(f"detector ids must be among 11..44 (xy with x, y in 1..4), got {bad or ids}")
    return ids


class DetectorSim(Section):
    """H2RG detector and readout model."""

    gain: float = Field(gt=0, description="e-/ADU, used when writing ADU")
    read_noise: float = Field(ge=0, description="e- per pixel, slope-fitted exposure")
    dark_current: float = Field(ge=0, description="e-/s per pixel")
    full_well: float = Field(gt=0, description="e-")
    ipc: float = Field(ge=0, le=0.05, description="fraction of charge in each of 4 neighbours")
    n_output_channels: int = Field(ge=1, le=2040)
    channel_offset_sigma: float = Field(ge=0, description="e-, per output channel")
    row_noise_sigma: float = Field(ge=0, description="e-, 1/f-like row-correlated noise")
    amp_glow: float = Field(ge=0, description="e- at the glowing corners; 0 disables")


class HotPixelSim(Section):
    """Hot pixels: stable per detector and seed family."""

    fraction: float = Field(ge=0, le=0.05)
    rate_min: float = Field(gt=0, description="e-/s, log-uniform lower bound")
    rate_max: float = Field(gt=0, description="e-/s, log-uniform upper bound")
    cluster_fraction: float = Field(ge=0, le=1, description="share of hot pixels in small clusters")


class CosmicRaySim(Section):
    """Cosmic-ray hits and snowballs."""

    rate: float = Field(ge=0, description="particles per cm^2 per s at L2")
    charge_min: float = Field(gt=0, description="e-, lower end of the deposited charge")
    charge_index: float = Field(gt=0, description="power-law index of deposited charge")
    charge_max: float = Field(gt=0, description="e-, upper end of the deposited charge")
    max_track_length: float = Field(ge=1, description="pixels, grazing incidence")
    diffusion_sigma: float = Field(ge=0, description="pixels, charge diffusion")
    snowball_rate: float = Field(ge=0, description="snowballs per detector per 1000 s")


class SkySim(Section):
    """The previous science exposure: what persistence remembers."""

    kinds: list[str] = Field(description="previous-exposure kinds, drawn uniformly")
    tilts: list[float] = Field(description="grism tilts in degrees, drawn uniformly")
    spectro_exptime: float = Field(gt=0, description="s")
    photo_exptime: float = Field(gt=0, description="s")
    n_sources: int = Field(ge=0, description="sources per detector")
    count_slope: float = Field(gt=0, description="d log N / d mag of the number counts")
    bright_flux: float = Field(gt=0, description="e-/s/px at the trace peak of the brightest sources")
    trace_length: float = Field(gt=0, description="pixels, red grisms")
    trace_length_blue: float = Field(gt=0, description="pixels, blue grism")
    trace_width: float = Field(gt=0, description="pixels, Gaussian sigma across the trace")
    psf_fwhm: float = Field(gt=0, description="pixels")
    zeroth_order_offset: float = Field(description="pixels from the trace start, against dispersion")
    zeroth_order_fraction: float = Field(ge=0, description="0th-order flux relative to the trace")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        allowed = {"RGS000", "RGS180", "BGS000", "Y", "J", "H"}
        bad = sorted(set(value) - allowed)
        if bad or not value:
            raise ValueError(f"kinds must be a non-empty list from {sorted(allowed)}, got {bad or value}")
        return value

    @field_validator("tilts")
    @classmethod
    def _known_tilts(cls, value: list[float]) -> list[float]:
        if not value or any(t not in (0.0, 4.0, -4.0) for t in value):
            raise ValueError(f"tilts must be a non-empty list from [0, 4, -4], got {value}")
        return value


class PersistenceSim(Section):
    """Fluence- and time-dependent persistence (trap release after illumination)."""

    amplitude: float = Field(ge=0, description="e-/s at reference_time for a full-well pixel")
    onset: float = Field(gt=0, lt=1, description="fluence (fraction of full well) at half amplitude")
    steepness: float = Field(gt=0, description="sharpness of the rise towards full well")
    beyond_well_slope: float = Field(ge=0, description="slow growth per full well beyond saturation")
    decay_index: float = Field(gt=0, description="power-law index of the decay t^-index")
    reference_time: float = Field(gt=0, description="s, where amplitude is defined")


class SimulateParams(Section):
    """One simulated data set (``simulate`` for training, ``heldout`` for testing)."""

    out: str = Field(description="output folder")
    seed: int = Field(ge=0)
    n_exposures: int = Field(ge=1)
    detectors: list[str]
    exptime: float = Field(gt=0, description="s, slew-dark exposure time")
    tsince: list[float] = Field(description="s from the end of the previous exposure, drawn per exposure")
    bunit: Literal["electron", "electron/s", "adu"]
    detector: DetectorSim
    hot_pixels: HotPixelSim
    cosmic_rays: CosmicRaySim
    sky: SkySim
    persistence: PersistenceSim

    @field_validator("detectors", mode="before")
    @classmethod
    def _check_detectors(cls, value: Any) -> list[str]:
        return _detector_list(value)

    @field_validator("tsince")
    @classmethod
    def _positive_tsince(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value):
            raise ValueError(f"tsince must be a non-empty list of positive seconds, got {value}")
        return value


class HeldoutParams(Section):
    """The held-out test set: same physics as ``simulate``, its own seed and size."""

    out: str
    seed: int = Field(ge=0)
    n_exposures: int = Field(ge=1)
    detectors: list[str]

    @field_validator("detectors", mode="before")
    @classmethod
    def _check_detectors(cls, value: Any) -> list[str]:
        return _detector_list(value)


class TrackingParams(Section):
    """Where MLflow records runs; ``MLFLOW_TRACKING_URI`` overrides ``uri``."""

    uri: str
    experiment: str
    registered_model: str


class Params(Section):
    """All of ``params.yaml``."""

    seed: int = Field(ge=0, description="global seed for every stochastic step")
    device: Device
    tracking: TrackingParams
    simulate: SimulateParams
    heldout: HeldoutParams

    def heldout_simulation(self) -> SimulateParams:
        """The held-out set's simulation: ``simulate`` with ``heldout``'s own keys."""
        return self.simulate.model_copy(update=self.heldout.model_dump())


def _format_validation_error(source: str, error: ValidationError) -> str:
    """One line per bad key: ``source: a.b.c: what is allowed (got value)``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the README's parameter list)"
            lines.append(f"{source}: {key}: {message}")
            continue
        lines.append(f"{source}: {key}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping.

    Parameters
    ----------
    raw
        The mapping as read from YAML.
    source
        Name used in error messages.

    Returns
    -------
    Params
        The validated, frozen parameters.

    Raises
    ------
    ParamsError
        Naming every bad key and what it allows.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_format_validation_error(source, error)) from None


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate ``params.yaml``, applying dotted-key ``overrides`` first.

    Parameters
    ----------
    path
        The YAML file.
    overrides
        ``{"simulate.n_exposures": 2, ...}``: values from command-line flags.

    Returns
    -------
    Params
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return parse_params(raw, source=str(path))


def set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``mapping["a"]["b"] = value`` for ``dotted == "a.b"``, creating levels."""
    *parents, leaf = dotted.split(".")
    node = mapping
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def params_sha256(params: Params) -> str:
    """SHA-256 of the canonical JSON of ``params``: the PARAMSHA of products."""
    canonical = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
