"""Every stage of dvc.yaml lists every source file its command runs, so a code edit reruns it.

A stage runs ``slewdark/cli.py`` with its module-level imports and the imports of
its sub-command's handler (not those of the other handlers), then everything
these import (:func:`slewdark.ops.provenance.import_closure`). A dep that is a
folder covers every file under it.
"""

from __future__ import annotations

import ast
import inspect
import shlex
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from slewdark import cli
from slewdark.ops import provenance
from slewdark.ops.provenance import SOURCE_ROOT, code_fingerprint, import_closure, imported_modules

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_sources(cmd: str) -> set[Path]:
    """Source files a ``slewdark <sub-command> ...`` stage command runs."""
    command = shlex.split(cmd)[1]
    cli_tree = ast.parse(Path(cli.__file__).read_text())
    statements = [node for node in cli_tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    module_level = imported_modules(ast.Module(body=statements, type_ignores=[]))
    handler = ast.parse(textwrap.dedent(inspect.getsource(cli.COMMANDS[command])))
    return {Path(cli.__file__), *import_closure(module_level | imported_modules(handler))}


def covered(path: Path, deps: list[str]) -> bool:
    """Whether a dep of the stage is the file or a folder above it."""
    return any(path == REPO / dep or (REPO / dep) in path.parents for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_lists_every_source_file_it_runs(stage: str) -> None:
    deps = [str(dep) for dep in STAGES[stage].get("deps", [])]
    sources = stage_sources(STAGES[stage]["cmd"])
    missing = sorted(str(path.relative_to(REPO)) for path in sources if not covered(path, deps))
    assert not missing, f"dvc.yaml stage {stage} runs these but does not list them in deps: {missing}"


def test_the_import_graph_follows_imports_inside_functions() -> None:
    sources = stage_sources("slewdark predict data --out out")
    package = SOURCE_ROOT / "slewdark"
    assert package / "inference" / "predict.py" in sources  # imported inside the handler
    assert package / "inference" / "unet_input.py" in sources  # imported by predict.py
    assert package / "core" / "scaling.py" in sources  # imported by unet_input.py
    assert package / "io" / "__init__.py" in sources  # the package of io.fits
    assert package / "stages" / "cluster.py" not in sources  # only another handler imports it


@pytest.fixture
def fresh_import_cache() -> Iterator[None]:
    """The parsed-imports cache is emptied before and after (the test swaps the source root)."""
    provenance._imports_of.cache_clear()
    yield
    provenance._imports_of.cache_clear()


@pytest.mark.usefixtures("fresh_import_cache")
def test_code_fingerprint_changes_with_any_imported_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "slewdark"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "stage.py").write_text("def run():\n    from slewdark.sub import loss\n")
    (package / "sub" / "loss.py").write_text("WEIGHT = 1\n")
    (package / "other.py").write_text("WEIGHT = 2\n")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path)
    before = code_fingerprint("slewdark.stage")
    (package / "other.py").write_text("WEIGHT = 3\n")  # not imported by the stage
    assert code_fingerprint("slewdark.stage") == before
    (package / "sub" / "loss.py").write_text("WEIGHT = 2\n")  # imported inside a function
    assert code_fingerprint("slewdark.stage") != before
