"""Layer boundaries (pyproject.toml, [tool.importlinter]) hold, and a breach is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path, src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``root``'s pyproject.toml against the package in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def lint_with_import(tmp_path: Path, module: str, statement: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on a copy of the project where ``slewdark/<module>`` also runs ``statement``."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=ignore)
    source = tmp_path / "src" / "slewdark" / module
    source.write_text(source.read_text() + f"\n{statement}  # noqa: E402\n")
    return lint_imports(tmp_path, tmp_path / "src")


def test_every_contract_is_kept() -> None:
    done = lint_imports(REPO, REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_learning_stage_that_reads_truth_breaks_a_contract(tmp_path: Path) -> None:
    done = lint_with_import(tmp_path, "stages/label.py", "from slewdark.evaluation.truth import truth_file")

    assert done.returncode != 0
    assert "slewdark.stages.label is not allowed to import slewdark.evaluation" in done.stdout


def test_inference_that_imports_a_stage_breaks_a_contract(tmp_path: Path) -> None:
    statement = "from slewdark.stages.patches import build_patches"
    done = lint_with_import(tmp_path, "inference/predict.py", statement)

    assert done.returncode != 0
    assert "slewdark.inference is not allowed to import slewdark.stages" in done.stdout
    assert "slewdark.inference.predict -> slewdark.stages.patches" in done.stdout
