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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from slewdark.errors import SlewdarkError
from slewdark.ops.lineage import input_hashes
from slewdark.revision import git_revision

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"


def tracking_uri(default: str) -> str:
    """The tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``default``."""
    return os.environ.get(ENV_URI) or default


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

    def log_torch_model(
        self, model: Any, name: str, registered_model: str | None = None, input_example: Any = None
    ) -> str | None:
        """Log a torch module as an MLflow model; register it when a name is given.

        ``input_example`` (a numpy batch) is traced into MLflow's default
        ``pt2`` format and gives the model a signature; without one the module
        is pickled.

        Returns
        -------
        str or None
            The registered model version, if registered.
        """
        import mlflow.pytorch

        info = mlflow.pytorch.log_model(
            model,
            name=name,
            registered_model_name=registered_model,
            pip_requirements=[],
            input_example=input_example,
            serialization_format="pickle" if input_example is None else "pt2",
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


def model_version_for_run(uri: str, name: str, run_id: str) -> str:
    """The version of registered model ``name`` that run ``run_id`` logged.

    Raises
    ------
    SlewdarkError
        When the run registered no version of that model.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(uri))
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if not versions:
        raise SlewdarkError(f"no version of registered model {name!r} comes from MLflow run {run_id}")
    return max(versions, key=lambda v: int(v.version)).version


def promote_model(uri: str, name: str, version: str, alias: str, tags: Mapping[str, str]) -> None:
    """Point ``alias`` (e.g. ``production``) at ``version`` and tag that version."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(uri))
    client.set_registered_model_alias(name, alias, version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("%s version %s is now @%s", name, version, alias)


CHECKPOINT_ARTIFACT = "checkpoint/unet.pt"


def download_registered_checkpoint(model_uri: str, uri: str | None = None) -> Path:
    """Download the UNet checkpoint of a registered model version.

    ``train-unet`` stores ``models/unet.pt`` as the run artifact
    :data:`CHECKPOINT_ARTIFACT` of the run that registered the version; this
    resolves ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to that run and
    fetches the file (into MLflow's temporary download folder).

    Parameters
    ----------
    model_uri
        Registry URI.
    uri
        Default tracking URI (``$MLFLOW_TRACKING_URI`` wins); None requires the
        environment variable.

    Returns
    -------
    Path
        The downloaded checkpoint.

    Raises
    ------
    SlewdarkError
        When the URI is malformed, no tracking store is known, or the version
        or its checkpoint does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    reference = model_uri.removeprefix("models:/")
    name, sep_alias, alias = reference.partition("@")
    if not sep_alias:
        name, _, version = reference.partition("/")
    store = os.environ.get(ENV_URI) or uri
    if not store or not name or not (alias if sep_alias else version):
        raise SlewdarkError(
            f"{model_uri}: need models:/NAME@ALIAS or models:/NAME/VERSION and a tracking store "
            f"(params.yaml tracking.uri or ${ENV_URI})"
        )
    client = mlflow.MlflowClient(store)
    try:
        if sep_alias:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, version)
        path = mlflow.artifacts.download_artifacts(
            run_id=found.run_id, artifact_path=CHECKPOINT_ARTIFACT, tracking_uri=store
        )
    except MlflowException as error:
        problem = f"cannot fetch the checkpoint from {store}: {error.message}"
        raise SlewdarkError(f"{model_uri}: {problem}") from None
    log.info("%s is version %s of run %s", model_uri, found.version, found.run_id)
    return Path(path)
