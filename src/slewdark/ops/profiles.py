"""Named parameter profiles: sets of ``params.yaml`` overrides for ``dvc exp run -S``.

A profile is a YAML mapping of dotted keys to values in ``profiles/<name>.yaml``
(``tiny``: minutes-long smoke run; ``full``: the study's scale, for a GPU machine).
:func:`dvc_set_args` turns it into ``-S key=value`` arguments after checking that
the overridden parameters still validate, so a bad profile fails before DVC starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slewdark.config import load_params
from slewdark.errors import ParamsError

PROFILE_DIR = Path("profiles")


def load_profile(name: str, folder: str | Path = PROFILE_DIR) -> dict[str, Any]:
    """Read ``<folder>/<name>.yaml``: a flat mapping of dotted parameter keys to values.

    Raises
    ------
    ParamsError
        If the profile is missing or not a flat mapping.
    """
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise ParamsError(f"{path}: no such profile (known: {', '.join(known) or 'none'})")
    overrides = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(overrides, dict) or any(isinstance(v, dict) for v in overrides.values()):
        raise ParamsError(f"{path}: a profile is a flat mapping of dotted keys (a.b.c: value)")
    return overrides


def dvc_set_args(name: str, params_path: str | Path, folder: str | Path = PROFILE_DIR) -> list[str]:
    """``-S key=value`` arguments of a profile for ``dvc exp run``, validated first.

    Parameters
    ----------
    name
        Profile name (file stem in ``folder``).
    params_path
        The ``params.yaml`` the profile applies to.
    folder
        Where profiles live.
    """
    overrides = load_profile(name, folder)
    load_params(params_path, overrides)
    args = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        args += ["-S", f"{key}={text.removesuffix('...').strip()}"]
    return args
