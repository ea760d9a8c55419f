"""Convolutional autoencoders for normalised detector patches.

Two architectures, chosen by name (``ae.arch``):

``seed``
    The study's network exactly (Keras notation, 3x3 kernels, 'same' padding,
    ReLU, sigmoid output)::

        Conv w0 | MaxPool 2 | Conv w1 | MaxPool 2 | Conv w2 | Conv w2 |
        UpSample 2 | Conv w1 | UpSample 2 | Conv 1

    With ``widths = (16, 32, 64)`` it has 78,977 parameters, whatever the
    patch size. Its bottleneck is a feature map, not a vector, so its
    **latent vector** is the per-channel global mean followed by the
    per-channel global maximum of the bottleneck map (after the second
    ``Conv w2`` and its ReLU): ``2 * w2`` numbers (128 for the study's
    widths). The mean summarises diffuse structure (persistence streaks,
    background level), the maximum keeps small bright features (cosmic rays,
    hot pixels) that a mean would wash out.

``compact``
    The same convolutional encoder (``Conv w0 | pool | Conv w1 | pool |
    Conv w2``) flattened into a dense bottleneck of ``latent_dim`` numbers,
    which **is** the latent vector; the decoder mirrors it (dense, reshape,
    UpSample, Conv w1, UpSample, Conv 1, sigmoid).

Both take (B, 1, P, P) in [0, 1] for any P: a size not divisible by 4 (the
study's 34) is padded by edge replication to the next multiple of 4 and the
reconstruction cropped back. Latent vectors have at most 256 numbers. Weights
and inputs are kept in channels-last memory, as the UNet's are: the CPU's
convolutions, pooling and upsampling run about twice as fast there.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from slewdark.errors import SlewdarkError

ARCHS = ("seed", "compact")
MAX_LATENT = 256


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


class Autoencoder(nn.Module, abc.ABC):
    """Common frame: padding to a multiple of 4, encoder, decoder, cropping.

    Subclasses define :meth:`encode_and_reconstruct`.
    """

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.padded_size = -(-patch_size // 4) * 4

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.padded_size - x.shape[-1]
        padded = functional.pad(x, (0, extra, 0, extra), mode="replicate") if extra else x
        return padded.contiguous(memory_format=torch.channels_last)

    def _crop(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., : self.patch_size, : self.patch_size]

    @abc.abstractmethod
    def encode_and_reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent vectors (B, D) and reconstructions (B, 1, P, P) in one pass."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors (B, D) of patches (B, 1, P, P)."""
        return self.encode_and_reconstruct(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 1, P, P) in [0, 1]."""
        return self.encode_and_reconstruct(x)[1]


class SeedAutoencoder(Autoencoder):
    """The study's autoencoder; latent = per-channel mean and max of the bottleneck map."""

    def __init__(self, patch_size: int, widths: Sequence[int]) -> None:
        super().__init__(patch_size)
        w0, w1, w2 = widths
        self.encoder = nn.Sequential(
            _conv(1, w0), nn.ReLU(), nn.MaxPool2d(2),
            _conv(w0, w1), nn.ReLU(), nn.MaxPool2d(2),
            _conv(w1, w2), nn.ReLU(),
            _conv(w2, w2), nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(w2, w1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(w1, 1), nn.Sigmoid(),
        )  # fmt: skip

    def encode_and_reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent (B, 2 * w2) and reconstruction (B, 1, P, P)."""
        features = self.encoder(self._pad(x))
        latent = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return latent, self._crop(self.decoder(features))


class CompactAutoencoder(Autoencoder):
    """Convolutional encoder to a dense bottleneck of ``latent_dim`` numbers (the latent vector)."""

    def __init__(self, patch_size: int, widths: Sequence[int], latent_dim: int) -> None:
        super().__init__(patch_size)
        w0, w1, w2 = widths
        side = self.padded_size // 4
        self.encoder = nn.Sequential(
            _conv(1, w0), nn.ReLU(), nn.MaxPool2d(2),
            _conv(w0, w1), nn.ReLU(), nn.MaxPool2d(2),
            _conv(w1, w2), nn.ReLU(),
            nn.Flatten(), nn.Linear(w2 * side * side, latent_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, w2 * side * side), nn.ReLU(), nn.Unflatten(1, (w2, side, side)),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(w2, w1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv(w1, 1), nn.Sigmoid(),
        )  # fmt: skip

    def encode_and_reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent (B, latent_dim) and reconstruction (B, 1, P, P)."""
        latent = self.encoder(self._pad(x))
        return latent, self._crop(self.decoder(latent))


def build_autoencoder(arch: str, patch_size: int, widths: Sequence[int], latent_dim: int) -> Autoencoder:
    """Build an autoencoder by name.

    Parameters
    ----------
    arch
        ``seed`` (the study's network) or ``compact`` (dense bottleneck).
    patch_size
        Side of the square input patches in pixels.
    widths
        Channels of the three convolution levels (study: 16, 32, 64).
    latent_dim
        Size of the dense bottleneck (``compact`` only; ``seed``'s latent has
        ``2 * widths[2]`` numbers).

    Returns
    -------
    Autoencoder
        With ``encode(x) -> (B, D)`` and ``forward(x) -> reconstruction``; its
        weights in channels-last memory.

    Raises
    ------
    SlewdarkError
        For an unknown architecture or a latent vector over 256 numbers.
    """
    widths = [int(w) for w in widths]
    if len(widths) != 3 or min(widths) < 1:
        raise SlewdarkError(f"ae.widths must be three positive channel counts, got {widths}")
    if arch == "seed":
        if 2 * widths[2] > MAX_LATENT:
            raise SlewdarkError(f"ae.widths[2] = {widths[2]} gives a seed latent of {2 * widths[2]} > 256")
        return SeedAutoencoder(patch_size, widths).to(memory_format=torch.channels_last)
    if arch == "compact":
        if not 1 <= latent_dim <= MAX_LATENT:
            raise SlewdarkError(f"ae.latent_dim must be in 1..256, got {latent_dim}")
        return CompactAutoencoder(patch_size, widths, latent_dim).to(memory_format=torch.channels_last)
    raise SlewdarkError(f"unknown ae.arch {arch!r}; choose from {', '.join(ARCHS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_autoencoder(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Autoencoder, dict[str, Any]]:
    """Load ``models/ae.pt`` (see ``docs/products.md``).

    Parameters
    ----------
    path
        The checkpoint written by ``slewdark train-ae``.
    device
        Where to put the model.

    Returns
    -------
    model : Autoencoder
        In evaluation mode.
    checkpoint : dict
        The saved dict (``arch`` kwargs, ``patch_size``, ``mlflow_run_id``, ...).
    """
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no autoencoder (run 'slewdark train-ae' first)") from None
    model = build_autoencoder(**checkpoint["arch"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint
