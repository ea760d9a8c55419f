"""The whole DVC pipeline on the tiny profile, in a temporary copy of the repository.

What a user does every day, checked with the real tools (git, DVC, MLflow's
SQLite store): ``dvc repro`` runs every stage; a second ``dvc repro`` runs
nothing; after a segmentation threshold changes, ``dvc status`` names only the
stages that read it (the stages after them follow through their deps); every
stage left its MLflow run; and ``slewdark predict`` runs the model from the
MLflow registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from astropy.io import fits

from slewdark.config import load_params, set_dotted
from slewdark.ops.profiles import load_profile

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ALL_STAGES = {
    "simulate",
    "simulate_heldout",
    "patches",
    "patch_truth",
    "train_ae",
    "embed",
    "cluster",
    "label",
    "pseudomask",
    "pseudomask_quality",
    "heuristic_masks",
    "pseudomask_neighbourhood",
    "train_unet",
    "train_unet_heuristic",
    "train_unet_neighbourhood",
    "train_unet_truth",
    "predict",
    "evaluate",
    "evaluate_ablation",
    "simulate_stress",
    "robustness",
}
SEGMENTATION_READERS = {"pseudomask", "heuristic_masks", "pseudomask_neighbourhood", "evaluate"}
"""The stages that list the segmentation settings (``pseudomask.segment``) as params."""

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command, fail the test with its output when it fails, return its output."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def stages_run(output: str) -> set[str]:
    """The stages that ``dvc repro`` ran, from its log."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def copy_repository(target: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files (what a clone of this change holds)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() and not name.startswith(("data/", "models/", "metrics/", "plots/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def apply_profile(repo: Path, name: str) -> None:
    """Write the profile's values into the copy's params.yaml (validated first)."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in load_profile(name, repo / "profiles").items():
        set_dotted(raw, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(repo / "params.yaml")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    """A repository copy on the tiny profile after its first full ``dvc repro``."""
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    repo.mkdir()
    copy_repository(repo)
    apply_profile(repo, "tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny"], repo, env)
    first = run(["dvc", "repro"], repo, env)
    return repo, env, first


def test_first_repro_runs_every_stage_and_ends_with_the_evaluation(pipeline) -> None:
    repo, _, first = pipeline
    assert stages_run(first) == ALL_STAGES
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(evaluation["methods"]) == {
        "unet",
        "physics",
        "law_fit",
        "heuristic_segmentation",
        "astroscrappy",
    }
    ablation = json.loads((repo / "metrics" / "ablation.json").read_text())
    assert list(ablation["methods"]) == ["unet", "unet_heuristic", "unet_neighbourhood", "unet_truth"]
    assert ablation["methods"]["unet"] == evaluation["methods"]["unet"]
    assert evaluation["heldout"]["positive_pixels"] > 0
    for name in ("label.json", "pseudomask.json", "unet.json", "cluster.json"):
        assert (repo / "metrics" / name).is_file()
    assert sorted(p.name for p in (repo / "data" / "masks").iterdir()) == [
        f"sd001_{i:04d}.pseudo.fits" for i in range(3)
    ]


def test_second_repro_does_nothing(pipeline) -> None:
    repo, env, _ = pipeline
    again = run(["dvc", "repro"], repo, env)
    assert stages_run(again) == set()
    assert json.loads(run(["dvc", "status", "--json"], repo, env)) == {}


def registry(repo: Path) -> mlflow.MlflowClient:
    """A client of the copy's own MLflow store (no global tracking URI is set)."""
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def test_every_stage_left_a_tagged_mlflow_run(pipeline) -> None:
    repo, _, _ = pipeline
    client = registry(repo)
    experiment = client.get_experiment_by_name("slewdark")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    stage_runs = [run for run in runs if "dvc.stage" in run.data.tags]
    stages = {run.data.tags["dvc.stage"] for run in stage_runs}
    assert stages >= {"train_ae", "embed", "cluster", "label", "pseudomask", "train_unet", "evaluate"}
    assert all(re.fullmatch(r"[0-9a-f]{40}", run.data.tags["git.commit"]) for run in stage_runs)
    assert client.search_model_versions("name = 'slewdark-unet'")


def test_predict_runs_the_registered_model(pipeline, tmp_path: Path) -> None:
    repo, env, _ = pipeline
    version = max(int(v.version) for v in registry(repo).search_model_versions("name = 'slewdark-unet'"))
    out = tmp_path / "masks"
    model = f"models:/slewdark-unet/{version}"
    run(["slewdark", "predict", "data/heldout", "--out", str(out), "--model", model], repo, env)
    (product,) = out.glob("*.mask.fits")
    header = fits.getheader(product)
    assert header["MODEL"] == model
    assert str(header["MODELVER"]) == str(version)


def test_changing_a_segmentation_threshold_invalidates_only_the_stages_that_read_it(pipeline) -> None:
    repo, env, _ = pipeline
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["pseudomask"]["segment"]["min_size"] += 5
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    status = json.loads(run(["dvc", "status", "--json"], repo, env))
    assert set(status) == SEGMENTATION_READERS
    changed = {"changed deps": {"params.yaml": {"pseudomask.segment": "modified"}}}
    assert all(status[stage] == [changed] for stage in SEGMENTATION_READERS)
