"""The ``evaluate`` stage: the UNet and its baselines against the held-out truth, one table.

Every method is scored on the same held-out exposures (``data.heldout``,
simulated with their own seed and never read by training or labelling), on the
same usable pixels, with the same metrics (:mod:`slewdark.core.metrics`):

- ``unet``: the product, read from the ``predict`` stage's
  ``<stem>.mask.fits`` (``DETxy.MASK`` and ``DETxy.PROB``);
- ``physics``: what illumination-history pipelines (HST WFC3, JWST) flag: the
  pixels where the previous exposure (``PREVFILE``) saturated or its
  median-filtered fluence reached ``evaluate.physics.level``, grown by
  ``evaluate.physics.dilation`` px; nothing without a previous exposure;
- ``heuristic_segmentation``: a cluster-free heuristic, the study's
  segmentation (:mod:`slewdark.core.segment`) of every whole held-out detector gated
  on the previous exposure's bright map (not the pseudo-masks the UNet learned
  from, which only segment persistence patches);
- ``unet_heuristic``, ``unet_cluster`` (the ablation): the same network
  with the same settings trained on the cluster-free heuristic's masks of the
  training exposures, and on pseudo-masks of the persistence clusters alone
  (no neighbourhood rule) (:mod:`slewdark.training.variants`): beside ``unet``, they show what the
  clusters add;
- ``unet_truth``: the same network trained on the simulator's truth
  (``unet.truth_model``), the supervised ceiling. It and the ablation's UNets
  are run here in memory with :mod:`slewdark.inference.predict`'s functions and the
  ``predict`` section's batch size and autocast, exactly as ``slewdark predict``
  would run them, so no second predictions folder is needed;
- ``astroscrappy``: ``astroscrappy.detect_cosmics`` (L.A.Cosmic) on electrons,
  to show what a standard artefact tool flags and misses.

Besides precision, recall, F1, IoU and object recall, the table gives the
share of cosmic-ray, hot and *clean* pixels flagged; clean pixels are usable
ones with less than ``evaluate.clean_threshold`` e- of true persistence and no
cosmic ray, hot pixel or snowball, so flagging them is a plain false alarm.

So that results compare with deepCR and Cosmic-CoNN, it also gives the recall
at clean-pixel false-positive rates of 0.5 % and 0.01 % and the precision at
95 % recall (:meth:`~slewdark.core.metrics.MethodScore.fixed_rate_figures`): a
method with a probability is swept over a fine threshold grid; a binary method
has its mask's single operating point, so its recall at a rate is its recall
when its clean-pixel rate is at or below it and null (JSON) when above, and its
precision at 95 % recall is its precision when its recall reaches 95 %, else
null. The JSON also splits object recall by the peak amplitude of each truth
object and by the kind of the previous exposure (:func:`slewdark.simulate.sky.previous_kind`).

Exposures are read one detector at a time, and each method adds that
detector's counts to its :class:`~slewdark.core.metrics.MethodScore`, so memory does
not grow with the data set. Outputs: ``evaluate.metrics`` (JSON, per method),
``evaluate.table`` (Markdown), and in ``evaluate.plots`` the DVC plot tables
``pr/<method>.csv`` and ``recall_amplitude.csv`` (one column per method) with
their PNG figures; all are logged to one MLflow run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from tqdm import tqdm

from slewdark.config import AstroscrappyParams, Params, PhysicsBaselineParams
from slewdark.core.metrics import (
    CLEAN_FPR_TARGETS,
    RECALL_TARGET,
    MethodScore,
    amplitude_label,
    pr_thresholds,
    precision_key,
    tpr_key,
)
from slewdark.errors import ContractError, SlewdarkError
from slewdark.evaluation.truth import truth_file
from slewdark.io.atomic import write_text_atomic
from slewdark.io.fits import (
    DetectorImage,
    ExposureInfo,
    iter_detectors,
    read_detector,
    read_info,
    read_truth,
)
from slewdark.ops.tracking import stage_run
from slewdark.plots.evaluate import plot_pr, plot_recall_amplitude, save_figure
from slewdark.simulate.sky import previous_kind
from slewdark.stages.patches import exposure_files, write_table
from slewdark.training.variants import Labels, outputs_for

log = logging.getLogger(__name__)

STAGE = "evaluate"
PRODUCT = "unet"
METHOD_ORDER = (
    PRODUCT,
    "physics",
    "heuristic_segmentation",
    "unet_heuristic",
    "unet_cluster",
    "unet_truth",
    "astroscrappy",
)
PR_COLUMNS = ("threshold", "precision", "recall")
AMPLITUDE_COLUMNS = ("amplitude", "amplitude_high", "bin", "pixels")
TABLE_COLUMNS = (
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("IoU", "iou"),
    ("object recall", "object_recall"),
    ("CR px flagged", "cosmic_ray_flagged_fraction"),
    ("hot px flagged", "hot_pixel_flagged_fraction"),
    ("clean px flagged", "clean_flagged_fraction"),
    *((f"recall @ {100 * rate:g}% clean FPR", tpr_key(rate)) for rate in CLEAN_FPR_TARGETS),
    (f"precision @ {100 * RECALL_TARGET:g}% recall", precision_key(RECALL_TARGET)),
)
MISSING = "n/a"
"""Table cell of a figure that is None (a rate the method never meets)."""

Prediction = tuple[np.ndarray, np.ndarray | None]
MethodFn = Callable[[Path, ExposureInfo, DetectorImage], Prediction]
"""``(exposure file, its header info, one detector) -> (boolean mask, probability or None)``."""


@dataclass(frozen=True)
class EvaluationResult:
    """What the stage wrote and measured.

    Attributes
    ----------
    metrics
        The content of ``evaluate.metrics``.
    table
        The Markdown comparison table.
    """

    metrics: dict[str, Any]
    table: str


def read_mask_product(path: Path, detector: str) -> Prediction:
    """``DETxy.MASK`` (as bool) and ``DETxy.PROB`` (or None) of a ``<stem>.mask.fits``.

    Raises
    ------
    ContractError
        When the file or the detector's mask is missing or malformed.
    """
    if not path.is_file():
        raise ContractError(path, "no such mask product (run `slewdark predict` on the held-out set)")
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        names = {hdu.name for hdu in hdul}
        mask_name, prob_name = f"DET{detector}.MASK", f"DET{detector}.PROB"
        if mask_name not in names:
            raise ContractError(path, f"no {mask_name} extension")
        mask = np.asarray(hdul[mask_name].data) > 0
        prob = np.asarray(hdul[prob_name].data, dtype=np.float32) if prob_name in names else None
    if prob is not None and prob.shape != mask.shape:
        raise ContractError(path, f"{prob_name} shape {prob.shape} differs from {mask_name} {mask.shape}")
    return mask, prob


def prediction_method(folder: Path, exposures: list[Path]) -> MethodFn:
    """The product: masks written by the ``predict`` stage into ``folder``.

    Raises
    ------
    SlewdarkError
        When the folder or the product of one of ``exposures`` is missing.
    """
    from slewdark.inference.predict import output_path

    if not folder.is_dir():
        raise SlewdarkError(f"{folder}: no predictions folder (run the predict stage first)")
    products = [output_path(path, folder) for path in exposures]
    missing = ", ".join(str(product) for product in products if not product.is_file())
    if missing:
        raise SlewdarkError(f"no mask product {missing} (run `slewdark predict` on the held-out set)")

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return read_mask_product(output_path(path, folder), detector.detector)

    return run


def unet_method(model_path: Path, params: Params, missing_hint: str) -> MethodFn:
    """A UNet checkpoint applied in memory, as ``slewdark predict`` applies it.

    Parameters
    ----------
    model_path
        The checkpoint.
    params
        Validated params (``device``, ``predict`` batch size and autocast).
    missing_hint
        What needs the model and how to make it, for the missing-model message.

    Raises
    ------
    SlewdarkError
        When the checkpoint is missing or unreadable.
    """
    from slewdark.inference.predict import autocast_dtype, load_unet, predict_probability
    from slewdark.inference.unet_input import detector_input, optional_previous_exposure
    from slewdark.training.fit import resolve_device

    if not model_path.is_file():
        raise SlewdarkError(f"{model_path}: model not found; {missing_hint}")
    model = load_unet(model_path, resolve_device(params.device))
    dtype = autocast_dtype(model.device, params.predict.autocast)
    batch_size = params.predict.batch_size

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        prev_path = optional_previous_exposure(info) if model.in_channels == 2 else None
        image = detector_input(path, detector, model.normalisation, model.in_channels, prev_path)
        prob = predict_probability(
            model.inference_network(), image, model.tile, model.overlap, batch_size, dtype
        )
        prob[~detector.usable] = 0.0
        return model.mask(prob, image, detector.usable), prob

    return run


def astroscrappy_mask(image: np.ndarray, usable: np.ndarray, settings: AstroscrappyParams) -> np.ndarray:
    """L.A.Cosmic cosmic-ray mask of a detector in electrons (gain 1).

    Unusable pixels are filled with the median of the usable ones and passed as
    the bad-pixel mask, so they neither trigger nor hide detections.

    Parameters
    ----------
    image
        float32 (H, W) electrons; NaN where there are no data.
    usable
        Pixels with data.
    settings
        ``evaluate.astroscrappy``.

    Returns
    -------
    ndarray
        bool (H, W): pixels flagged as cosmic rays.
    """
    import astroscrappy

    filled = np.where(usable, image, np.float32(np.median(image[usable]))).astype(np.float32)
    mask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(filled),
        inmask=np.ascontiguousarray(~usable),
        sigclip=settings.sigclip,
        sigfrac=settings.sigfrac,
        objlim=settings.objlim,
        niter=settings.niter,
        readnoise=settings.readnoise,
        satlevel=settings.satlevel,
        gain=1.0,
    )
    return np.asarray(mask, dtype=bool) & usable


def astroscrappy_method(settings: AstroscrappyParams) -> MethodFn:
    """The astroscrappy baseline."""

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return astroscrappy_mask(detector.data, detector.usable, settings), None

    return run


def previous_detector(info: ExposureInfo, detector: str) -> DetectorImage | None:
    """The detector of the previous exposure named by PREVFILE; None when unnamed or missing."""
    from slewdark.stages.label import previous_exposure

    prev, _ = previous_exposure(info)
    return None if prev is None else read_detector(prev, detector)


def physics_mask(
    prev: DetectorImage | None, shape: tuple[int, ...], cfg: PhysicsBaselineParams
) -> np.ndarray:
    """The physics baseline's mask of one detector.

    Parameters
    ----------
    prev
        The previous exposure's detector, or None when the exposure names none.
    shape
        Shape of the detector's mask.
    cfg
        ``evaluate.physics``.

    Returns
    -------
    ndarray
        bool: where the previous exposure saturated or its median-filtered fluence
        reached ``cfg.level`` (:func:`slewdark.stages.label.bright_map`), grown by
        ``cfg.dilation`` px; all False without a previous exposure.
    """
    from slewdark.stages.label import bright_map

    if prev is None:
        return np.zeros(shape, bool)
    return bright_map(prev, cfg.level, cfg.dilation, cfg.median)


def physics_method(cfg: PhysicsBaselineParams) -> MethodFn:
    """The physics baseline (:func:`physics_mask`)."""

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return physics_mask(previous_detector(info, detector.detector), detector.data.shape, cfg), None

    return run


def heuristic_segmentation_method(params: Params) -> MethodFn:
    """The cluster-free heuristic (:mod:`slewdark.stages.heuristic_masks`) on each held-out detector."""
    from slewdark.stages.heuristic_masks import HeuristicSegmentation

    heuristic = HeuristicSegmentation(params)

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return heuristic(detector, previous_detector(info, detector.detector)), None

    return run


def variant_method(params: Params, labels: Labels) -> Callable[[], MethodFn]:
    """Builder of the ``unet_<labels>`` baseline: that variant (:mod:`slewdark.training.variants`).

    The network is loaded in memory.
    """
    hint = (
        f"the unet_{labels} baseline needs it (run `slewdark train-unet --labels {labels}`, "
        f"or drop unet_{labels} from evaluate.baselines)"
    )
    return lambda: unet_method(outputs_for(params.unet, labels).model, params, hint)


def build_methods(params: Params, exposures: list[Path]) -> dict[str, MethodFn]:
    """The product and every baseline of ``evaluate.baselines``, in table order.

    Products and models are checked here, before any detector is read, so a
    missing input fails at once with its name.
    """
    cfg = params.evaluate
    builders: dict[str, Callable[[], MethodFn]] = {
        PRODUCT: lambda: prediction_method(Path(params.predict.out), exposures),
        "physics": lambda: physics_method(cfg.physics),
        "heuristic_segmentation": lambda: heuristic_segmentation_method(params),
        **{f"unet_{labels}": variant_method(params, labels) for labels in ("heuristic", "cluster", "truth")},
        "astroscrappy": lambda: astroscrappy_method(cfg.astroscrappy),
    }
    wanted = {PRODUCT, *cfg.baselines}
    return {name: builders[name]() for name in METHOD_ORDER if name in wanted}


def score_exposures(
    exposures: list[Path],
    methods: dict[str, MethodFn],
    params: Params,
    truth_dir: str | Path | None,
    edges: Sequence[float] | None = None,
    desc: str = "evaluate",
) -> tuple[dict[str, MethodScore], dict[str, int]]:
    """Score every method on every detector of the exposures, one detector at a time.

    Parameters
    ----------
    exposures
        Held-out exposure files, each with its ``<stem>.truth.fits`` in ``truth_dir``.
    methods
        Name to method (:func:`build_methods`).
    params
        Validated params (``evaluate`` section).
    truth_dir
        Folder of the truth files (``data.heldout_truth``); None: beside the exposures.
    edges
        Amplitude bin edges (e-); None = ``evaluate.amplitude_bins``.
    desc
        Progress-bar label.

    Returns
    -------
    scores
        Name to accumulated :class:`MethodScore`.
    data
        Exposures, detectors, usable pixels and truth-positive pixels seen.
    """
    cfg = params.evaluate
    edges = np.asarray(cfg.amplitude_bins if edges is None else edges, dtype=np.float64)
    thresholds = pr_thresholds(cfg.pr_thresholds)
    scores = {name: MethodScore(edges, thresholds, cfg.object_hit_fraction) for name in methods}
    infos = [read_info(path) for path in exposures]
    data = {"exposures": len(exposures), "detectors": 0, "usable_pixels": 0, "positive_pixels": 0}
    total = sum(len(info.detectors) for info in infos)
    with tqdm(total=total, desc=desc, unit="det") as progress:
        for path, info in zip(exposures, infos, strict=True):
            truth_path = truth_file(path, truth_dir)
            previous = previous_kind(info.prev_gwa)
            for detector in iter_detectors(path):
                truth = read_truth(truth_path, detector.detector)
                if truth.pers.shape != detector.data.shape:
                    raise ContractError(truth_path, f"DET{detector.detector}: truth shape differs from data")
                valid = detector.usable
                positive = (truth.pers > cfg.truth_threshold) & valid
                clean = valid & (truth.pers < cfg.clean_threshold) & ~(truth.cr | truth.hot | truth.snow)
                for name, method in methods.items():
                    mask, prob = method(path, info, detector)
                    scores[name].add(
                        mask, prob, truth.pers, positive, truth.cr, truth.hot, valid, clean, previous
                    )
                data["detectors"] += 1
                data["usable_pixels"] += int(valid.sum())
                data["positive_pixels"] += int(positive.sum())
                progress.update(1)
    return scores, data


def markdown_table(
    caption: str,
    labels: Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[tuple[Sequence[str], dict[str, Any]]],
) -> str:
    """A captioned Markdown table: label columns, then one 3-decimal column per figure (``n/a`` for None).

    Parameters
    ----------
    caption
        Line above the table.
    labels
        Titles of the label columns (e.g. ``method``).
    columns
        ``(title, key)`` of each figure column.
    rows
        ``(label values, figures by key)`` per row.
    """
    header = "| " + " | ".join([*labels, *(title for title, _ in columns)]) + " |"
    rule = "|" + "---|" * len(labels) + "---:|" * len(columns)
    lines = [
        "| " + " | ".join([*names, *(table_cell(figures[key]) for _, key in columns)]) + " |"
        for names, figures in rows
    ]
    return "\n".join([caption, "", header, rule, *lines]) + "\n"


def table_cell(value: float | None) -> str:
    """A figure with 3 decimals, or :data:`MISSING` for None."""
    return MISSING if value is None else f"{value:.3f}"


def comparison_table(summaries: dict[str, dict[str, Any]], data: dict[str, int]) -> str:
    """The Markdown table of ``evaluate.table``: one row per method."""
    caption = (
        f"Held-out set: {data['exposures']} exposures, {data['detectors']} detectors, "
        f"{data['positive_pixels']} persistence pixels among {data['usable_pixels']} usable pixels."
    )
    rows = (([name], summary) for name, summary in summaries.items())
    return markdown_table(caption, ["method"], TABLE_COLUMNS, rows)


def pr_tables(scores: dict[str, MethodScore]) -> dict[str, list[dict[str, object]]]:
    """Per method, the rows of ``pr/<method>.csv``: thresholds where it flags at least one pixel.

    One file per method, so that ``dvc plots`` draws one curve per method.
    """
    tables: dict[str, list[dict[str, object]]] = {}
    for name, score in scores.items():
        precision, recall, predicted = score.pr()
        tables[name] = [
            {"threshold": f"{threshold:.4f}", "precision": f"{p:.6f}", "recall": f"{r:.6f}"}
            for threshold, p, r, n in zip(score.thresholds, precision, recall, predicted, strict=True)
            if n > 0
        ]
    return tables


def amplitude_rows(scores: dict[str, MethodScore]) -> list[dict[str, object]]:
    """Rows of ``recall_amplitude.csv``: per truth-amplitude bin, its pixels and each method's recall."""
    first = next(iter(scores.values()))
    edges = first.edges
    rows: list[dict[str, object]] = [
        {
            "amplitude": f"{edges[i]:g}",
            "amplitude_high": f"{edges[i + 1]:g}",
            "bin": amplitude_label(edges[i], edges[i + 1]),
            "pixels": int(first.amplitude_total[i]),
        }
        for i in range(len(edges) - 1)
    ]
    for name, score in scores.items():
        for row, recall in zip(rows, score.amplitude_recall(), strict=True):
            row[name] = f"{recall:.6f}"
    return rows


def mlflow_metrics(summaries: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The float figures of every method, named ``<method>.<key>`` or ``<method>.<key>.<bin>``.

    Figures per bin or kind (``recall_by_amplitude``, ``object_recall_by_previous``...)
    are flattened, with ``>=`` written ``ge`` (not allowed in MLflow names);
    counts and None (a rate never met) are left out.
    """
    flat: dict[str, float] = {}
    for name, summary in summaries.items():
        for key, value in summary.items():
            figures = value if isinstance(value, dict) else {"": value}
            for part, figure in figures.items():
                if isinstance(figure, float):
                    flat[".".join(filter(None, (name, key, part))).replace(">=", "ge")] = figure
    return flat


def run_evaluate(params: Params) -> EvaluationResult:
    """Run the ``evaluate`` stage.

    Parameters
    ----------
    params
        Validated params (sections ``evaluate``, ``unet.truth_model``,
        ``predict`` batch size and autocast, ``device``, ``tracking``).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    SlewdarkError
        When the held-out set, a prediction, a truth file or a model is missing.
    """
    cfg = params.evaluate
    exposures = exposure_files(params.data.heldout)
    if not exposures:
        raise SlewdarkError(
            f"{params.data.heldout}: no held-out exposure (run `slewdark simulate --set heldout`)"
        )
    methods = build_methods(params, exposures)
    scores, data = score_exposures(exposures, methods, params, params.data.heldout_truth)
    summaries = {name: score.summary() for name, score in scores.items()}
    metrics = {"heldout": data, "truth_threshold": cfg.truth_threshold, "methods": summaries}
    table = comparison_table(summaries, data)

    plots = Path(cfg.plots)
    write_text_atomic(cfg.metrics, json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(cfg.table, table)
    pr_files = {name: plots / "pr" / f"{name}.csv" for name in scores}
    for name, rows in pr_tables(scores).items():
        write_table(pr_files[name], rows, PR_COLUMNS)
    amplitude_file = plots / "recall_amplitude.csv"
    write_table(amplitude_file, amplitude_rows(scores), (*AMPLITUDE_COLUMNS, *scores))
    curves = {name: score.pr()[:2] for name, score in scores.items()}
    labels = [
        amplitude_label(lo, hi)
        for lo, hi in zip(cfg.amplitude_bins[:-1], cfg.amplitude_bins[1:], strict=True)
    ]
    figures = {
        "pr.png": plot_pr(curves, {name: (s["precision"], s["recall"]) for name, s in summaries.items()}),
        "recall_amplitude.png": plot_recall_amplitude(
            labels, {name: score.amplitude_recall() for name, score in scores.items()}
        ),
    }
    for file_name, figure in figures.items():
        save_figure(figure, plots / file_name)

    with stage_run(
        STAGE, params.tracking.uri, params.tracking.experiment, {"evaluate": cfg.model_dump()}
    ) as run:
        run.log_metrics(mlflow_metrics(summaries))
        run.set_tags({"evaluate.methods": ",".join(summaries)})
        for path in (cfg.metrics, cfg.table, amplitude_file):
            run.log_artifact(path, "evaluate")
        for path in pr_files.values():
            run.log_artifact(path, "evaluate/pr")
        for file_name in figures:
            run.log_artifact(plots / file_name, "evaluate")
    log.info("evaluated %s on %d detectors:\n%s", ", ".join(summaries), data["detectors"], table)
    return EvaluationResult(metrics=metrics, table=table)
