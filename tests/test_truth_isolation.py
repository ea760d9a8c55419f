"""Truth is read only by evaluation: no learning stage depends on it.

The simulator writes ``<stem>.truth.fits`` into folders of their own
(``simulate.truth_out``, ``heldout.truth_out``, ``robustness.truth_out``), which only
the evaluation stages list as deps. Checked here on ``dvc.yaml`` as DVC resolves it;
that the learning stages also *run* with no truth file anywhere on disk is checked
with the real tools by ``test_real_data_switch``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LEARNING = ("patches", "train_ae", "embed", "cluster", "label", "pseudomask", "train_unet")
EVALUATION = (
    "patch_truth",
    "pseudomask_quality",
    "train_unet_truth",
    "evaluate",
    "evaluate_ablation",
    "robustness",
)


def resolved_deps(stage: str, params: dict) -> set[Path]:
    """The deps of a ``dvc.yaml`` stage with ``${a.b}`` replaced by the params' values."""

    def value(match: re.Match) -> str:
        node = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {Path(re.sub(r"\$\{([^}]+)\}", value, str(dep))) for dep in stages[stage]["deps"]}


def truth_paths(params: dict) -> set[Path]:
    """Every folder or file of truth that the pipeline writes."""
    folders = (
        params["simulate"]["truth_out"],
        params["heldout"]["truth_out"],
        params["robustness"]["truth_out"],
    )
    return {Path(p) for p in (*folders, params["data"]["train_truth"], params["data"]["heldout_truth"])} | {
        Path(params["patch_truth"]["out"])
    }


def touches(dep: Path, paths: set[Path]) -> bool:
    """Whether a dep is one of the paths, lies inside one or holds one."""
    return any(dep == p or dep in p.parents or p in dep.parents for p in paths)


@pytest.mark.parametrize("stage", LEARNING)
def test_no_learning_stage_depends_on_truth(stage: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    leaks = sorted(str(d) for d in resolved_deps(stage, params) if touches(d, truth_paths(params)))
    assert not leaks, f"{stage} depends on truth: {leaks}"


@pytest.mark.parametrize("stage", EVALUATION)
def test_every_evaluation_stage_depends_on_its_truth(stage: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert any(touches(d, truth_paths(params)) for d in resolved_deps(stage, params))
