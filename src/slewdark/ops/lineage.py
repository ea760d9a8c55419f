"""The content hashes of a stage's inputs as they are when the stage runs (MLflow ``dvc.input.*`` tags).

``dvc.lock`` records a stage's dependency hashes only after the stage has run,
so its entry for the running stage describes the previous run: exactly wrong
when code changed. Here every dependency of the stage, as ``dvc.yaml`` declares
it (``${...}`` resolved from ``params.yaml``), is hashed from what is on disk,
except an output of another stage, whose hash that stage recorded in
``dvc.lock`` when it finished (before this one started), and a path tracked
with ``dvc add``, whose hash its ``.dvc`` file holds (real data is not read
again):

- a file: its MD5, as DVC records files;
- a folder: the MD5 of its files' relative paths and MD5s, sorted (a content
  hash of the tree; DVC's own ``.dir`` hash is built differently);
- a path that does not exist: ``missing``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

MISSING = "missing"
CHUNK = 1 << 20
_REFERENCE = re.compile(r"\$\{([^}]+)\}")


def _dotted(mapping: dict[str, Any], key: str) -> Any:
    """``mapping['a']['b']`` for ``a.b``; KeyError naming the key when absent."""
    value: Any = mapping
    for part in key.strip().split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{key} (referenced in dvc.yaml) is not in params.yaml")
        value = value[part]
    return value


def stage_dependencies(stage: str, root: str | Path = ".") -> list[str]:
    """The deps of ``stage`` in ``root/dvc.yaml``, with ``${key}`` taken from ``root/params.yaml``.

    Raises
    ------
    KeyError
        When the stage is not in ``dvc.yaml`` or a reference is not in ``params.yaml``.
    """
    root = Path(root)
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    if stage not in stages:
        raise KeyError(f"stage {stage} is not in {root / 'dvc.yaml'}")
    params_file = root / "params.yaml"
    params = (yaml.safe_load(params_file.read_text()) or {}) if params_file.exists() else {}
    return [
        _REFERENCE.sub(lambda match: str(_dotted(params, match.group(1))), str(dep))
        for dep in stages[stage].get("deps", [])
    ]


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_md5(folder: Path) -> str:
    """MD5 of the sorted relative paths and MD5s of every file under ``folder``."""
    digest = hashlib.md5(usedforsecurity=False)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()} {file_md5(path)}\n".encode())
    return digest.hexdigest()


def produced_hashes(root: Path) -> dict[str, str]:
    """``{output path: md5}`` of every stage output that ``dvc.lock`` records."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {out["path"]: out.get("md5", "") for entry in stages.values() for out in entry.get("outs", [])}


def added_hash(path: Path) -> str | None:
    """The hash in ``<path>.dvc`` when ``dvc add`` tracks the path, else None."""
    pointer = path.with_name(path.name + ".dvc")
    if not pointer.is_file():
        return None
    outs = (yaml.safe_load(pointer.read_text()) or {}).get("outs", [])
    return str(outs[0].get("md5", "")) if outs else None


def input_hashes(stage: str, root: str | Path = ".") -> dict[str, str]:
    """``{dependency path: hash}`` of a stage's inputs as they are now (module docstring).

    Empty when ``root`` holds no ``dvc.yaml`` or the stage is not in it (a
    command run outside the pipeline).
    """
    root = Path(root)
    dvc_yaml = root / "dvc.yaml"
    if not dvc_yaml.exists() or stage not in (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}):
        return {}
    produced = produced_hashes(root)
    hashes = {}
    for dep in stage_dependencies(stage, root):
        path = root / dep
        tracked = added_hash(path)
        if dep.rstrip("/") in produced:
            hashes[dep] = produced[dep.rstrip("/")]
        elif tracked is not None:
            hashes[dep] = tracked
        elif path.is_file():
            hashes[dep] = file_md5(path)
        elif path.is_dir():
            hashes[dep] = tree_md5(path)
        else:
            hashes[dep] = MISSING
    return hashes
