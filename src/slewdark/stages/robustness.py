"""The stress matrix: the UNet and the physics baselines on the held-out simulation varied one way per set.

Each set of ``robustness.sets`` is the held-out simulation
(:meth:`~slewdark.config.Params.heldout_simulation`) with a few ``simulate``
keys replaced (dotted keys, e.g. ``cosmic_rays.rate_factor: [3.0, 3.0]``) and
its own seed, size and folder (``robustness.seed``, ``n_exposures``,
``detectors``, ``out/<set>``), so the sets share one sky family that neither
training nor the held-out set saw. Every set is validated before anything is
simulated or scored: a bad key stops the command naming the set and the key.

- ``slewdark simulate-stress`` (:func:`slewdark.stages.simulate_stress.run_simulate_stress`)
  simulates every set;
- ``slewdark robustness`` (:func:`run_robustness`) scores, per set, the UNet
  (``unet.model``, run in memory exactly as ``slewdark predict`` runs it, like
  the evaluate stage's ``unet_truth``), the ``physics`` baseline and the
  ``law_fit`` baseline (the lab law scaled to each dark) with the evaluate
  stage's scoring (:func:`slewdark.evaluation.scoring.score_exposures`).

Reported per set and method: F1, precision, recall, recall on the strong
persistence (truth at least ``robustness.strong_sigma`` times the set's read
noise), the share of cosmic-ray pixels and of clean pixels flagged, and the F1
difference from the reference set (``robustness.reference``). A set without
persistence (``persistence_free``) has no positive pixel: its F1 and recall are
0 by convention, and its clean-pixel share is the figure that matters.
Outputs: ``robustness.metrics`` (JSON) and ``robustness.table`` (Markdown),
logged to one MLflow run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from slewdark.config import Params, SimulateParams
from slewdark.core.metrics import MethodScore
from slewdark.errors import SlewdarkError
from slewdark.evaluation.baselines import law_fit_method, physics_method
from slewdark.evaluation.methods import MethodFn, unet_method
from slewdark.evaluation.scoring import markdown_table, score_exposures
from slewdark.evaluation.stress_sets import stress_simulations
from slewdark.io.atomic import write_text_atomic
from slewdark.io.exposures import exposure_files
from slewdark.ops.tracking import stage_run

log = logging.getLogger(__name__)

STAGE = "robustness"
REPORTED = ("f1", "precision", "recall", "cosmic_ray_flagged_fraction", "clean_flagged_fraction")
"""Figures of :meth:`MethodScore.summary` reported per set and method."""
TABLE_COLUMNS = (
    ("F1", "f1"),
    ("F1 - reference", "f1_delta"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("recall strong", "recall_strong"),
    ("CR px flagged", "cosmic_ray_flagged_fraction"),
    ("clean px flagged", "clean_flagged_fraction"),
)


def stress_methods(params: Params) -> dict[str, MethodFn]:
    """The scored methods: the product UNet (``unet.model``) in memory, the physics and law-fit baselines.

    Raises
    ------
    SlewdarkError
        When the model is missing.
    """
    hint = "the robustness stage scores it (run `slewdark train-unet` or `dvc repro train_unet`)"
    return {
        "unet": unet_method(Path(params.unet.model), params, hint),
        "physics": physics_method(params.evaluate.physics),
        "law_fit": law_fit_method(params),
    }


def method_figures(score: MethodScore, strong_level: float) -> dict[str, float]:
    """The reported figures of one method on one set (:data:`REPORTED` and ``recall_strong``)."""
    summary = score.summary()
    figures = {key: float(summary[key]) for key in REPORTED}
    figures["recall_strong"] = score.recall_above(strong_level)
    return figures


def score_set(
    name: str, simulation: SimulateParams, methods: dict[str, MethodFn], params: Params
) -> dict[str, Any]:
    """Score every method on one stress set.

    Returns
    -------
    dict
        ``{data: exposures/detectors/pixels seen, strong_level: e-, methods: {name: figures}}``.

    Raises
    ------
    SlewdarkError
        When the set's folder holds no exposure.
    """
    exposures = exposure_files(simulation.out)
    if not exposures:
        raise SlewdarkError(
            f"{simulation.out}: no exposure of stress set {name} (run `slewdark simulate-stress`)"
        )
    strong_level = params.robustness.strong_sigma * max(simulation.detector.read_noise)
    edges = sorted({*params.evaluate.amplitude_bins, strong_level})
    scores, data = score_exposures(
        exposures, methods, params, simulation.truth_out, edges, desc=f"robustness {name}"
    )
    figures = {method: method_figures(score, strong_level) for method, score in scores.items()}
    return {"data": data, "strong_level": strong_level, "methods": figures}


def add_f1_deltas(sets: dict[str, dict[str, Any]], reference: str) -> None:
    """Add ``f1_delta`` (F1 minus the reference set's F1) to every method of every set, in place."""
    base = sets[reference]["methods"]
    for result in sets.values():
        for method, figures in result["methods"].items():
            figures["f1_delta"] = figures["f1"] - base[method]["f1"]


def robustness_table(sets: dict[str, dict[str, Any]], reference: str, strong_sigma: float) -> str:
    """The Markdown table of ``robustness.table``: one row per set and method."""
    columns = [(title.replace("strong", f">= {strong_sigma:g} sigma"), key) for title, key in TABLE_COLUMNS]
    rows = (
        ([name, method], figures)
        for name, result in sets.items()
        for method, figures in result["methods"].items()
    )
    caption = (
        f"Stress sets: the held-out simulation varied one way per set; F1 differences from {reference!r}; "
        f"strong persistence: truth at least {strong_sigma:g} x read noise. Without true persistence "
        "F1 and recall are 0."
    )
    return markdown_table(caption, ["set", "method"], columns, rows)


def run_robustness(params: Params) -> dict[str, Any]:
    """Run the ``robustness`` stage.

    Parameters
    ----------
    params
        Validated params (``robustness``, the ``evaluate`` scoring keys and
        ``physics``, ``unet.model``, ``predict`` batch size and autocast,
        ``device``, ``tracking``).

    Returns
    -------
    dict
        The content of ``robustness.metrics``.

    Raises
    ------
    ParamsError, SlewdarkError
        On a bad set, a missing set folder or a missing model.
    """
    cfg = params.robustness
    simulations = stress_simulations(params)
    methods = stress_methods(params)
    sets = {name: score_set(name, simulation, methods, params) for name, simulation in simulations.items()}
    add_f1_deltas(sets, cfg.reference)
    metrics = {
        "reference": cfg.reference,
        "strong_sigma": cfg.strong_sigma,
        "truth_threshold": params.evaluate.truth_threshold,
        "sets": sets,
    }
    table = robustness_table(sets, cfg.reference, cfg.strong_sigma)
    write_text_atomic(cfg.metrics, json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(cfg.table, table)
    with stage_run(
        STAGE, params.tracking.uri, params.tracking.experiment, {"robustness": cfg.model_dump()}
    ) as run:
        run.log_metrics(
            {
                f"{name}.{method}.{key}": value
                for name, result in sets.items()
                for method, figures in result["methods"].items()
                for key, value in figures.items()
            }
        )
        run.set_tags({"robustness.sets": ",".join(sets), "robustness.methods": ",".join(methods)})
        for path in (cfg.metrics, cfg.table):
            run.log_artifact(path, STAGE)
    log.info("robustness of %s on %d sets:\n%s", ", ".join(methods), len(sets), table)
    return metrics
