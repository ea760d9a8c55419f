"""The real-data switch: ``data.*`` in params.yaml points the pipeline at `dvc add`-ed exposures.

A temporary copy of the repository on the tiny profile; exposures without truth
(as real NISP data: the simulator's, their truth written elsewhere and deleted)
are tracked with ``dvc add``; ``dvc repro predict`` then runs the whole chain,
patches to the UNet's masks of the new exposures, without the simulator, without
editing ``dvc.yaml`` and with no truth file anywhere on disk: so the learning
stages (patches to the UNet) need no truth, as ``test_truth_isolation`` checks on
``dvc.yaml``.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
import yaml

from test_pipeline_e2e import BIN, apply_profile, copy_repository, run, stages_run
from test_truth_isolation import LEARNING

CHAIN = {"patches", "train_ae", "embed", "cluster", "label", "pseudomask", "train_unet", "predict"}
DATA = {
    "train": "data/nisp",
    "heldout": "data/nisp_new",
    "train_truth": "data/nisp_truth",  # no truth for real data: only the evaluation stages read these
    "heldout_truth": "data/nisp_new_truth",
}

pytestmark = pytest.mark.slow


def simulate_without_truth(repo: Path, env: dict[str, str], section: str, out: str, n: int) -> None:
    """Exposures and their PREVFILE into ``out``; the truth, written elsewhere, is deleted."""
    gone = repo.parent / f"{section}_truth"
    command = ["slewdark", "-q", "simulate", "--set", section, "--out", out, "--truth-out", str(gone)]
    run([*command, "--n-exposures", str(n), "--detectors", "11"], repo, env)
    shutil.rmtree(gone)


def test_data_keys_switch_the_whole_chain_to_dvc_added_exposures_without_truth(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_repository(repo)
    apply_profile(repo, "tiny")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["data"] = DATA
    raw["optuna"]["n_trials"] = 0
    raw["cluster"]["plots"]["saliency_samples"] = 0
    raw["label"]["gallery_samples"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg")
    run(["git", "init", "-q"], repo, env)
    simulate_without_truth(repo, env, "simulate", DATA["train"], 3)
    simulate_without_truth(repo, env, "heldout", DATA["heldout"], 1)
    run(["dvc", "add", "-q", DATA["train"], DATA["heldout"]], repo, env)
    assert not list(tmp_path.rglob("*.truth.fits"))

    output = run(["dvc", "repro", "predict"], repo, env)

    assert stages_run(output) == CHAIN and "simulate" not in output
    with (repo / "data" / "patches" / "index.csv").open(newline="") as handle:
        files = {row["file"] for row in csv.DictReader(handle)}
    assert files == {f"{DATA['train']}/sd001_000{i}.fits" for i in range(3)}
    [exposure] = (repo / DATA["heldout"]).glob("sd*_0000.fits")
    assert (repo / raw["predict"]["out"] / exposure.name.replace(".fits", ".mask.fits")).is_file()
    assert not list(tmp_path.rglob("*.truth.fits")) and not (repo / "data" / "truth").exists()
    assert list((repo / raw["pseudomask"]["out"]).glob("*.pseudo.fits"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in LEARNING:
        data = [dep["path"] for dep in lock[stage].get("deps", []) if not dep["path"].startswith("src/")]
        assert not any("truth" in path for path in data), (stage, data)
    assert DATA["train"] in {dep["path"] for dep in lock["patches"]["deps"]}
    assert DATA["heldout"] in {dep["path"] for dep in lock["predict"]["deps"]}
