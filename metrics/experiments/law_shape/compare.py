"""The product in three runs: UNet F1 on the held-out set and every stress set.

    python metrics/experiments/law_shape/compare.py > metrics/experiments/law_shape/compare.txt

``release_*``: release 26c7cd4 (float32 training, 20 epochs, patience 4, the lab
law's shape in training); ``lab_*``: bfloat16 training, 30 epochs, patience 8,
the lab law's shape; ``randomised_*``: the same training with the law's shape
drawn per exposure and detector (``x0_factor``, ``dx_factor`` [0.7, 1.4]). The
held-out and stress sets hold the same pixels in all three (factors 1).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = ("release", "lab", "randomised")


def load(run: str, name: str) -> dict:
    return json.loads((HERE / f"{run}_{name}.json").read_text())


def main() -> None:
    evals = {run: load(run, "eval")["methods"]["unet"] for run in RUNS}
    stress = {run: load(run, "robustness")["sets"] for run in RUNS}
    trainings = {run: load(run, "unet") for run in RUNS}
    print("| | " + " | ".join(RUNS) + " |")
    print("|---|" + "---:|" * len(RUNS))
    epochs = [f"{t['epochs']} ({t['best_epoch']})" for t in trainings.values()]
    print("| epochs (best) | " + " | ".join(epochs) + " |")
    print("| threshold | " + " | ".join(f"{t['threshold']:.2f}" for t in trainings.values()) + " |")
    for key in ("f1", "precision", "recall", "object_recall"):
        print(f"| held-out {key} | " + " | ".join(f"{evals[run][key]:.3f}" for run in RUNS) + " |")
    for name in stress["release"]:
        if name == "persistence_free":
            continue
        cells = [stress[run][name]["methods"]["unet"]["f1"] for run in RUNS]
        print(f"| stress {name} F1 | " + " | ".join(f"{value:.3f}" for value in cells) + " |")
    for name in ("law_onset_high", "exptime_50"):
        cells = [stress[run][name]["methods"]["unet"]["precision"] for run in RUNS]
        print(f"| stress {name} precision | " + " | ".join(f"{value:.3f}" for value in cells) + " |")


if __name__ == "__main__":
    main()
