"""Which code is running: the git revision of the checkout slewdark is imported from.

Package metadata like ``__version__``, beside ``errors.py`` and ``config.py``: any layer
may import it (prediction writes it into every product's ``GITREV``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN_REVISION = "unknown"
"""``GITREV`` of code that does not run from a git checkout (installed from a wheel, or no git)."""


PRODUCT_PATHSPECS = (":(top,exclude)dvc.lock", ":(top,exclude)metrics", ":(top,exclude)plots")
"""Tracked paths that the pipeline writes: not counted as uncommitted changes."""


def package_repository() -> Path | None:
    """The source checkout this slewdark is imported from, or None when installed elsewhere.

    A checkout holds the package as ``<repo>/src/slewdark`` beside ``<repo>/pyproject.toml``
    (an editable install, or ``PYTHONPATH=<repo>/src``), whatever the current folder.
    """
    package = Path(__file__).resolve().parent
    repo = package.parents[1]
    return repo if package.parent.name == "src" and (repo / "pyproject.toml").is_file() else None


def code_revision() -> str:
    """The git revision of the running code (:func:`git_revision` of :func:`package_repository`).

    Not the current folder's: a product made from anywhere names the code that
    made it. :data:`UNKNOWN_REVISION` when the package is not in a git checkout.
    """
    repo = package_repository()
    return UNKNOWN_REVISION if repo is None else git_revision(repo)


def git_revision(repo: str | Path = ".") -> str:
    """``git rev-parse HEAD`` with ``-dirty`` appended for uncommitted changes; ``unknown`` outside git.

    Changes to what the pipeline itself writes into git (``dvc.lock``, ``metrics/``,
    ``plots/``) do not count: every ``dvc repro`` rewrites them, and they are
    outputs, not the code, params or data a run came from.
    """
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *PRODUCT_PATHSPECS],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN_REVISION
    return f"{rev}-dirty" if dirty else rev
