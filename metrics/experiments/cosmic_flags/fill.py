"""The law fit with the previous exposure's COSMIC-flagged pixels filled, against the fill's width.

    python metrics/experiments/cosmic_flags/fill.py > metrics/experiments/cosmic_flags/fill.txt

Simulates three exposures of the persistence_x30 stress set's physics (``robustness.sets``),
every cosmic-ray hit of their previous exposures flagged (``simulate.previous.cosmic_flagged``
[1, 1]), into a temporary folder, and scores the law_fit baseline at 9 e- with
``law_fit.cosmic_fill`` 0 (flags ignored), 0.7, 1 and 2 px.
"""

from __future__ import annotations

import tempfile

from slewdark.config import load_params
from slewdark.evaluation.baselines import law_fit_method
from slewdark.evaluation.stress_sets import stress_simulations
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.io.fits import iter_detectors, read_info
from slewdark.simulate.dataset import simulate_dataset

FILLS = (0.0, 0.7, 1.0, 2.0)


def main() -> None:
    params = load_params("params.yaml")
    simulation = stress_simulations(params)["persistence_x30"]
    with tempfile.TemporaryDirectory() as folder:
        flagged = simulation.previous.model_copy(update={"cosmic_flagged": (1.0, 1.0)})
        update = {"out": folder, "truth_out": None, "n_exposures": 3, "previous": flagged}
        exposures = simulate_dataset(simulation.model_copy(update=update))
        for fill in FILLS:
            settings = params.law_fit.model_copy(update={"cosmic_fill": fill})
            method = law_fit_method(params.model_copy(update={"law_fit": settings}))
            tp = fp = fn = 0
            for path in exposures:
                info = read_info(path)
                for detector in iter_detectors(path):
                    truth = read_truth(truth_file(path), detector.detector)
                    positive = (truth.pers > params.evaluate.truth_threshold) & detector.usable
                    mask, _ = method(path, info, detector)
                    tp += int((mask & positive).sum())
                    fp += int((mask & ~positive).sum())
                    fn += int((positive & ~mask).sum())
            print(f"cosmic_fill {fill}: TP {tp} FP {fp} FN {fn} F1 {2 * tp / (2 * tp + fp + fn):.3f}")


if __name__ == "__main__":
    main()
