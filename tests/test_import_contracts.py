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


def test_every_contract_is_kept() -> None:
    done = lint_imports(REPO, REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_learning_stage_that_reads_truth_breaks_a_contract(tmp_path: Path) -> None:
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=ignore)
    label = tmp_path / "src" / "slewdark" / "stages" / "label.py"
    label.write_text(label.read_text() + "\nfrom slewdark.evaluation.truth import truth_file  # noqa: E402\n")

    done = lint_imports(tmp_path, tmp_path / "src")

    assert done.returncode != 0
    assert "slewdark.stages.label is not allowed to import slewdark.evaluation.truth" in done.stdout
