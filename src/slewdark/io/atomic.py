"""Write-to-temporary-then-rename, so a killed process never leaves a half product.

A temporary file is hidden and names its final file and the writing process:
``.<name>.<pid>.<random>.tmp`` beside ``<name>``. A run killed by SIGKILL cannot
remove it; :func:`remove_stale_temporaries` does, in a later run, once the
process that wrote it is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
"""``.<name>.<pid>.<random>.tmp``: the temporary file of :func:`atomic_path`."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same folder, so the final ``os.replace`` is
    atomic on POSIX file systems. On any exception (and on SIGTERM, when the
    caller turns it into one) the temporary file is removed and an existing
    ``path`` is left untouched.

    Parameters
    ----------
    path
        Final destination of the file.

    Yields
    ------
    Path
        Where the caller writes the content.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.{os.getpid()}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder: str | Path, final_suffix: str) -> list[Path]:
    """Remove the temporary files that killed runs left in ``folder``.

    Only temporary files of :func:`atomic_path` whose final name ends with
    ``final_suffix`` are considered, and only those whose writing process no
    longer exists: a run writing into the same folder right now keeps its own.

    Parameters
    ----------
    folder
        Output folder; nothing happens when it does not exist.
    final_suffix
        E.g. ``".mask.fits"``.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(f".*{final_suffix}.*{TEMP_SUFFIX}")):
        match = TEMP_NAME.match(path.name)
        if match and match.group("name").endswith(final_suffix) and not _alive(int(match.group("pid"))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
