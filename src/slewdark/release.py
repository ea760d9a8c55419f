"""``slewdark release VERSION``: publish the current pipeline state.

A release is three things that point at each other:

1. the DVC-tracked products (raw data, patches, latents, clusters, masks, models)
   pushed to the DVC remote, so ``dvc pull``/``dvc get --rev VERSION`` fetch them;
2. an annotated git tag ``VERSION`` on the commit whose ``dvc.lock`` names them;
3. the MLflow registered-model alias ``production`` on the model version that
   ``models/unet.pt`` was logged as, tagged with the git tag.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from slewdark import tracking
from slewdark.errors import SlewdarkError

log = logging.getLogger(__name__)


class ReleaseError(SlewdarkError):
    """The repository is not in a state that can be released."""


@dataclass(frozen=True)
class Release:
    """What a release published."""

    version: str
    commit: str
    model_name: str
    model_version: str
    pushed_files: int


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def check_releasable(repo: Path, version: str) -> None:
    """Refuse a release from a dirty tree, a stale pipeline or a taken tag.

    Raises
    ------
    ReleaseError
        Naming what to do first.
    """
    from dvc.repo import Repo

    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError("uncommitted changes: commit params.yaml, dvc.lock and code first")
    if version in _git(repo, "tag", "--list", version).splitlines():
        raise ReleaseError(f"git tag {version} exists already")
    with Repo(str(repo)) as dvc_repo:
        stale = dvc_repo.status()
    if stale:
        raise ReleaseError(f"pipeline not up to date ({', '.join(sorted(stale))}): run dvc repro and commit")


def release(
    repo: str | Path,
    version: str,
    model_path: str | Path,
    model_name: str,
    uri: str,
    remote: str | None = None,
) -> Release:
    """Push products, tag git and promote the model version to ``production``.

    Parameters
    ----------
    repo
        Repository root.
    version
        Release name, used as the git tag (e.g. ``v1.0.0``).
    model_path
        The pipeline's UNet checkpoint; its ``mlflow_run_id`` finds the model version.
    model_name
        Registered model name in MLflow.
    uri
        Default MLflow tracking URI (``$MLFLOW_TRACKING_URI`` wins).
    remote
        DVC remote name; the repository's default remote when None.

    Returns
    -------
    Release
    """
    import torch
    from dvc.repo import Repo

    root = Path(repo)
    check_releasable(root, version)
    checkpoint = torch.load(root / model_path, map_location="cpu", weights_only=False)
    run_id = checkpoint.get("mlflow_run_id")
    if not run_id:
        raise ReleaseError(f"{model_path}: no MLflow run recorded in the checkpoint; rerun train_unet")
    model_version = tracking.model_version_for_run(uri, model_name, run_id)
    with Repo(str(root)) as dvc_repo:
        pushed = dvc_repo.push(remote=remote)
    log.info("pushed %d files to the DVC remote", pushed)
    commit = _git(root, "rev-parse", "HEAD")
    _git(root, "tag", "-a", version, "-m", f"slewdark release {version} ({model_name} v{model_version})")
    tracking.promote_model(uri, model_name, model_version, alias="production", tags={"release": version})
    return Release(version, commit, model_name, model_version, int(pushed))
