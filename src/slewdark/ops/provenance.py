"""Which source files a piece of slewdark runs, and a fingerprint of their content.

A resumable training or an Optuna study is found again by a fingerprint of its
data and settings (:mod:`slewdark.training.fit`, :mod:`slewdark.stages.train_ae`,
:mod:`slewdark.stages.train_unet`). The code belongs in it too: after an edit of the
loss or the network, ``dvc repro`` must train again, not pick up the finished
checkpoint of the old code. :func:`code_fingerprint` hashes the source files of
the modules a stage imports, found statically (:func:`import_closure`):
``slewdark`` imports at the top of a module and inside functions (both may run),
with the ``__init__.py`` of every package on the way. The same graph checks
that every stage of ``dvc.yaml`` lists the files it runs (``tests/test_dvc_deps.py``).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "slewdark"
SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds the ``slewdark`` package."""


def module_file(name: str) -> Path | None:
    """The source file of a ``slewdark`` module or package; None for a name that is neither."""
    base = SOURCE_ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(tree: ast.AST) -> set[str]:
    """``slewdark`` modules named by the imports of a syntax tree.

    ``from slewdark.pkg import name`` counts ``slewdark.pkg.name`` when that is a
    module; relative imports are not used in the package.
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if module_file(name) is not None}


def _with_packages(name: str) -> set[str]:
    """A module and every package above it (their ``__init__`` runs on import)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def _imports_of(name: str) -> frozenset[str]:
    """The ``slewdark`` modules one module imports (parsed once per process)."""
    return frozenset(imported_modules(ast.parse(module_file(name).read_text())))


def import_closure(roots: Iterable[str]) -> list[Path]:
    """Source files of ``roots`` and of every ``slewdark`` module reachable from them, sorted.

    Raises
    ------
    ValueError
        When a root is not a ``slewdark`` module.
    """
    todo: set[str] = set()
    for root in roots:
        if module_file(root) is None:
            raise ValueError(f"{root} is not a module of the {PACKAGE} package")
        todo |= _with_packages(root)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for found in _imports_of(name):
            todo |= _with_packages(found) - seen
    return sorted(module_file(name) for name in seen)


def code_fingerprint(*roots: str) -> str:
    """SHA-256 of the paths and contents of :func:`import_closure` of ``roots``."""
    digest = hashlib.sha256()
    for path in import_closure(roots):
        digest.update(str(path.relative_to(SOURCE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
