"""Before (the law alone in training) against a run of this record on the same data.

    python metrics/experiments/amplitude_range/compare.py            # after: compare.txt
    python metrics/experiments/amplitude_range/compare.py lawmap     # compare_lawmap.txt
    python metrics/experiments/amplitude_range/compare.py metrics/experiments/law_channel/channel3

``before_*.json`` are ``metrics/eval.json`` and ``metrics/robustness.json`` of
commit 6cabdc5; ``<run>_*.json`` the same files from the run (README of this
record): ``after`` is ``make repro`` with ``simulate.persistence.amplitude_factor:
[0.5, 30.0]``. A run with a ``/`` is a path prefix from the current folder, for
other records. The held-out and stress sets hold the same pixels in all runs
(their amplitude factor is 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELDOUT_KEYS = (
    "f1",
    "precision",
    "recall",
    "object_recall",
    "cosmic_ray_flagged_fraction",
    "clean_flagged_fraction",
)
STRESS_KEYS = ("f1", "precision", "recall", "recall_strong", "cosmic_ray_flagged_fraction")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def heldout_rows(before: dict, after: dict) -> list[str]:
    lines = ["| method | " + " | ".join(f"{k} before / after" for k in HELDOUT_KEYS) + " |"]
    lines.append("|---|" + "---|" * len(HELDOUT_KEYS))
    for method, now in after["methods"].items():
        then = before["methods"].get(method, {})
        cells = [f"{then.get(k, float('nan')):.4g} / {now[k]:.4g}" for k in HELDOUT_KEYS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def stress_rows(before: dict, after: dict) -> list[str]:
    lines = ["| set | method | " + " | ".join(f"{k} before / after" for k in STRESS_KEYS) + " |"]
    lines.append("|---|---|" + "---|" * len(STRESS_KEYS))
    for name, now in after["sets"].items():
        for method, scores in now["methods"].items():
            then = before["sets"][name]["methods"][method]
            cells = [f"{then[k]:.3f} / {scores[k]:.3f}" for k in STRESS_KEYS]
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    run = sys.argv[1] if len(sys.argv) > 1 else "after"
    prefix = run if "/" in run else str(HERE / run)
    heldout = heldout_rows(load(HERE / "before_eval.json"), load(Path(f"{prefix}_eval.json")))
    stress = stress_rows(load(HERE / "before_robustness.json"), load(Path(f"{prefix}_robustness.json")))
    print("Held-out set\n\n" + "\n".join(heldout) + "\n\nStress sets\n\n" + "\n".join(stress))


if __name__ == "__main__":
    main()
