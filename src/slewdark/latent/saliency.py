"""Gradient saliency: which input pixels move the latent representation of a patch.

For a patch ``x`` and its latent vector ``z = encode(x)``, the saliency of a
pixel is ``|d s / d x|`` with ``s = ||z||`` (the whole latent vector) or
``s = z[unit]`` (one latent unit). Each map is scaled to a maximum of 1, so
maps of different patches are comparable in shape.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def latent_saliency(
    model: nn.Module, patches: np.ndarray, unit: int | None = None, device: str = "cpu"
) -> np.ndarray:
    """Saliency maps of patches for a model with ``encode(x) -> (B, D)``.

    Parameters
    ----------
    model
        Any torch module with an ``encode`` method taking (B, 1, P, P).
    patches
        (B, P, P) patches in [0, 1].
    unit
        Latent unit to explain; None explains the norm of the latent vector.
    device
        Torch device for the computation.

    Returns
    -------
    numpy.ndarray
        float32 (B, P, P), each map in [0, 1].
    """
    model = model.to(device).eval()
    x = torch.as_tensor(np.asarray(patches, dtype=np.float32), device=device)[:, None].requires_grad_(True)
    z = model.encode(x)
    score = z.norm(dim=1) if unit is None else z[:, unit]
    (gradient,) = torch.autograd.grad(score.sum(), x)
    maps = gradient.abs()[:, 0].detach().cpu().numpy()
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return (maps / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)
