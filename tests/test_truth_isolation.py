"""Truth is read only by evaluation: no learning stage depends on it, and they all run without it.

The simulator writes ``<stem>.truth.fits`` into folders of their own
(``simulate.truth_out``, ``heldout.truth_out``, ``robustness.truth_out``), which only
the evaluation stages list as deps. Checked on ``dvc.yaml`` as DVC resolves it, and
with the real tools: in a temporary copy of the repository on the tiny profile, the
training set is simulated, its truth folder deleted, and patches, the autoencoder,
the clusters, the labels, the pseudo-masks and the UNet are made with no truth file
anywhere on disk.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from test_pipeline_e2e import BIN, apply_profile, copy_repository, run, stages_run

REPO = Path(__file__).resolve().parents[1]
LEARNING = ("patches", "train_ae", "embed", "cluster", "label", "pseudomask", "train_unet")
EVALUATION = ("patch_truth", "pseudomask_quality", "train_unet_truth", "evaluate", "robustness")
FASTER = {"optuna.n_trials": 0, "cluster.plots.saliency_samples": 0, "label.gallery_samples": 2}


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


@pytest.mark.slow
def test_labels_pseudo_masks_and_unet_are_made_with_no_truth_on_disk(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_repository(repo)
    apply_profile(repo, "tiny")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, setting in FASTER.items():
        section, *keys = dotted.split(".")
        node = raw[section]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = setting
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg")
    run(["git", "init", "-q"], repo, env)

    run(["dvc", "repro", "simulate"], repo, env)
    truth = repo / raw["simulate"]["truth_out"]
    assert len(list(truth.glob("*.truth.fits"))) == raw["simulate"]["n_exposures"]
    assert not list((repo / raw["simulate"]["out"]).glob("*.truth.fits"))
    shutil.rmtree(repo / "data" / "truth")

    output = run(["dvc", "repro", "--single-item", *LEARNING], repo, env)

    assert stages_run(output) == set(LEARNING)
    assert not list(repo.rglob("*.truth.fits")) and not (repo / "data" / "truth").exists()
    assert (repo / raw["unet"]["model"]).is_file()
    assert list((repo / raw["pseudomask"]["out"]).glob("*.pseudo.fits"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in LEARNING:
        data = [dep["path"] for dep in lock[stage].get("deps", []) if not dep["path"].startswith("src/")]
        assert not any("truth" in path for path in data), (stage, data)
