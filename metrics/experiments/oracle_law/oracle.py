"""How far a rule that knows everything but each pixel's traps falls on each stress set.

    python metrics/experiments/oracle_law/oracle.py > metrics/experiments/oracle_law/oracle.txt

For every stress set with persistence (``robustness.sets``), the simulator is run again in memory
for the set's exposures and detectors (the same seeds: the same layers as ``data/stress``), and
two oracles are thresholded at the evaluation's truth level (``evaluate.truth_threshold``, 9 e-)
and scored against the truth:

- ``oracle_prevfile``: the set's own persistence law on the true, noise-free, unclipped fluence of
  the previous exposure, times the true amplitude factor and detector scale of the detector;
  what it lacks is the per-pixel trap density and the earlier exposures (history);
- ``oracle_history``: the same with the history's persistence added: only the traps are unknown.

Neither reads the slew dark: with 9 e- of read noise per pixel the dark adds little pixel by
pixel at the 9 e- level, so the drop of these oracles from the nominal set is the share of a
set's F1 drop that no method working from the previous exposures can avoid.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import load_params
from slewdark.core.persistence_law import persistence_signal
from slewdark.evaluation.stress_sets import stress_simulations
from slewdark.simulate.dataset import history_persistence, plan_exposure, simulate_detector


def f1(predicted: np.ndarray, positive: np.ndarray) -> tuple[float, int]:
    """Pixel F1 and the number of positive pixels."""
    tp = int((predicted & positive).sum())
    denominator = int(predicted.sum()) + int(positive.sum())
    return (2 * tp / denominator if denominator else 0.0), int(positive.sum())


def main() -> None:
    params = load_params("params.yaml")
    level = params.evaluate.truth_threshold
    scores: dict[str, dict[str, float]] = {}
    for name, simulation in stress_simulations(params).items():
        if simulation.persistence_free_fraction >= 1.0:
            continue
        stacks: dict[str, list[np.ndarray]] = {"positive": [], "oracle_prevfile": [], "oracle_history": []}
        for index in range(simulation.n_exposures):
            plan = plan_exposure(simulation, index)
            for detector in simulation.detectors:
                layers = simulate_detector(simulation, plan, detector)
                factor = np.float32(layers.amplitude_factor * layers.persistence_scale)
                law = simulation.persistence.model_copy(update={"x0": layers.law_x0, "dx": layers.law_dx})
                previous = persistence_signal(
                    layers.fluence,
                    simulation.detector.full_well,
                    plan.previous.tsince,
                    plan.exptime,
                    law,
                )
                history = history_persistence(simulation, plan, int(detector), layers.orientation, law)
                stacks["positive"].append(layers.persistence > level)
                stacks["oracle_prevfile"].append(previous * factor >= level)
                stacks["oracle_history"].append((previous + history) * factor >= level)
        positive = np.concatenate([a.ravel() for a in stacks["positive"]])
        scores[name] = {}
        for oracle in ("oracle_prevfile", "oracle_history"):
            predicted = np.concatenate([a.ravel() for a in stacks[oracle]])
            scores[name][oracle], n_positive = f1(predicted, positive)
        scores[name]["positive"] = n_positive
    reference = scores[params.robustness.reference]
    for name, figures in scores.items():
        deltas = ", ".join(
            f"{oracle} {figures[oracle]:.3f} ({figures[oracle] - reference[oracle]:+.3f})"
            for oracle in ("oracle_prevfile", "oracle_history")
        )
        print(f"{name}: {int(figures['positive'])} positive pixels; {deltas}")


if __name__ == "__main__":
    main()
