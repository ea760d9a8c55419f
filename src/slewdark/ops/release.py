"""``slewdark release VERSION``: publish the current pipeline state.

A release is three things that point at each other:

1. the DVC-tracked products pushed to a DVC remote, so that ``dvc pull`` in a
   clone, or ``dvc get REPO PATH --rev VERSION``, fetches them;
2. an annotated git tag ``VERSION`` on the commit whose ``dvc.lock`` names them;
3. the MLflow registered-model alias ``production`` on the model version that
   the released checkpoint was logged as, tagged with the git tag, the commit
   and the checkpoint's DVC hash.

Every precondition is checked before anything is published; the products are
pushed next (a failed push leaves the registry and git untouched), then the
model version is promoted, and the tag comes last. MLflow is reached only
through :mod:`slewdark.ops.tracking`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from slewdark.errors import SlewdarkError
from slewdark.ops import tracking

log = logging.getLogger(__name__)

ALIAS = "production"
TAG_REMOTE = "origin"
VERSION_PATTERN = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.-]*)?")
RUN_ID_KEY = "mlflow_run_id"


class ReleaseError(SlewdarkError):
    """The repository is not in a state that can be released, or publishing failed."""


@dataclass(frozen=True)
class Release:
    """What a release published.

    Attributes
    ----------
    version
        The release name and git tag.
    commit
        The tagged commit (full sha).
    model_name, model_version
        The registered model version that now carries :data:`ALIAS`.
    alias
        The alias set on it.
    remote
        The DVC remote the products were pushed to.
    tag_pushed
        Whether the tag was pushed to :data:`TAG_REMOTE`.
    """

    version: str
    commit: str
    model_name: str
    model_version: str
    alias: str
    remote: str
    tag_pushed: bool


@dataclass(frozen=True)
class _Plan:
    """Everything the checks found out, so that publishing asks nothing more."""

    commit: str
    remote: str
    model_version: str
    model_md5: str


# --- running git and dvc ----------------------------------------------------------------


def _dvc_command() -> list[str]:
    """How to start DVC: ``dvc`` on PATH, else the ``dvc`` module of this interpreter."""
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def _run(repo: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``repo``, capturing its text output."""
    try:
        return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    except OSError as error:
        raise ReleaseError(f"cannot run {command[0]}: {error}") from None


def _output(repo: Path, command: list[str], what: str) -> str:
    """Standard output of ``command``; a :class:`ReleaseError` naming ``what`` when it fails."""
    result = _run(repo, command)
    if result.returncode != 0:
        raise ReleaseError(f"{what} failed: {_problem(result)}")
    return result.stdout.strip()


def _problem(result: subprocess.CompletedProcess[str]) -> str:
    """The line of a failed command's output that says what went wrong (DVC's ``ERROR:`` line)."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error", "fatal"))]
    return (errors or lines or [f"exit status {result.returncode}"])[0]


def git(repo: Path, *args: str) -> str:
    """Standard output of ``git ARGS`` run in ``repo``."""
    return _output(repo, ["git", *args], f"git {' '.join(args)}")


def dvc(repo: Path, *args: str) -> str:
    """Standard output of ``dvc ARGS`` run in ``repo``."""
    return _output(repo, [*_dvc_command(), *args], f"dvc {' '.join(args)}")


# --- checks -----------------------------------------------------------------------------


def check_version(version: str) -> None:
    """Refuse a release name that is not a version such as ``v1.2.0`` or ``1.2.0-rc.1``.

    Raises
    ------
    ReleaseError
        When ``version`` does not match :data:`VERSION_PATTERN`.
    """
    if not VERSION_PATTERN.fullmatch(version):
        raise ReleaseError(f"{version!r} is not a version: expected e.g. v1.2.0 or 1.2.0")


def check_tag_free(repo: Path, version: str) -> None:
    """Refuse a version whose git tag exists already."""
    if git(repo, "tag", "--list", version):
        raise ReleaseError(f"git tag {version} exists already: choose a new version")


def check_clean_tree(repo: Path) -> None:
    """Refuse uncommitted changes to tracked files (untracked files are ignored)."""
    changed = git(repo, "status", "--porcelain", "--untracked-files=no")
    if changed:
        files = ", ".join(line.split(maxsplit=1)[-1] for line in changed.splitlines())
        raise ReleaseError(f"uncommitted changes to {files}: commit them (params.yaml, dvc.lock, code) first")


def stale_stages(repo: Path) -> list[str]:
    """Pipeline stages (and ``.dvc`` files) that ``dvc status`` reports as changed."""
    text = dvc(repo, "status", "--json")
    try:
        status = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise ReleaseError(f"dvc status --json printed no JSON: {text[:200]!r}") from None
    return sorted(status)


def check_pipeline_current(repo: Path) -> None:
    """Refuse a pipeline that ``dvc status`` does not report as up to date."""
    stale = stale_stages(repo)
    if stale:
        raise ReleaseError(
            f"pipeline not up to date ({', '.join(stale)}): run `dvc repro` and commit dvc.lock first"
        )


def check_model(repo: Path, model_path: str | Path) -> Path:
    """The checkpoint's path in ``repo``; refuse when it does not exist."""
    path = repo / model_path
    if not path.is_file():
        raise ReleaseError(f"{model_path}: model not found: run `dvc repro` (or `dvc pull`) first")
    return path


def resolve_remote(repo: Path, remote: str | None) -> str:
    """The DVC remote to push to: ``remote`` if configured, else the default remote.

    Raises
    ------
    ReleaseError
        When the named remote is not configured, or there is no default remote.
    """
    names = [line.split()[0] for line in dvc(repo, "remote", "list").splitlines() if line.strip()]
    if remote is not None:
        if remote not in names:
            known = ", ".join(names) or "none"
            raise ReleaseError(f"DVC remote {remote!r} is not configured (configured: {known})")
        return remote
    result = _run(repo, [*_dvc_command(), "remote", "default"])
    default = result.stdout.strip() if result.returncode == 0 else ""
    if default not in names:
        raise ReleaseError("no default DVC remote: add one with `dvc remote add -d NAME URL` or pass -r")
    return default


def checkpoint_run_id(path: Path) -> str:
    """The MLflow run that trained the checkpoint at ``path`` (its ``mlflow_run_id``)."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ReleaseError(f"{path}: not a readable torch checkpoint ({error})") from None
    run_id = saved.get(RUN_ID_KEY) if isinstance(saved, dict) else None
    if not run_id:
        raise ReleaseError(f"{path}: no MLflow run recorded in the checkpoint: retrain it with tracking on")
    return str(run_id)


def locked_md5(repo: Path, model_path: str | Path) -> str:
    """The md5 that ``dvc.lock`` records for the stage output ``model_path``."""
    lock = repo / "dvc.lock"
    if not lock.is_file():
        raise ReleaseError("dvc.lock not found: run `dvc repro` and commit dvc.lock first")
    wanted = PurePosixPath(Path(model_path).as_posix())
    stages: dict[str, Any] = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for entry in stages.values():
        for out in entry.get("outs", []):
            if PurePosixPath(out.get("path", "")) == wanted and out.get("md5"):
                return str(out["md5"])
    raise ReleaseError(f"{model_path} is not a stage output in dvc.lock: it cannot be released")


def md5_tag(model_path: str | Path) -> str:
    """Model-version tag holding the checkpoint's DVC hash, e.g. ``dvc.models_unet_md5``."""
    stem = PurePosixPath(Path(model_path).as_posix()).with_suffix("")
    return f"dvc.{'_'.join(part for part in stem.parts if part not in ('.', '/'))}_md5"


def check_release(
    repo: Path, version: str, model_path: str | Path, model_name: str, uri: str, remote: str | None
) -> _Plan:
    """Run every precondition of a release, without changing anything.

    Returns
    -------
    _Plan
        The commit, remote, model version and checkpoint hash to publish.

    Raises
    ------
    ReleaseError
        The first problem found, in words that say what to do.
    """
    check_version(version)
    check_tag_free(repo, version)
    check_clean_tree(repo)
    check_pipeline_current(repo)
    checkpoint = check_model(repo, model_path)
    md5 = locked_md5(repo, model_path)
    resolved = resolve_remote(repo, remote)
    model_version = tracking.model_version_for_run(uri, model_name, checkpoint_run_id(checkpoint))
    return _Plan(git(repo, "rev-parse", "HEAD"), resolved, str(model_version), md5)


# --- publishing -------------------------------------------------------------------------


def push_products(repo: Path, remote: str) -> str:
    """``dvc push -r REMOTE``: every cached stage output; returns DVC's last line of output."""
    lines = dvc(repo, "push", "-r", remote).splitlines()
    return lines[-1] if lines else ""


def create_tag(repo: Path, version: str, commit: str) -> None:
    """Annotated git tag ``version`` on ``commit``."""
    git(repo, "tag", "-a", version, "-m", f"slewdark release {version}", commit)


def push_tag(repo: Path, version: str, remote: str = TAG_REMOTE) -> None:
    """``git push REMOTE VERSION``."""
    git(repo, "push", remote, version)


def release(
    repo: str | Path,
    version: str,
    model_path: str | Path,
    model_name: str,
    uri: str,
    remote: str | None = None,
    push: bool = False,
) -> Release:
    """Check, push the products, promote the model version to ``production``, tag git.

    Parameters
    ----------
    repo
        Repository root.
    version
        Release name, used as the git tag (e.g. ``v1.0.0``).
    model_path
        The pipeline's UNet checkpoint (relative to ``repo``); its ``mlflow_run_id``
        finds the registered model version.
    model_name
        Registered model name in MLflow.
    uri
        Default MLflow tracking URI (``$MLFLOW_TRACKING_URI`` wins).
    remote
        DVC remote name; the repository's default remote when None.
    push
        Also push the tag to :data:`TAG_REMOTE`.

    Returns
    -------
    Release

    Raises
    ------
    ReleaseError
        When a precondition fails (nothing is published) or a publishing step fails
        (the steps before it stay done; the tag is only created once all succeeded).
    """
    root = Path(repo)
    plan = check_release(root, version, model_path, model_name, uri, remote)
    log.info("dvc push -r %s: %s", plan.remote, push_products(root, plan.remote))
    tags = {"git.tag": version, "git.commit": plan.commit, md5_tag(model_path): plan.model_md5}
    tracking.promote_model(uri, model_name, plan.model_version, ALIAS, tags)
    create_tag(root, version, plan.commit)
    if push:
        push_tag(root, version)
    return Release(version, plan.commit, model_name, plan.model_version, ALIAS, plan.remote, push)


def summary(published: Release) -> list[str]:
    """Lines telling the user what was released and what is left to do."""
    lines = [
        f"tag      {published.version} at {published.commit[:12]}",
        f"model    {published.model_name} version {published.model_version} is @{published.alias}",
        f"products pushed to DVC remote {published.remote!r}",
    ]
    if published.tag_pushed:
        lines.append(f"tag pushed to {TAG_REMOTE}")
    else:
        lines.append(f"publish the tag with: git push {TAG_REMOTE} {published.version}")
    return lines
