"""MLflow is reached through slewdark.ops.tracking, against a real SQLite store."""

from pathlib import Path

import mlflow
import pytest
import yaml

from slewdark import revision
from slewdark.ops import lineage, tracking


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def test_stage_run_records_params_metrics_and_lineage(store: str, tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"train_ae": {"cmd": "true", "deps": ["data/patches", "code.py"]}}})
    )
    (tmp_path / "code.py").write_text("edited since the last run\n")
    (tmp_path / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "patches": {"deps": [], "outs": [{"path": "data/patches", "md5": "abc.dir"}]},
                    "train_ae": {
                        "deps": [
                            {"path": "data/patches", "md5": "old.dir"},
                            {"path": "code.py", "md5": "old"},
                        ]
                    },
                },
            }
        )
    )
    with tracking.stage_run("train_ae", "sqlite:///ignored.db", "exp", {"ae": {"lr": 0.001}}) as run:
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_metrics({"loss": 0.25}, step=1)
        run_id = run.run_id
    client = mlflow.MlflowClient(store)
    recorded = client.get_run(run_id)
    assert recorded.data.params["ae.lr"] == "0.001"
    assert recorded.data.tags["dvc.stage"] == "train_ae"
    assert recorded.data.tags["dvc.input.data/patches"] == "abc.dir"
    assert recorded.data.tags["dvc.input.code.py"] == lineage.file_md5(tmp_path / "code.py")
    assert "git.commit" in recorded.data.tags
    history = client.get_metric_history(run_id, "loss")
    assert [m.value for m in history] == [0.5, 0.25]
    assert not (tmp_path / "ignored.db").exists()


def test_nested_runs_are_children(store: str) -> None:
    with tracking.stage_run("train_ae", store, "exp") as parent:
        with tracking.stage_run("train_ae", store, "exp", run_name="trial-0", nested=True) as child:
            child_id = child.run_id
        parent_id = parent.run_id
    tags = mlflow.MlflowClient(store).get_run(child_id).data.tags
    assert tags["mlflow.parentRunId"] == parent_id


def test_flatten_nested_params() -> None:
    assert tracking.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_git_revision_is_dirty_for_code_changes_but_not_for_pipeline_products(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("dvc.lock", "params.yaml", "metrics/eval.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "one")
    head = revision.git_revision(tmp_path)
    assert len(head) == 40
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "metrics" / "eval.json").write_text("b\n")
    assert revision.git_revision(tmp_path) == head
    assert revision.git_revision(tmp_path / "metrics") == head  # from a sub-folder too
    (tmp_path / "params.yaml").write_text("b\n")
    assert revision.git_revision(tmp_path) == f"{head}-dirty"
    assert revision.git_revision(tmp_path / "metrics") == f"{head}-dirty"
