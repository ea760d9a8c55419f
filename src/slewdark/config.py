"""Typed, validated view of ``params.yaml``: the one source of every tunable value.

Each section of ``params.yaml`` is a pydantic model that forbids unknown keys, so
a typo fails at start with a message naming the key, rather than being ignored.
Library code receives these objects (or plain values taken from them); it never
reads ``params.yaml`` itself.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slewdark.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")
STRESS_SET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DETECTOR_IDS = tuple(f"{x}{y}" for x in range(1, 5) for y in range(1, 5))
Device = Literal["auto", "cpu", "cuda"]


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _detector_list(value: Any) -> list[str]:
    """Accept ``[11, 12]``, ``["11", "12"]`` or ``"11,12"`` and check each id."""
    items = str(value).split(",") if isinstance(value, str | int) else list(value)
    ids = [str(item).strip() for item in items]
    bad = [d for d in ids if d not in DETECTOR_IDS]
    if bad or not ids:
        raise ValueError(f"detector ids must be among 11..44 (xy with x, y in 1..4), got {bad or ids}")
    return ids


def _ordered_range(value: tuple[float, float]) -> tuple[float, float]:
    """Check a ``[lo, hi]`` range drawn per exposure (equal ends give a fixed value)."""
    if value[1] < value[0]:
        raise ValueError(f"must be a range [lo, hi] with lo <= hi, got {list(value)}")
    return value


PositiveRange = Annotated[
    tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]], AfterValidator(_ordered_range)
]
"""``[lo, hi]`` of positive values, drawn per exposure (log-uniform or uniform)."""
NonNegativeRange = Annotated[
    tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], AfterValidator(_ordered_range)
]
"""``[lo, hi]`` of values >= 0, drawn uniformly per exposure."""
UnitRange = Annotated[
    tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]],
    AfterValidator(_ordered_range),
]
"""``[lo, hi]`` of shares in [0, 1], drawn uniformly per exposure."""


class DetectorSim(Section):
    """H2RG detector and readout model; ranges are drawn per exposure."""

    gain: float = Field(gt=0, description="e-/ADU, used when writing ADU")
    read_noise: PositiveRange = Field(description="e- per pixel, slope-fitted exposure, uniform range")
    dark_current: float = Field(ge=0, description="e-/s per pixel")
    full_well: float = Field(gt=0, description="e-")
    ipc: float = Field(ge=0, le=0.05, description="fraction of charge in each of 4 neighbours")
    n_output_channels: int = Field(ge=1, le=2048, description="readout channels across the 2048 columns")
    channel_offset_sigma: NonNegativeRange = Field(description="e-, per output channel, uniform range")
    row_noise_sigma: NonNegativeRange = Field(description="e-, 1/f-like row noise, uniform range")
    amp_glow: NonNegativeRange = Field(description="e- at the glowing corners, uniform range; 0 disables")
    amp_glow_scale: float = Field(gt=0, description="pixels, e-folding distance of the glow")
    pixel_size: float = Field(gt=0, description="micrometres (18 for the H2RG)")


MAX_HOT_FRACTION = 0.05
"""Largest hot-pixel fraction accepted (the simulator draws candidates for it)."""


class HotPixelSim(Section):
    """Hot pixels: stable per detector and seed family, their share drawn per exposure."""

    fraction: NonNegativeRange = Field(description="share of hot pixels, uniform range (nested sets)")
    rate_min: float = Field(gt=0, description="e-/s, log-uniform lower bound")
    rate_max: float = Field(gt=0, description="e-/s, log-uniform upper bound")
    cluster_fraction: float = Field(ge=0, le=1, description="share of hot pixels in small clusters")

    @field_validator("fraction")
    @classmethod
    def _small_fraction(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[1] > MAX_HOT_FRACTION:
            raise ValueError(f"hot-pixel fractions must be at most {MAX_HOT_FRACTION}, got {list(value)}")
        return value


class CosmicRaySim(Section):
    """Cosmic-ray hits and snowballs."""

    rate: float = Field(ge=0, description="particles per cm^2 per s at L2")
    rate_factor: PositiveRange = Field(description="solar-activity factor on rate, log-uniform range")
    charge_min: float = Field(gt=0, description="e-, lower end of the deposited charge")
    charge_index: float = Field(gt=0, description="power-law index of deposited charge")
    charge_max: float = Field(gt=0, description="e-, upper end of the deposited charge")
    max_track_length: float = Field(ge=1, description="pixels, grazing incidence")
    diffusion_sigma: float = Field(ge=0, description="pixels, charge diffusion")
    thickness: float = Field(gt=0, description="depth of the absorbing layer in pixel pitches")
    truth_threshold: float = Field(gt=0, description="e-: deposited charge that marks a pixel hit in truth")
    snowball_rate: float = Field(ge=0, description="snowballs per detector per 1000 s")
    snowball_radius: tuple[float, float] = Field(description="pixels, uniform range of snowball radii")
    snowball_charge: tuple[float, float] = Field(description="e- per pixel at a snowball's core, range")


class SkySim(Section):
    """The previous science exposure: what persistence remembers."""

    kinds: list[str] = Field(description="previous-exposure kinds, drawn uniformly")
    tilts: list[float] = Field(description="grism tilts in degrees, drawn uniformly")
    spectro_exptime: float = Field(gt=0, description="s")
    photo_exptime: float = Field(gt=0, description="s")
    n_sources: int = Field(ge=0, description="sources per detector at richness 1")
    richness: PositiveRange = Field(description="factor on n_sources per exposure, log-uniform range")
    count_slope: float = Field(gt=0, description="d log N / d mag of the number counts")
    bright_flux: float = Field(gt=0, description="e-/s/px, trace peak of the brightest source (richness 1)")
    trace_length: float = Field(gt=0, description="pixels, red grisms")
    trace_length_blue: float = Field(gt=0, description="pixels, blue grism")
    trace_width: float = Field(gt=0, description="pixels, Gaussian sigma across the trace")
    psf_fwhm: float = Field(gt=0, description="pixels, FWHM of the Gaussian PSF core")
    psf_wing_fraction: float = Field(ge=0, lt=1, description="share of a point source's light in the wing")
    psf_wing_sigma: float = Field(gt=0, description="pixels, Gaussian sigma of the PSF wing")
    photo_peak_factor: float = Field(gt=0, description="point-source peak over the same source's trace peak")
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


class TrapLawSim(Section):
    """A law of another form (``law: traps``): trap families filled by the fluence, emptying exponentially."""

    time_constants: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1, description="s, emission time constant of each trap family"
    )
    weights: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1, description="share of the trapped charge in each family (normalised to sum 1)"
    )
    fill_fluence: float = Field(gt=0, description="e-: traps fill as 1 - exp(-fluence / fill_fluence)")

    @model_validator(mode="after")
    def _one_weight_per_family(self) -> TrapLawSim:
        if len(self.weights) != len(self.time_constants):
            raise ValueError(
                f"weights ({len(self.weights)}) and time_constants ({len(self.time_constants)}) "
                "must list the same trap families"
            )
        return self


class PersistenceSim(Section):
    """Persistence law (Fermi model of Sanchez et al. 2023) and trap-density variation."""

    law: Literal["fermi", "traps"] = Field(
        description="the law the simulator draws from; fermi: romanisim's lab fit | traps: `traps` matched "
        "to it at full well and reference_time. The methods always assume the fermi law"
    )
    traps: TrapLawSim = Field(description="the trap-family law (law: traps)")
    amplitude: float = Field(ge=0, description="A, e-/s at t = reference_time")
    amplitude_factor: PositiveRange = Field(
        description="factor on amplitude per (exposure, detector), log-uniform: the law's NISP uncertainty"
    )
    x0: float = Field(gt=0, description="e-, centre of the Fermi step in fluence")
    dx: float = Field(gt=0, description="e-, width of the Fermi step")
    x0_factor: PositiveRange = Field(
        description="factor on x0 per (exposure, detector), log-uniform: a law shaped unlike the lab fit"
    )
    dx_factor: PositiveRange = Field(description="factor on dx per (exposure, detector), log-uniform")
    alpha: float = Field(ge=0, description="power-law index of the slow growth with fluence")
    gamma: float = Field(gt=0, description="power-law index of the decay t^-gamma")
    reference_time: float = Field(gt=0, description="s, where amplitude is defined (t / reference_time)")
    trap_sigma: float = Field(ge=0, description="sigma of ln(per-pixel trap-density factor), median 1")
    detector_scale_sigma: float = Field(ge=0, description="sigma of ln(per-detector amplitude scale)")


class HistorySim(Section):
    """Earlier exposures before PREVFILE's, whose persistence adds up (truth only)."""

    max_exposures: int = Field(ge=0, le=10, description="0..max_exposures earlier exposures, uniform")
    gap: PositiveRange = Field(description="s from an earlier exposure's end to the next one's start")


class PreviousSim(Section):
    """The previous exposure as a pipeline delivers it (``<stem>.prev.fits``)."""

    nan_saturated_probability: float = Field(
        ge=0, le=1, description="per exposure: saturated pixels NaN instead of capped at full well"
    )
    cosmic_flagged: UnitRange = Field(
        description="per exposure, uniform range: share of cosmic-ray hits flagged COSMIC in its DQ"
    )
    cosmic_flag_min: float = Field(
        ge=0, description="e-: pixels of a flagged hit that received at least this charge carry the flag"
    )


class SimulateParams(Section):
    """One simulated data set (``simulate`` for training, ``heldout`` for testing)."""

    out: str = Field(description="output folder of the exposures and their .prev.fits")
    truth_out: str | None = Field(description="output folder of the .truth.fits; null = beside the exposures")
    seed: int = Field(ge=0)
    n_exposures: int = Field(ge=1)
    detectors: list[str]
    exptime: PositiveRange = Field(description="s, slew-dark exposure time, uniform range")
    tsince: PositiveRange = Field(description="s from the end of the previous exposure, log-uniform range")
    persistence_free_fraction: float = Field(ge=0, le=1, description="share of darks without persistence")
    persistence_free_tsince: PositiveRange = Field(description="s, TSINCE of those darks, log-uniform range")
    orientation: list[int] = Field(description="sky transforms allowed, 0..7 (dihedral group)")
    frame: Literal[2040, 2048] = Field(description="2040: active area; 2048: with reference border")
    nan_fraction: float = Field(ge=0, le=0.5, description="share of slew-dark pixels set to NaN")
    bunit: Literal["electron", "electron/s", "adu"]
    detector: DetectorSim
    hot_pixels: HotPixelSim
    cosmic_rays: CosmicRaySim
    sky: SkySim
    persistence: PersistenceSim
    history: HistorySim
    previous: PreviousSim

    @field_validator("detectors", mode="before")
    @classmethod
    def _check_detectors(cls, value: Any) -> list[str]:
        return _detector_list(value)

    @field_validator("orientation")
    @classmethod
    def _dihedral(cls, value: list[int]) -> list[int]:
        if not value or any(k not in range(8) for k in value):
            raise ValueError(f"orientation must be a non-empty list of integers 0..7, got {value}")
        return value


class DataParams(Section):
    """Which exposure folders the pipeline reads (simulated by default, real NISP data otherwise)."""

    train: str = Field(description="folder of the exposures the pipeline learns from")
    heldout: str = Field(description="folder of the exposures predicted and evaluated")
    train_truth: str | None = Field(
        description="evaluation only: folder of the training set's .truth.fits; null = beside the exposures"
    )
    heldout_truth: str | None = Field(
        description="evaluation only: folder of the held-out set's .truth.fits; null = beside the exposures"
    )


class HeldoutParams(Section):
    """The held-out test set: the physics of ``simulate``, its own seed and size, and named keys replaced."""

    out: str
    truth_out: str | None = Field(description="output folder of the .truth.fits; null = beside the exposures")
    seed: int = Field(ge=0)
    n_exposures: int = Field(ge=1)
    detectors: list[str]
    simulate: dict[str, Any] = Field(
        description="{dotted key under simulate: value} replaced for the held-out set and the stress sets"
    )

    @field_validator("detectors", mode="before")
    @classmethod
    def _check_detectors(cls, value: Any) -> list[str]:
        return _detector_list(value)


class TrackingParams(Section):
    """Where MLflow records runs; ``MLFLOW_TRACKING_URI`` overrides ``uri``."""

    uri: str
    experiment: str
    registered_model: str


class UmapParams(Section):
    """UMAP of the latent vectors (``cluster`` stage)."""

    n_neighbors: int = Field(ge=2, description="local neighbourhood size UMAP preserves")
    min_dist: float = Field(ge=0, le=1, description="minimum distance of embedded points; 0 packs clusters")
    metric: str = Field(description="distance in the latent space: euclidean, cosine, manhattan, ...")
    n_components: int = Field(ge=2, le=64, description="dimension of the clustering space")
    transform_chunk: int = Field(ge=1, description="latent vectors transformed at a time (memory bound)")


class CountRange(Section):
    """Inclusive range of cluster counts to try."""

    min: int = Field(ge=2)
    max: int = Field(ge=2)
    step: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CountRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self

    def counts(self) -> range:
        """The counts as a range."""
        return range(self.min, self.max + 1, self.step)


class ClusterPlotParams(Section):
    """Pictures of the ``cluster`` stage."""

    out: str = Field(description="output folder of the figures and plot tables")
    exposure: str | None = Field(description="stem of the exposure mapped per detector; null = first one")
    highlight_cluster: int | None = Field(
        ge=0, description="cluster outlined on the maps; null = the largest"
    )
    gallery_clusters: int = Field(ge=1, description="clusters shown in the gallery (largest first)")
    gallery_samples: int = Field(ge=1, description="patches shown per cluster")
    saliency_samples: int = Field(ge=0, description="patches with a saliency map; 0 skips saliency")
    saliency_unit: int | None = Field(ge=0, description="latent unit explained; null = the latent norm")
    scatter_max_points: int = Field(ge=100, description="points drawn in the UMAP scatter")


class ClusterParams(Section):
    """Clustering of the latent space (``cluster`` stage)."""

    out: str = Field(description="output folder: assignments, clusters, fitted models")
    metrics: str = Field(description="output JSON of the clustering scores (DVC metrics)")
    mode: Literal["channelwise", "merged"] = Field(description="per horizontal channel, or all together")
    fit_splits: list[Literal["train", "val", "test"]] = Field(min_length=1, description="splits fitted")
    fit_max_patches: int = Field(ge=10, description="per group: seeded subsample fitted")
    n_components: CountRange
    covariance_type: Literal["full", "tied", "diag", "spherical"]
    selection: Literal["bic", "aic", "elbow"] = Field(description="rule choosing the cluster count")
    gmm_n_init: int = Field(ge=1, description="initialisations per mixture fit")
    kmeans: bool = Field(description="also score K-means over the same counts")
    silhouette_max_patches: int = Field(ge=10, description="subsample for the K-means silhouette")
    neighbourhood_threshold: float = Field(gt=0, description="Mahalanobis distance bounding a cluster")
    diversity_max_patches: int = Field(ge=2, description="subsample for pairwise patch distances")
    plots: ClusterPlotParams


class BackgroundParams(Section):
    """The study's Solution 1: background removal on the normalised detector (``patches`` stage)."""

    enabled: bool
    threshold: float = Field(ge=0, le=1, description="absolute level in [0, 1] below which pixels are zeroed")
    mad_factor: float = Field(ge=0, description="keep pixels above median + mad_factor * MAD / 0.6745")
    min_neighbor: int = Field(ge=1, description="connected regions with fewer pixels are removed")


class SplitParams(Section):
    """Train/validation/test split of the patches."""

    mode: Literal["grouped", "random"] = Field(description="grouped: whole exposures per split; random")
    train: float = Field(gt=0, lt=1)
    val: float = Field(ge=0, lt=1)
    test: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitParams:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {self.train + self.val + self.test}")
        return self


class PatchesParams(Section):
    """Detector images to normalised square patches (``patches`` stage)."""

    out: str = Field(description="output folder")
    size: int = Field(ge=4, le=2040, description="patch side in pixels")
    stride: int = Field(ge=1, le=2040, description="step between patches in pixels; = size: no overlap")
    n_channels: int = Field(ge=1, le=2040, description="horizontal bands (channels) per detector")
    background: BackgroundParams
    split: SplitParams


class ScalingParams(Section):
    """Every network input in noise units (:mod:`slewdark.core.scaling`); stored in the UNet checkpoint."""

    background: Literal["none", "channel", "channel_row", "channel_row_block"] = Field(
        description="background terms removed: output-channel, row and 2-D block medians"
    )
    block: int = Field(ge=8, le=2040, description="px: block side of the 2-D background map")
    softening: float = Field(gt=0, description="sigma: asinh squashing turns logarithmic above this")
    low_sigma: float = Field(lt=0, description="sigma below the background mapped to 0")
    high_sigma: float = Field(gt=0, description="sigma above the background mapped to 1")
    source_sigma: float | None = Field(
        gt=0,
        description="sigma: brighter pixels and their margin are left out of a second background "
        "and noise estimate; null: one estimate from every pixel",
    )
    source_grow: int = Field(ge=0, le=16, description="px: margin around those pixels")


class PatchTruthParams(Section):
    """Evaluation-only truth class of each patch (``patch_truth`` stage)."""

    out: str = Field(description="output CSV")
    persistence_threshold: float = Field(gt=0, description="e-: a pixel holds persistence above this signal")
    min_pixels: int = Field(ge=1, description="persistence pixels that make a patch a persistence patch")


class AeParams(Section):
    """Autoencoder and its training (``train_ae`` stage); Optuna searches some of these."""

    arch: Literal["seed", "compact"] = Field(description="seed: the study's network; compact: dense")
    widths: list[int] = Field(min_length=3, max_length=3, description="channels of the 3 convolution levels")
    latent_dim: int = Field(ge=1, le=256, description="dense bottleneck size (compact only)")
    loss: Literal["mse", "mae", "bce"] = Field(description="training loss over usable pixels")
    lr: float = Field(gt=0, description="Adam learning rate")
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1, description="maximum epochs per training")
    patience: int = Field(ge=1, description="early stopping: epochs without validation improvement")
    lr_patience: int = Field(ge=0, description="reduce-LR-on-plateau patience in epochs")
    lr_factor: float = Field(gt=0, lt=1, description="learning-rate multiplier on a plateau")
    min_lr: float = Field(ge=0)
    amp: bool = Field(description="mixed precision: float16 on CUDA, bfloat16 on CPUs with native support")
    max_train_patches: int = Field(ge=1, description="seeded subsample of the train split per epoch")
    max_val_patches: int = Field(ge=1, description="seeded subsample of the val (and test) split")
    checkpoint_dir: str = Field(description="per-training resumable checkpoints (not a DVC output)")
    model: str = Field(description="output model file")
    metrics: str = Field(description="output metrics JSON")
    loss_curve: str = Field(description="output per-epoch loss CSV (DVC plot)")


class OptunaSearchParams(Section):
    """Search space of the Optuna study; one-element lists fix a value."""

    lr: list[float] = Field(min_length=2, max_length=2, description="log-uniform [min, max]")
    batch_size: list[int] = Field(min_length=1)
    widths: list[list[int]] = Field(min_length=1)
    latent_dim: list[int] = Field(min_length=1, description="searched only for ae.arch compact")
    loss: list[Literal["mse", "mae", "bce"]] = Field(min_length=1)


class OptunaParams(Section):
    """Hyper-parameter study of the autoencoder (``train_ae`` stage)."""

    n_trials: int = Field(ge=0, description="0 = train once with the ae values")
    storage: str = Field(description="Optuna storage URL (SQLite: an interrupted study resumes)")
    study: str = Field(description="study name prefix; a fingerprint of data and settings is appended")
    pruner_startup_trials: int = Field(ge=0, description="MedianPruner: trials before pruning starts")
    pruner_warmup_epochs: int = Field(ge=0, description="MedianPruner: epochs before a trial can be pruned")
    search: OptunaSearchParams


class EmbedParams(Section):
    """Latent vectors and reconstruction loss of every patch (``embed`` stage)."""

    out: str = Field(description="output folder")
    batch_size: int = Field(ge=1)
    plot: str = Field(description="output figure of the reconstruction-loss distributions")


class UnetAugmentParams(Section):
    """Augmentations of the UNet training tiles (see :mod:`slewdark.training.unet_data`)."""

    horizontal_flip: bool = Field(description="x mirror: tilt +4 <-> -4")
    vertical_flip: bool = Field(description="y mirror: RGS000-like <-> RGS180-like traces")
    rotate90: bool = Field(description="90-degree turns and transposes (any mounting)")


class UnetInferenceParams(Section):
    """Tiled inference geometry, stored in the checkpoint (``slewdark predict`` reads it from there)."""

    tile: int = Field(ge=32, le=2040, description="tile side in px, a multiple of 2**encoder_depth")
    overlap: int = Field(ge=0, description="minimum overlap of neighbouring tiles and blending ramp, px")


Labels = Literal["pseudo", "truth", "heuristic", "neighbourhood"]
"""What a UNet learns from: the product's pseudo-masks, the truth (the ceiling), the ablation's masks."""


class UnetCalibrateParams(Section):
    """Which trainings choose their decision threshold on their validation exposures."""

    labels: list[Labels] = Field(
        description="label sources whose threshold is the best validation F1 against their own labels"
    )
    grid: int = Field(ge=1, le=999, description="thresholds tried, evenly spaced inside (0, 1)")


class UnetVetoParams(Section):
    """Pixels too bright to be persistence (cosmic rays, snowballs, hot pixels) and what is done with them."""

    sigma: float | None = Field(gt=0, description="noise units above which a pixel is vetoed; null = no veto")
    grow: int = Field(ge=0, le=10, description="px: vetoed pixels grown by this (IPC, charge diffusion)")
    fill: int = Field(
        ge=0, le=20, description="px: half-side of the closing that flags vetoed gaps; 0 = none"
    )
    spare_saturated: int | None = Field(
        ge=0,
        le=10,
        description="px around the previous exposure's saturated pixels never vetoed; null = none",
    )
    spare_predicted: float | None = Field(
        gt=0,
        description="noise sigmas: pixels where the law scaled to the dark (3rd channel) predicts at least "
        "this are never vetoed; null = none",
    )


UnetLoss = Literal["dice_bce", "focal", "bce"]
"""UNet losses (:func:`slewdark.stages.train_unet.weighted_loss`)."""


class UnetOptunaParams(Section):
    """Optional Optuna search of the UNet learning rate and loss (validation F1 against the labels)."""

    n_trials: int = Field(ge=0, description="0 = train once with the unet values")
    lr: list[float] = Field(min_length=2, max_length=2, description="log-uniform [min, max]")
    loss: list[UnetLoss] = Field(min_length=1)


class UnetParams(Section):
    """The segmentation UNet (``train_unet`` stage) and the geometry it is applied with."""

    encoder_name: str = Field(description="smp encoder, or timm with the tu- prefix; never downloaded")
    encoder_depth: int = Field(ge=3, le=5, description="encoder stages; output stride 2**depth")
    encoder_width: int | None = Field(ge=4, description="timm ResNet stem width; null = stock")
    decoder_channels: list[int] = Field(min_length=3, max_length=5, description="deepest first")
    in_channels: Literal[1, 2, 3] = Field(
        description="1: slew dark; 2: and the previous exposure; 3: and the law scaled to the dark (law_fit)"
    )
    prev_full_scale: float = Field(gt=0, description="e-: previous fluence mapped to 1 (log)")
    prev_dropout: float = Field(ge=0, le=1, description="share of tiles without the previous exposure")
    masks: str = Field(description="folder of the pseudo-masks")
    val_fraction: float = Field(gt=0, lt=1, description="share of whole exposures held out for validation")
    tile: int = Field(ge=32, le=2040, description="training tile side in px, a multiple of 2**encoder_depth")
    tiles_per_detector: int = Field(ge=1, description="training tiles cut per detector")
    positive_fraction: float = Field(ge=0, le=1, description="share of tiles centred on labelled pixels")
    augment: UnetAugmentParams
    loss: UnetLoss = Field(description="weighted BCE + soft Dice, weighted focal, or weighted BCE alone")
    focal_gamma: float = Field(ge=0, description="focusing exponent of the focal loss")
    lr: float = Field(gt=0, description="Adam learning rate")
    batch_size: int = Field(ge=1, description="tiles per training step")
    epochs: int = Field(ge=1, description="maximum epochs")
    patience: int = Field(ge=1, description="early stopping: epochs without a lower validation loss")
    lr_patience: int = Field(ge=0, description="reduce-LR-on-plateau patience in epochs")
    lr_factor: float = Field(gt=0, lt=1)
    min_lr: float = Field(ge=0)
    amp: bool = Field(description="float16 autocast on CUDA, bfloat16 on CPUs with native support")
    threshold: float = Field(gt=0, lt=1, description="probability at and above which a pixel is persistence")
    calibrate: UnetCalibrateParams
    veto: UnetVetoParams
    inference: UnetInferenceParams
    optuna: UnetOptunaParams
    checkpoint_dir: str = Field(description="resumable per-training checkpoints (not a DVC output)")
    model: str = Field(description="output checkpoint, pseudo-label model")
    metrics: str = Field(description="output metrics JSON, pseudo-label model")
    loss_curve: str = Field(description="output per-epoch loss CSV, pseudo-label model")
    truth_model: str = Field(description="output checkpoint of the truth-trained ceiling")
    truth_metrics: str = Field(description="output metrics JSON of the ceiling")
    truth_loss_curve: str = Field(description="output loss CSV of the ceiling")

    @model_validator(mode="after")
    def _tiles_fit_the_network(self) -> UnetParams:
        stride = 2**self.encoder_depth
        if len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(f"decoder_channels needs {self.encoder_depth} entries (one per encoder stage)")
        for name, side in (("tile", self.tile), ("inference.tile", self.inference.tile)):
            if side % stride:
                raise ValueError(f"{name} ({side}) must be a multiple of 2**encoder_depth = {stride}")
        if self.inference.overlap >= self.inference.tile:
            raise ValueError("inference.overlap must be smaller than inference.tile")
        return self


class PredictParams(Section):
    """How ``slewdark predict`` runs (only ``autocast`` may change a few borderline pixels)."""

    out: str = Field(description="output folder of <stem>.mask.fits")
    batch_size: int = Field(ge=1, description="tiles per forward pass")
    num_threads: int = Field(ge=0, description="torch CPU threads; 0 = torch's default")
    write_prob: bool = Field(description="write DETxy.PROB beside DETxy.MASK")
    autocast: bool = Field(description="bfloat16 on CPUs with native support, float16 on CUDA")
    gpu_batch_size: int = Field(default=4, ge=1, description="tiles per forward pass on a GPU")


class AstroscrappyParams(Section):
    """Settings of the astroscrappy baseline (``astroscrappy.detect_cosmics``), data in electrons."""

    sigclip: float = Field(gt=0, description="Laplacian-to-noise limit for cosmic-ray detection")
    sigfrac: float = Field(gt=0, description="fractional detection limit for neighbouring pixels")
    objlim: float = Field(gt=0, description="contrast limit between cosmic rays and the underlying object")
    niter: int = Field(ge=1, description="iterations")
    readnoise: float = Field(ge=0, description="e-")
    satlevel: float = Field(gt=0, description="e-: pixels above it are saturated, never cosmic rays")


class PhysicsBaselineParams(Section):
    """The illumination-history baseline: flag where the previous exposure saturated or was bright."""

    level: float = Field(gt=0, description="e-: median-filtered previous-exposure fluence flagged")
    dilation: int = Field(ge=0, description="px: flagged regions grown by this")
    median: int = Field(ge=1, description="px: side of the median filter (cosmic rays); 1 = none")


Baseline = Literal["physics", "law_fit", "heuristic_segmentation", "astroscrappy"]
"""Methods ``evaluate`` scores beside the product: none needs a training of its own."""

Variant = Literal["unet_heuristic", "unet_neighbourhood", "unet_truth"]
"""UNets trained on other labels, which ``evaluate --ablation`` scores beside the product."""


class EvaluateParams(Section):
    """Evaluation against the simulator's truth on the held-out set (``evaluate`` stage)."""

    truth_threshold: float = Field(gt=0, description="e-: true persistence above it")
    amplitude_bins: list[float] = Field(min_length=2, description="e-: edges of the recall-vs-amplitude bins")
    object_hit_fraction: float = Field(gt=0, le=1, description="share of an object flagged")
    pr_thresholds: int = Field(ge=2, description="probability thresholds of the PR curve")
    clean_threshold: float = Field(gt=0, description="e-: clean pixels: less true persistence, no CR/hot")
    baselines: list[Baseline] = Field(description="compared")
    physics: PhysicsBaselineParams
    astroscrappy: AstroscrappyParams
    metrics: str = Field(description="output metrics JSON")
    table: str = Field(description="output comparison table (Markdown)")
    plots: str = Field(description="output folder of pr_curve.csv and recall_vs_amplitude.csv")

    @field_validator("amplitude_bins")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"amplitude_bins must increase, got {value}")
        return value


class LabelFallbackParams(Section):
    """Rule on patch features for clusters without enough patches with a previous exposure."""

    min_signal_fraction: float = Field(gt=0, le=1, description="share of signal pixels: extended structure")
    min_elongation: float = Field(ge=1, description="grism: major/minor axis ratio of a trace")
    max_angle: float = Field(gt=0, le=90, description="deg between the major axis and the dispersion")
    max_peak_ratio: float = Field(gt=1, description="peak over its 8-neighbour mean, above it: sharp")
    max_saturated_fraction: float = Field(ge=0, le=1, description="share of pixels at the stretch top")
    threshold: float = Field(gt=0, le=1, description="share of persistence-like patches of a cluster")


class LabelBrightLaw(Section):
    """The bright map's level taken from the persistence law, per dark (:mod:`slewdark.core.brightmap`)."""

    electrons: float = Field(gt=0, description="e-: persistence in the dark that counts")
    amplitude_factor: float = Field(
        gt=0, description="on simulate.persistence.amplitude: the brightest law the labels allow for"
    )


class LabelParams(Section):
    """Which clusters hold persistence (``label`` stage); truth is never read."""

    out: str = Field(description="output clusters.yaml")
    overrides: str = Field(description="git-tracked human decisions {cluster: {persistence, reason}}")
    bright_level: float = Field(gt=0, description="e-: previous-exposure fluence that leaves persistence")
    bright_law: LabelBrightLaw | None = Field(
        description="null: bright_level everywhere; else each dark's level from the law and its timing"
    )
    bright_dilation: int = Field(ge=0, description="px: bright regions grown by this")
    bright_median: int = Field(ge=1, description="px: side of the median filter before the level; 1 = none")
    smooth_sigma: float = Field(ge=0, description="px: Gaussian smoothing before finding signal pixels")
    signal_sigma: float = Field(ge=0, description="signal pixels: above mean + signal_sigma * std")
    min_signal_pixels: int = Field(ge=1, description="patches with fewer signal pixels do not vote")
    min_prev_patches: int = Field(ge=1, description="voting patches with a previous exposure needed")
    threshold: float = Field(gt=-1, lt=1, description="persistence when the coincidence score reaches it")
    margin: float = Field(ge=0, description="decisions within this of the threshold are not confident")
    fallback: LabelFallbackParams
    gallery: str = Field(description="output folder of the per-cluster PNG gallery")
    gallery_samples: int = Field(ge=1, description="patches drawn per cluster")


class SegmentParams(Section):
    """The study's segmentation of a persistence patch (:mod:`slewdark.core.segment`)."""

    smooth_sigma: float = Field(ge=0, description="px: Gaussian smoothing before the threshold; 0 = none")
    threshold_sigma: float = Field(ge=0, description="std devs above the mean; 0 = the study's mean")
    min_sigma: float = Field(description="noise sigmas: lowest threshold (the input is in noise units)")
    std_window: int = Field(ge=2, description="px: side of the local standard-deviation square")
    std_factor: float = Field(ge=0, description="keep local std >= std_factor * its median")
    min_size: int = Field(ge=1, description="px: smaller 8-connected components are removed")


class PseudomaskWeightParams(Section):
    """Confidence of the pseudo-labels (``DETxy.WEIGHT``) for the UNet loss."""

    min_probability: float = Field(ge=0, le=1, description="GMM posterior of a confident patch")
    uncertain: float = Field(ge=0, le=1, description="weight of patches whose label is not confident")
    outside: float = Field(ge=0, le=1, description="weight outside persistence clusters where bright")


class PseudomaskQualityParams(Section):
    """Evaluation only: how labels and pseudo-masks compare with the simulator's truth."""

    cluster_truth_fraction: float = Field(gt=0, le=1, description="truly persistence: this share of patches")
    metrics_label: str = Field(description="output cluster-level metrics JSON")
    metrics: str = Field(description="output pixel-level metrics JSON")
    metrics_cluster: str = Field(
        description="output JSON of the clustering and reconstruction loss against truth"
    )
    plots: str = Field(description="output folder of the side-by-side pictures and purity.csv")
    sample_detectors: int = Field(ge=0, description="detectors drawn in pictures")


class LawFitParams(Section):
    """The persistence law scaled to each dark (:mod:`slewdark.core.law_fit`)."""

    fluence_median: int = Field(ge=1, description="px: median filter of the previous exposure; 1 = none")
    min_predicted: float = Field(gt=0, description="e-: pixels fitted: the lab law predicts at least this")
    clip_sigma: float = Field(gt=0, description="noise sigmas: pixels further from the fit are left out")
    iterations: int = Field(ge=1, description="clipped least-squares passes")
    min_pixels: int = Field(ge=1, description="fewer pixels to fit: the lab law's scale, 1")
    mask_sigma: float = Field(
        gt=0, description="noise sigmas of prediction flagged when mask_electrons is null"
    )
    mask_electrons: float | None = Field(
        gt=0,
        description="e- of prediction flagged (baseline, labels), the UNet law channel's unit; null: sigmas",
    )
    cosmic_fill: float = Field(
        ge=0, le=10, description="px: Gaussian filling PREVFILE's COSMIC-flagged pixels; 0 = ignored"
    )


class PseudomaskParams(Section):
    """Pseudo-label masks from the persistence clusters (``pseudomask`` stage)."""

    out: str = Field(description="output folder of <stem>.pseudo.fits")
    rule: Literal["cluster", "neighbourhood"] = Field(
        description="persistence patches: those of persistence clusters, or also those in their neighbourhood"
    )
    segment: SegmentParams
    law: Literal["none", "clusters", "everywhere", "only"] = Field(
        description="also label where the law scaled to the dark reaches its mask level: nowhere, in "
        "persistence-cluster patches, in every patch, or label only there (no segmentation)"
    )
    weight: PseudomaskWeightParams
    quality: PseudomaskQualityParams


class AblationParams(Section):
    """What the unsupervised chain adds: UNets trained on other labels, scored beside the product."""

    heuristic_masks: str = Field(description="folder of the cluster-free heuristic masks of data.train")
    neighbourhood_masks: str = Field(description="folder of the neighbourhood-rule pseudo-masks")
    methods: list[Variant] = Field(description="UNet variants scored beside the product")
    metrics: str = Field(description="output metrics JSON")
    table: str = Field(description="output comparison table (Markdown)")
    plots: str = Field(description="output folder of the PR and recall-vs-amplitude tables")


class RobustnessParams(Section):
    """Stress matrix (``simulate_stress``, ``robustness`` stages): the held-out simulation varied per set."""

    out: str = Field(description="output folder, one sub-folder of exposures per set")
    truth_out: str | None = Field(
        description="output folder of the truth, one sub-folder per set; null = beside the exposures"
    )
    seed: int = Field(ge=0, description="seed of every set: new skies, distinct from simulate and heldout")
    n_exposures: int = Field(ge=1, description="exposures per set")
    detectors: list[str]
    reference: str = Field(description="set that every set's F1 difference is taken from")
    strong_sigma: float = Field(gt=0, description="strong persistence: truth >= this x the set's read noise")
    sets: dict[str, dict[str, Any]] = Field(
        min_length=1, description="set name -> {dotted key under simulate: value}; {} = the held-out physics"
    )
    metrics: str = Field(description="output metrics JSON")
    table: str = Field(description="output table (Markdown)")

    @field_validator("detectors", mode="before")
    @classmethod
    def _check_detectors(cls, value: Any) -> list[str]:
        return _detector_list(value)

    @model_validator(mode="after")
    def _sets_are_folders_with_simulate_keys(self) -> RobustnessParams:
        if self.reference not in self.sets:
            raise ValueError(f"reference {self.reference!r} is not among the sets {sorted(self.sets)}")
        for name, keys in self.sets.items():
            if not STRESS_SET_NAME.fullmatch(name):
                raise ValueError(f"set name {name!r} must be a folder name (letters, digits, _ . -)")
            fixed = sorted(set(keys) & {"out", "truth_out", "seed", "n_exposures", "detectors"})
            if fixed:
                raise ValueError(f"set {name!r}: {fixed} are robustness keys, not per-set keys")
        return self


class Params(Section):
    """All of ``params.yaml``."""

    seed: int = Field(ge=0, description="global seed for every stochastic step")
    device: Device
    workers: int = Field(
        ge=0, description="local Dask processes for the simulate and cluster stages; 0 = one per usable core"
    )
    tracking: TrackingParams
    data: DataParams
    simulate: SimulateParams
    heldout: HeldoutParams
    umap: UmapParams
    cluster: ClusterParams
    patches: PatchesParams
    scaling: ScalingParams
    patch_truth: PatchTruthParams
    ae: AeParams
    optuna: OptunaParams
    embed: EmbedParams
    unet: UnetParams
    predict: PredictParams
    evaluate: EvaluateParams
    law_fit: LawFitParams
    label: LabelParams
    pseudomask: PseudomaskParams
    ablation: AblationParams
    robustness: RobustnessParams

    @model_validator(mode="after")
    def _neighbourhood_needs_the_stored_space(self) -> Params:
        if self.pseudomask.rule == "neighbourhood" and self.umap.n_components != 2:
            raise ValueError(
                "pseudomask.rule neighbourhood needs umap.n_components 2: assignments.csv stores "
                "the 2-D clustering space only then"
            )
        return self

    @model_validator(mode="after")
    def _derived_simulations_are_valid(self) -> Params:
        try:
            for name in self.robustness.sets:
                self.stress_simulation(name)
        except ParamsError as error:
            raise ValueError(str(error)) from None
        return self

    def heldout_simulation(self) -> SimulateParams:
        """The held-out set's simulation: ``simulate`` with ``heldout``'s own keys and its replaced keys.

        Raises
        ------
        ParamsError
            Naming every key of ``heldout.simulate`` that is unknown or has a bad value.
        """
        own = self.heldout.model_dump(exclude={"simulate"})
        return _replaced(self.simulate.model_dump(), self.heldout.simulate, own, "heldout.simulate")

    def stress_simulation(self, name: str) -> SimulateParams:
        """Stress set ``name``: the held-out simulation with the set's ``simulate`` keys replaced.

        Raises
        ------
        ParamsError
            Naming the set and every key that is unknown or has a bad value.
        """
        cfg = self.robustness
        own = {
            "out": str(Path(cfg.out) / name),
            "truth_out": None if cfg.truth_out is None else str(Path(cfg.truth_out) / name),
            "seed": cfg.seed,
            "n_exposures": cfg.n_exposures,
            "detectors": cfg.detectors,
        }
        raw = self.heldout_simulation().model_dump()
        return _replaced(raw, cfg.sets[name], own, f"robustness.sets.{name}")


def _replaced(
    raw: dict[str, Any], dotted_values: dict[str, Any], own: dict[str, Any], source: str
) -> SimulateParams:
    """A simulation: ``raw`` with every dotted key replaced, then the set's ``own`` top-level keys.

    Raises
    ------
    ParamsError
        Naming ``source`` and every key that is unknown or has a bad value.
    """
    source = f"{source} (keys of simulate)"
    for dotted, value in dotted_values.items():
        try:
            set_dotted(raw, dotted, value)
        except (AttributeError, TypeError):
            raise ParamsError(f"{source}: {dotted}: not a key of simulate") from None
    raw.update(own)
    try:
        return SimulateParams.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_format_validation_error(source, error)) from None


def _format_validation_error(source: str, error: ValidationError) -> str:
    """One line per bad key: ``source: a.b.c: what is allowed (got value)``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(f"{source}: {message}")
            continue
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
    """Set ``mapping["a"]["b"] = value`` for ``dotted == "a.b"``, creating levels (also over a null one).

    Raises
    ------
    AttributeError, TypeError
        When a level on the way is a value, not a mapping.
    """
    *parents, leaf = dotted.split(".")
    node = mapping
    for key in parents:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[leaf] = value


def params_sha256(params: Params) -> str:
    """SHA-256 of the canonical JSON of ``params``: the PARAMSHA of products."""
    canonical = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
