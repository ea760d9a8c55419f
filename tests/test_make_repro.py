"""``make repro`` runs the product, its baselines and the stress matrix; ``make repro-all`` every stage.

The ablation's three extra UNet trainings are most of a full run's time, so the
default command leaves them out. Checked with the real ``make`` (what the
recipes run) and DVC's own stage graph (what those commands reach).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]
ABLATION = {
    "heuristic_masks",
    "pseudomask_neighbourhood",
    "train_unet_heuristic",
    "train_unet_neighbourhood",
    "train_unet_truth",
    "evaluate_ablation",
}


def dvc_command(target: str) -> list[str]:
    """The ``dvc repro`` command line that ``make <target>`` runs (``make -n``: printed, not run)."""
    listed = subprocess.run(
        ["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    commands = [shlex.split(line) for line in listed if line.startswith("dvc repro")]
    assert len(commands) == 1, listed
    return commands[0]


def reached(targets: list[str]) -> set[str]:
    """The stages ``dvc repro <targets>`` may run: the targets and everything upstream (all without)."""
    with Repo(str(REPO)) as repo:
        if not targets:
            return {stage.name for stage in repo.index.stages}
        return {stage.name for target in targets for stage in repo.stage.collect(target, with_deps=True)}


def test_make_repro_runs_the_product_and_its_evaluations_but_not_the_ablation() -> None:
    command = dvc_command("repro")
    stages = reached(command[2:])
    assert {"simulate", "train_ae", "cluster", "pseudomask", "train_unet", "predict"} <= stages
    assert {"evaluate", "robustness", "pseudomask_quality"} <= stages
    assert not stages & ABLATION


def test_make_repro_all_runs_every_stage() -> None:
    command = dvc_command("repro-all")
    assert command == ["dvc", "repro"]
    product = reached(dvc_command("repro")[2:])
    assert reached([]) == product | ABLATION
