"""The one place that talks to MLflow.

Every stage records its run through :func:`stage_run`, which sets the tracking
store (a local SQLite file unless ``MLFLOW_TRACKING_URI`` says otherwise), the
experiment, and the lineage tags that let a product be traced back to its data,
code and parameters. MLflow is imported lazily, so the rest of the package (and
``slewdark predict`` with a model path) works without it being reachable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"


def tracking_uri(default: str) -> str:
    """The tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``default``."""
    return os.environ.get(ENV_URI) or default


def git_revision(repo: str | Path = ".") -> str:
    """``git rev-parse HEAD`` with ``-dirty`` appended for uncommitted changes; ``unknown`` outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def input_hashes(stage: str, lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """Content hashes of a stage's inputs as DVC recorded them.

    A dependency that is another stage's output takes that output's hash from
    ``dvc.lock`` (written when the upstream stage finished); otherwise the
    stage's own last recorded dependency hash is used.

    Parameters
    ----------
    stage
        Stage name in ``dvc.yaml``.
    lock_path
        The lock file.

    Returns
    -------
    dict
        ``{dependency path: md5}``; empty when there is no lock yet.
    """
    lock_file = Path(lock_path)
    if not lock_file.exists():
        return {}
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    produced = {out["path"]: out.get("md5", "") for entry in stages.values() for out in entry.get("outs", [])}
    own_deps = stages.get(stage, {}).get("deps", [])
    return {dep["path"]: produced.get(dep["path"], dep.get("md5", "")) for dep in own_deps}


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to dotted keys, as MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


class StageRun:
    """A live MLflow run: thin methods so stages never import MLflow."""

    def __init__(self, run: Any) -> None:
        self._run = run

    @property
    def run_id(self) -> str:
        """The MLflow run id."""
        return self._run.info.run_id

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Log (nested) params as flat dotted keys."""
        import mlflow

        flat = {k: str(v)[:6000] for k, v in flatten(params, prefix).items()}
        mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics, optionally at a step (epoch)."""
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file (figure, table, metrics JSON) into the run's artifacts."""
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_figure(self, figure: Any, name: str) -> None:
        """Store a matplotlib figure as an artifact named ``name``."""
        import mlflow

        mlflow.log_figure(figure, name)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add tags to the run."""
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_torch_model(self, model: Any, name: str, registered_model: str | None = None) -> str | None:
        """Log a torch module as an MLflow model; register it when a name is given.

        Returns
        -------
        str or None
            The registered model version, if registered.
        """
        import mlflow.pytorch

        info = mlflow.pytorch.log_model(
            model, name=name, registered_model_name=registered_model, pip_requirements=[]
        )
        version = getattr(info, "registered_model_version", None)
        return None if version is None else str(version)


@contextlib.contextmanager
def stage_run(
    stage: str,
    uri: str,
    experiment: str,
    params: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    nested: bool = False,
) -> Iterator[StageRun]:
    """Open an MLflow run for a pipeline stage, tagged with its lineage.

    Parameters
    ----------
    stage
        DVC stage name (tag ``dvc.stage``).
    uri
        Default tracking URI (``$MLFLOW_TRACKING_URI`` wins).
    experiment
        MLflow experiment name.
    params
        Parameters used by the stage, logged as flat params.
    run_name
        Display name; defaults to the stage name.
    nested
        Open as a child of the active run (Optuna trials).

    Yields
    ------
    StageRun
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(uri))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name or stage, nested=nested) as run:
        handle = StageRun(run)
        tags = {"dvc.stage": stage, "git.commit": git_revision()}
        tags.update({f"dvc.input.{path}": md5 for path, md5 in input_hashes(stage).items()})
        handle.set_tags(tags)
        if params:
            handle.log_params(params)
        log.info("MLflow run %s (%s) in %s", handle.run_id, stage, tracking_uri(uri))
        yield handle
