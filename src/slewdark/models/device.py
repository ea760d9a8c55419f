"""Where the networks run: the ``device`` setting resolved to a torch device."""

from __future__ import annotations

import torch

from slewdark.errors import SlewdarkError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SlewdarkError("device 'cuda' requested but no CUDA device is available (use auto or cpu)")
    return torch.device(name)
