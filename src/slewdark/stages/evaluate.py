"""The ``evaluate`` stage: the UNet and its baselines against the held-out truth, one table.

The same code, run as ``slewdark evaluate --ablation`` by the ``evaluate_ablation``
stage, scores the product beside the UNets trained on other labels
(``ablation.methods``) into a table of their own, so the product's evaluation
never waits for three extra trainings (``make repro`` leaves them out).

Every method is scored on the same held-out exposures (``data.heldout``,
simulated with their own seed and never read by training or labelling), on the
same usable pixels, with the same metrics (:mod:`slewdark.core.metrics`):

- ``unet``: the product, read from the ``predict`` stage's
  ``<stem>.mask.fits`` (``DETxy.MASK`` and ``DETxy.PROB``);
- ``physics``: what illumination-history pipelines (HST WFC3, JWST) flag: the
  pixels where the previous exposure (``PREVFILE``) saturated or its
  median-filtered fluence reached ``evaluate.physics.level``, grown by
  ``evaluate.physics.dilation`` px; nothing without a previous exposure;
- ``law_fit``: the lab persistence law scaled to each dark
  (:mod:`slewdark.core.law_fit`): the slope of the dark's electrons on the
  persistence the law predicts from ``PREVFILE``, ``TSINCE`` and ``EXPTIME``,
  flagged where the scaled prediction reaches ``law_fit.mask_electrons``
  (or ``mask_sigma`` noise sigmas);
- ``heuristic_segmentation``: a cluster-free heuristic, the study's
  segmentation (:mod:`slewdark.core.segment`) of every whole held-out detector gated
  on the previous exposure's bright map (not the pseudo-masks the UNet learned
  from, which only segment persistence patches);
- ``astroscrappy``: ``astroscrappy.detect_cosmics`` (L.A.Cosmic) on electrons,
  to show what a standard artefact tool flags and misses;
- with ``--ablation``, ``unet_heuristic``, ``unet_neighbourhood``: the same network
  with the same settings trained on the cluster-free heuristic's masks of the
  training exposures, and on the cluster chain's pseudo-masks (the study's
  neighbourhood rule) (:mod:`slewdark.training.variants`): beside ``unet``,
  they show what the product's labels add;
- with ``--ablation``, ``unet_truth``: the same network trained on the simulator's truth
  (``unet.truth_model``), the supervised ceiling. It and the ablation's UNets
  are run here in memory with :mod:`slewdark.inference.predict`'s functions and the
  ``predict`` section's batch size and autocast, exactly as ``slewdark predict``
  would run them, so no second predictions folder is needed.

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
object and by the kind of the previous exposure (:func:`slewdark.core.instrument.previous_kind`).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from slewdark.config import Baseline, Params, Variant
from slewdark.core.metrics import (
    CLEAN_FPR_TARGETS,
    RECALL_TARGET,
    MethodScore,
    amplitude_label,
    precision_key,
    tpr_key,
)
from slewdark.errors import SlewdarkError
from slewdark.evaluation.baselines import (
    astroscrappy_method,
    heuristic_segmentation_method,
    law_fit_method,
    physics_method,
)
from slewdark.evaluation.methods import MethodFn, prediction_method, unet_method
from slewdark.evaluation.scoring import markdown_table, score_exposures
from slewdark.io.atomic import write_text_atomic
from slewdark.io.exposures import exposure_files
from slewdark.io.tables import write_table
from slewdark.ops.tracking import stage_run
from slewdark.plots.evaluate import plot_pr, plot_recall_amplitude
from slewdark.plots.figures import save_figure
from slewdark.training.variants import ABLATION_LABELS, Labels, outputs_for

log = logging.getLogger(__name__)

STAGE = "evaluate"
ABLATION_STAGE = "evaluate_ablation"
PRODUCT = "unet"
METHOD_ORDER = (PRODUCT, *get_args(Baseline), *get_args(Variant))
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


@dataclass(frozen=True)
class Evaluation:
    """Which methods one run of the stage scores beside the product, and where it writes.

    Attributes
    ----------
    stage
        The MLflow run name: ``evaluate`` or ``evaluate_ablation``.
    methods
        Method names besides ``unet``.
    metrics, table, plots
        The JSON, the Markdown table and the folder of plot tables and figures.
    """

    stage: str
    methods: tuple[str, ...]
    metrics: Path
    table: Path
    plots: Path


def evaluation_for(params: Params, ablation: bool) -> Evaluation:
    """The baselines (``evaluate``) or the ablation's UNets (``ablation``), with their outputs."""
    if ablation:
        variants = params.ablation
        return Evaluation(
            ABLATION_STAGE,
            tuple(variants.methods),
            Path(variants.metrics),
            Path(variants.table),
            Path(variants.plots),
        )
    cfg = params.evaluate
    return Evaluation(STAGE, tuple(cfg.baselines), Path(cfg.metrics), Path(cfg.table), Path(cfg.plots))


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


def variant_method(params: Params, labels: Labels) -> Callable[[], MethodFn]:
    """Builder of the ``unet_<labels>`` baseline: that variant (:mod:`slewdark.training.variants`).

    The network is loaded in memory.
    """
    hint = (
        f"the unet_{labels} baseline needs it (run `slewdark train-unet --labels {labels}`, "
        f"or drop unet_{labels} from evaluate.baselines)"
    )
    return lambda: unet_method(outputs_for(params.unet, labels).model, params, hint)


def build_methods(params: Params, exposures: list[Path], compared: tuple[str, ...]) -> dict[str, MethodFn]:
    """The product and the ``compared`` methods, in table order.

    Products and models are checked here, before any detector is read, so a
    missing input fails at once with its name.
    """
    cfg = params.evaluate
    builders: dict[str, Callable[[], MethodFn]] = {
        PRODUCT: lambda: prediction_method(Path(params.predict.out), exposures),
        "physics": lambda: physics_method(cfg.physics),
        "law_fit": lambda: law_fit_method(params),
        "heuristic_segmentation": lambda: heuristic_segmentation_method(params),
        **{f"unet_{labels}": variant_method(params, labels) for labels in (*ABLATION_LABELS, "truth")},
        "astroscrappy": lambda: astroscrappy_method(cfg.astroscrappy),
    }
    wanted = {PRODUCT, *compared}
    return {name: builders[name]() for name in METHOD_ORDER if name in wanted}


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


def logged_params(params: Params, ablation: bool) -> dict[str, Any]:
    """The sections the MLflow run records: ``evaluate``, and ``ablation`` for the ablation's run."""
    sections = {"evaluate": params.evaluate.model_dump()}
    if ablation:
        sections["ablation"] = params.ablation.model_dump()
    return sections


def run_evaluate(params: Params, ablation: bool = False) -> EvaluationResult:
    """Run the ``evaluate`` stage, or with ``ablation`` the ``evaluate_ablation`` stage.

    Parameters
    ----------
    params
        Validated params (sections ``evaluate``, ``ablation``, ``unet.truth_model``,
        ``predict`` batch size and autocast, ``device``, ``tracking``).
    ablation
        Score the UNets of ``ablation.methods`` beside the product, into
        ``ablation.metrics``, ``ablation.table`` and ``ablation.plots``, instead of
        the baselines of ``evaluate.baselines``.

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
    evaluation = evaluation_for(params, ablation)
    methods = build_methods(params, exposures, evaluation.methods)
    scores, data = score_exposures(exposures, methods, params, params.data.heldout_truth)
    summaries = {name: score.summary() for name, score in scores.items()}
    metrics = {"heldout": data, "truth_threshold": cfg.truth_threshold, "methods": summaries}
    table = comparison_table(summaries, data)

    plots = evaluation.plots
    write_text_atomic(evaluation.metrics, json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(evaluation.table, table)
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
        evaluation.stage, params.tracking.uri, params.tracking.experiment, logged_params(params, ablation)
    ) as run:
        run.log_metrics(mlflow_metrics(summaries))
        run.set_tags({"evaluate.methods": ",".join(summaries)})
        for path in (evaluation.metrics, evaluation.table, amplitude_file):
            run.log_artifact(path, "evaluate")
        for path in pr_files.values():
            run.log_artifact(path, "evaluate/pr")
        for file_name in figures:
            run.log_artifact(plots / file_name, "evaluate")
    log.info("evaluated %s on %d detectors:\n%s", ", ".join(summaries), data["detectors"], table)
    return EvaluationResult(metrics=metrics, table=table)
