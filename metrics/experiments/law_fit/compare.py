"""The product UNet of each run of this record beside the release, on the held-out and stress sets.

    python metrics/experiments/law_fit/compare.py > metrics/experiments/law_fit/compare.txt

``release_*.json`` are the release's ``metrics/`` files (commit 0de8928); ``<run>_*.json`` the
same files after the run (README of this record). Every run scores the same held-out and stress
pixels, so the ``law_fit`` and ``physics`` baselines are the same in all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = ("release", "clusters", "everywhere", "only")


def load(run: str, name: str) -> dict | None:
    path = HERE / f"{run}_{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pixel_figures(figures: dict) -> str:
    return f"{figures['f1']:.3f} ({figures['precision']:.3f} / {figures['recall']:.3f})"


def main() -> None:
    runs = [run for run in RUNS if load(run, "eval")]
    print("| | " + " | ".join(runs) + " |")
    print("|---|" + "---:|" * len(runs))
    labels = [load(run, "pseudomask")["pixels"] for run in runs]
    print("| pseudo-labels against truth, F1 (P / R) | " + " | ".join(map(pixel_figures, labels)) + " |")
    heldout = [load(run, "eval")["methods"]["unet"] for run in runs]
    print("| held-out unet F1 (P / R) | " + " | ".join(map(pixel_figures, heldout)) + " |")
    law = load("clusters", "robustness")
    for name, result in law["sets"].items():
        cells = [f"{load(run, 'robustness')['sets'][name]['methods']['unet']['f1']:.3f}" for run in runs]
        baselines = result["methods"]
        print(
            f"| stress {name}: unet F1 (law_fit {baselines['law_fit']['f1']:.3f}, "
            f"physics {baselines['physics']['f1']:.3f}) | " + " | ".join(cells) + " |"
        )
    law_heldout = load("clusters", "eval")["methods"]["law_fit"]
    print(f"\nheld-out law_fit F1 (P / R): {pixel_figures(law_heldout)}")


if __name__ == "__main__":
    main()
