"""MLflow's ``dvc.input.*`` tags: hashes of a stage's inputs as they are, not as dvc.lock last saw them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slewdark.ops.lineage import MISSING, file_md5, input_hashes, stage_dependencies

DVC = Path(sys.executable).with_name("dvc")
DVC_YAML = {
    "stages": {
        "make": {"cmd": "cp ${make.source} made.txt", "deps": ["${make.source}"], "outs": ["made.txt"]},
        "use": {
            "cmd": "cat made.txt code.py > used.txt",
            "deps": ["made.txt", "code.py", "lib", "raw", "absent.txt"],
            "outs": ["used.txt"],
        },
    }
}


def run(repo: Path, *command: str) -> None:
    env = {**os.environ, "PATH": f"{DVC.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git + DVC repository whose ``use`` stage has run once."""
    if shutil.which("git") is None:
        pytest.skip("git is needed")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"make": {"source": "source.txt"}}))
    (tmp_path / "source.txt").write_text("source\n")
    (tmp_path / "code.py").write_text("WEIGHT = 1\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.py").write_text("A = 1\n")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "x.fits").write_bytes(b"data")
    (tmp_path / "absent.txt").write_text("here for the first run\n")
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, str(DVC), "init", "-q")
    run(tmp_path, str(DVC), "add", "-q", "raw")
    run(tmp_path, str(DVC), "repro", "-q")
    return tmp_path


def lock_deps(repo: Path, stage: str) -> dict[str, str]:
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {dep["path"]: dep["md5"] for dep in stages[stage]["deps"]}


def test_dependencies_resolve_params_references(repo: Path) -> None:
    assert stage_dependencies("make", repo) == ["source.txt"]


def test_file_hashes_match_what_dvc_records(repo: Path) -> None:
    hashes = input_hashes("use", repo)
    recorded = lock_deps(repo, "use")
    assert hashes["code.py"] == recorded["code.py"] == file_md5(repo / "code.py")
    assert hashes["made.txt"] == recorded["made.txt"]  # the output hash the upstream stage recorded
    assert hashes["raw"] == recorded["raw"]  # from raw.dvc: `dvc add`-ed data is not read again


def test_an_edit_since_the_last_run_is_seen(repo: Path) -> None:
    recorded = lock_deps(repo, "use")
    (repo / "code.py").write_text("WEIGHT = 2\n")
    (repo / "lib" / "a.py").write_text("A = 2\n")
    (repo / "absent.txt").unlink()

    hashes = input_hashes("use", repo)

    assert hashes["code.py"] == file_md5(repo / "code.py") != recorded["code.py"]
    assert hashes["absent.txt"] == MISSING
    (repo / "lib" / "a.py").write_text("A = 3\n")
    assert input_hashes("use", repo)["lib"] != hashes["lib"]  # a folder's content is hashed


def test_no_tags_outside_a_pipeline(repo: Path) -> None:
    elsewhere = repo / "elsewhere"
    elsewhere.mkdir()
    assert input_hashes("use", elsewhere) == {}
    assert input_hashes("not_a_stage", repo) == {}
