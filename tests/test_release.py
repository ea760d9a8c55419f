"""slewdark release: a real git repo, DVC pipeline and remote, and MLflow SQLite registry in tmp_path.

A one-stage pipeline writes models/unet.pt the way train-unet does (a tiny UNet
logged, registered and stored as its run's checkpoint artifact); the release
must push it, promote its model version to @production and tag git, so that a
clone, ``dvc get --rev`` and ``slewdark predict --model models:/...@production``
all get that model. Refusals leave everything as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from astropy.io import fits

from slewdark.cli import main
from test_predict import ARCH, write_exposure

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "models/unet.pt"
NAME = "slewdark-unet"
VERSION = "v0.1.0"

MAKE_MODEL = f'''"""Test pipeline stage: a tiny UNet, registered and checkpointed like train-unet does."""

import shutil
import tempfile
from pathlib import Path

import torch

from slewdark.core.normalisation import Normalisation
from slewdark.core.scaling import Scaling
from slewdark.models.checkpoint import UnetModel, checkpoint_payload
from slewdark.models.unet import build_unet
from slewdark.ops.tracking import CHECKPOINT_ARTIFACT, stage_run

ARCH = {ARCH!r}
torch.manual_seed(0)
network = build_unet(**ARCH).eval()
with stage_run("train_unet", "sqlite:///unused.db", "slewdark") as run:
    version = run.log_torch_model(network, "unet", registered_model="{NAME}")
    scaling = Scaling("channel_row_block", 34, 3.0, -4.0, 100.0)
    unet = UnetModel(
        network, ARCH, Normalisation(scaling, 1e5), 1024, 32, 0.5, "{MODEL}", run.run_id, version, "sha"
    )
    Path("{MODEL}").parent.mkdir(exist_ok=True)
    torch.save(checkpoint_payload(unet), "{MODEL}")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(CHECKPOINT_ARTIFACT).name
        shutil.copyfile("{MODEL}", copy)
        run.log_artifact(copy, artifact_path=str(Path(CHECKPOINT_ARTIFACT).parent))
'''


def run(cwd: Path, *command: str | Path) -> str:
    """Run a command, failing the test with its output when it fails."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Released:
    repo: Path
    remote: Path
    uri: str
    run_id: str
    model_version: str


def make_pipeline(repo: Path, remote: Path) -> None:
    """A git + DVC repository with one stage writing models/unet.pt and a local default remote."""
    repo.mkdir()
    run(repo, "git", "init", "-q", "-b", "main")
    for key, value in [
        ("user.name", "Release Test"),
        ("user.email", "release@example.org"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ]:
        run(repo, "git", "config", key, value)
    run(repo, "dvc", "init", "-q")
    run(repo, "dvc", "config", "core.analytics", "false")
    run(repo, "dvc", "remote", "add", "-d", "store", remote)
    (repo / "make_model.py").write_text(MAKE_MODEL)
    stage = {"cmd": f"{sys.executable} make_model.py", "deps": ["make_model.py"], "outs": [MODEL]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train_unet": stage}}))
    (repo / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (repo / ".gitignore").write_text("mlruns/\nmlartifacts/\n")
    run(repo, "dvc", "repro", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "pipeline with a trained model")


def alias_version(uri: str, alias: str = "production") -> str | None:
    """The model version carrying ``alias``, None when no version does."""
    version = mlflow.MlflowClient(uri).get_registered_model(NAME).aliases.get(alias)
    return None if version is None else str(version)


def tags(repo: Path) -> list[str]:
    return run(repo, "git", "tag", "--list").split()


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    """The pipeline after a failed release (push to a broken remote) and then ``slewdark release v0.1.0``."""
    tmp = tmp_path_factory.mktemp("release")
    repo, remote = tmp / "repo", tmp / "remote"
    uri = f"sqlite:///{tmp}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        mp.setenv("DVC_NO_ANALYTICS", "1")
        make_pipeline(repo, remote)
        mp.chdir(repo)
        run_id = torch.load(repo / MODEL, map_location="cpu", weights_only=False)["mlflow_run_id"]

        # A push that fails publishes nothing: no tag, no alias.
        (tmp / "not-a-folder").write_text("")
        run(repo, "dvc", "remote", "add", "--local", "broken", tmp / "not-a-folder")
        with contextlib.redirect_stderr(io.StringIO()) as err:
            assert main(["-q", "release", VERSION, "-r", "broken"]) != 0
        assert "dvc push -r broken failed: ERROR" in err.getvalue(), err.getvalue()
        assert tags(repo) == [] and alias_version(uri) is None

        assert main(["-q", "release", VERSION]) == 0
        found = mlflow.MlflowClient(uri).search_model_versions(f"run_id='{run_id}'")
        yield Released(repo, remote, uri, run_id, str(found[0].version))


def test_release_tags_git_and_promotes_the_checkpoints_model_version(
    released: Released, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = released.repo
    assert tags(repo) == [VERSION]
    assert run(repo, "git", "cat-file", "-t", VERSION).strip() == "tag"  # annotated
    head = run(repo, "git", "rev-parse", "HEAD").strip()
    assert run(repo, "git", "rev-parse", f"{VERSION}^{{commit}}").strip() == head

    assert alias_version(released.uri) == released.model_version
    version = mlflow.MlflowClient(released.uri).get_model_version(NAME, released.model_version)
    assert version.run_id == released.run_id
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    md5 = lock["stages"]["train_unet"]["outs"][0]["md5"]
    assert version.tags == {"git.tag": VERSION, "git.commit": head, "dvc.models_unet_md5": md5}


def test_released_model_predicts_from_the_registry(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", released.uri)
    monkeypatch.chdir(released.repo)
    exposure = write_exposure(tmp_path / "exp_r.fits", ("11",), seed=3)
    out = tmp_path / "pred"
    argv = ["-q", "predict", str(exposure), "--out", str(out), "--model", f"models:/{NAME}@production"]
    assert main([*argv, "--device", "cpu"]) == 0
    with fits.open(out / "exp_r.mask.fits") as product:
        assert product[0].header["MLRUN"] == released.run_id
        assert product[0].header["MODELVER"] == released.model_version
        assert product["DET11.MASK"].data.shape == (2040, 2040)


def test_clone_and_dvc_get_fetch_the_released_model(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    original = (released.repo / MODEL).read_bytes()

    run(tmp_path, "git", "clone", "-q", released.repo, "clone")
    clone = tmp_path / "clone"
    assert not (clone / MODEL).exists()
    run(clone, "dvc", "pull", "-q", MODEL)
    assert (clone / MODEL).read_bytes() == original

    run(tmp_path, "dvc", "get", released.repo, MODEL, "--rev", VERSION, "-o", "got.pt")
    assert (tmp_path / "got.pt").read_bytes() == original


def refuse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``slewdark release`` expecting a refusal; returns its error line."""
    capsys.readouterr()
    assert main(["-q", "release", *argv]) != 0
    return capsys.readouterr().err


def test_refusals_name_the_problem_and_change_nothing(
    released: Released, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", released.uri)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(released.repo)
    repo = released.repo

    assert "'release-1' is not a version" in refuse(["release-1"], capsys)
    assert "1.2" in refuse(["1.2"], capsys)
    assert f"git tag {VERSION} exists already" in refuse([VERSION], capsys)
    assert "DVC remote 'nowhere' is not configured" in refuse(["v0.2.0", "-r", "nowhere"], capsys)

    script = repo / "make_model.py"
    script.write_text(script.read_text() + "# edited\n")
    assert "uncommitted changes to make_model.py" in refuse(["v0.2.0"], capsys)

    run(repo, "git", "commit", "-q", "-am", "edit the stage without reproducing")
    error = refuse(["v0.2.0"], capsys)
    assert "pipeline not up to date (train_unet)" in error and "dvc repro" in error

    assert tags(repo) == [VERSION]
    assert alias_version(released.uri) == released.model_version
    run(repo, "git", "reset", "-q", "--hard", VERSION)
