"""The product UNet and the law fit of each run of this record, on the held-out and stress sets.

    python metrics/experiments/law_labels/compare.py > metrics/experiments/law_labels/compare.txt

``before_*`` are the metrics of the release before (commit 21289cc); ``<run>_*`` the same files
after each run (README of this record). ``law_fit.fluence_median`` differs between ``before``
and the other runs, so the law fit is shown per run.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = ("before", "lab_law", "release")
FILES = ("eval", "pseudomask", "robustness")
PIXELS = "{f1:.3f} ({precision:.3f} / {recall:.3f})"


def main() -> None:
    runs = [run for run in RUNS if (HERE / f"{run}_eval.json").exists()]
    metrics = {
        run: {name: json.loads((HERE / f"{run}_{name}.json").read_text()) for name in FILES} for run in runs
    }
    print("| | " + " | ".join(runs) + " |")
    print("|---|" + "---:|" * len(runs))
    labels = [PIXELS.format(**metrics[run]["pseudomask"]["pixels"]) for run in runs]
    print("| pseudo-labels against truth, F1 (P / R) | " + " | ".join(labels) + " |")
    for method in ("unet", "law_fit"):
        heldout = [PIXELS.format(**metrics[run]["eval"]["methods"][method]) for run in runs]
        print(f"| held-out {method} F1 (P / R) | " + " | ".join(heldout) + " |")
    for name in metrics[runs[0]]["robustness"]["sets"]:
        sets = [metrics[run]["robustness"]["sets"][name]["methods"] for run in runs]
        cells = [f"{methods['unet']['f1']:.3f} / {methods['law_fit']['f1']:.3f}" for methods in sets]
        print(f"| stress {name}: F1 unet / law_fit | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
