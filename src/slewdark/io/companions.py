"""The companion files of an exposure: ``<stem>.<kind>.fits`` beside it or in another folder."""

from __future__ import annotations

from pathlib import Path


def companion_path(exposure: str | Path, kind: str, folder: str | Path | None = None) -> Path:
    """Where the ``<stem>.<kind>.fits`` companion of an exposure lies.

    Parameters
    ----------
    exposure
        The slew dark ``<stem>.fits``.
    kind
        The companion: ``prev`` (the simulator's previous exposure), ``truth``.
    folder
        Folder of the companions; None: beside the exposure, the data contract's layout.

    Returns
    -------
    Path
        ``folder/<stem>.<kind>.fits``, or ``<stem>.<kind>.fits`` beside the exposure.
    """
    path = Path(exposure)
    name = path.name.removesuffix(".fits") + f".{kind}.fits"
    return path.with_name(name) if folder is None else Path(folder) / name
