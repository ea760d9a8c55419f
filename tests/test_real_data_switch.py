"""The real-data switch: ``data.train`` in params.yaml points the pipeline at `dvc add`-ed exposures.

A temporary repository with this project's ``dvc.yaml``, ``params.yaml`` and code; two
contract-valid exposures without truth (as real NISP data) are tracked with
``dvc add``; ``dvc repro patch_truth`` then cuts patches from them, without the
simulator and without editing ``dvc.yaml``, and the evaluation-only truth table
comes out empty instead of failing.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from test_predict import write_exposure

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
    return done.stdout + done.stderr


def test_data_train_switches_the_pipeline_to_dvc_added_exposures(tmp_path: Path) -> None:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(
        REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["data"] = {"train": "data/nisp", "heldout": "data/nisp_new"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "data" / "nisp").mkdir(parents=True)
    for i in range(2):
        write_exposure(tmp_path / "data" / "nisp" / f"real{i}.fits", ("11",), seed=i)
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["dvc", "add", "-q", "data/nisp"], tmp_path)

    output = run(["dvc", "repro", "patch_truth"], tmp_path)

    assert "Running stage 'patches'" in output and "simulate" not in output
    with (tmp_path / "data" / "patches" / "index.csv").open(newline="") as handle:
        files = {row["file"] for row in csv.DictReader(handle)}
    assert files == {"data/nisp/real0.fits", "data/nisp/real1.fits"}
    assert (tmp_path / "data" / "truth" / "patch_truth.csv").read_text().count("\n") == 1  # header only
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert "data/nisp" in {dep["path"] for dep in lock["stages"]["patches"]["deps"]}
