"""The segmentation UNet: a thin factory over ``segmentation_models_pytorch.Unet``.

Every choice is an argument, so the architecture recorded in ``models/unet.pt``
(``arch``) rebuilds the same network: ``build_unet(**checkpoint["arch"])``.
Weights are never downloaded (``encoder_weights=None``): slew darks are not
ImageNet pictures, and nothing may reach the network at run time.

Why a narrow encoder
--------------------
A full-size resnet18 UNet costs about 80 kMAC per pixel and runs at 0.3-0.7
Mpix/s on two CPU cores: a 16-detector exposure (66.6 Mpix) takes minutes. The
task is simple in shape (faint streaks and spots a few pixels wide in noise), so
a timm ResNet-18 (``tu-resnet18``) with its stage widths cut to
``encoder_width * (1, 2, 4, 8)`` and a narrow decoder keeps the receptive field
and the skip connections at a small fraction of the cost (see
``benchmarks/bench_predict.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

log = logging.getLogger(__name__)

TIMM_PREFIX = "tu-"


def build_unet(
    encoder_name: str,
    encoder_depth: int,
    decoder_channels: Sequence[int],
    in_channels: int = 1,
    encoder_width: int | None = None,
) -> nn.Module:
    """Build a randomly initialised single-class UNet that outputs logits.

    Parameters
    ----------
    encoder_name
        smp encoder name (``resnet18``) or a timm one with the ``tu-`` prefix
        (``tu-resnet18``).
    encoder_depth
        Number of encoder stages (3-5); the output stride is ``2**encoder_depth``,
        so tile sides must be multiples of it.
    decoder_channels
        Channels of the decoder blocks, one per encoder stage, deepest first.
    in_channels
        1: the slew dark; 2: the slew dark and the previous exposure.
    encoder_width
        For timm ResNets only: channels of the stem and first stage; stage ``i``
        has ``encoder_width * 2**i``. None keeps the encoder's own widths.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, in_channels, H, W)`` to logits ``(B, 1, H, W)``.

    Raises
    ------
    ValueError
        When the depth and decoder channels disagree, or a width is asked of a
        non-timm encoder.
    """
    if len(decoder_channels) != encoder_depth:
        raise ValueError(
            f"decoder_channels needs one entry per encoder stage ({encoder_depth}), "
            f"got {list(decoder_channels)}"
        )
    extra: dict[str, object] = {}
    if encoder_width is not None:
        if not encoder_name.startswith(TIMM_PREFIX):
            raise ValueError(f"encoder_width needs a timm encoder ('{TIMM_PREFIX}...'), got {encoder_name!r}")
        extra = {"channels": tuple(encoder_width * 2**i for i in range(4)), "stem_width": encoder_width}
    return smp.Unet(
        encoder_name=encoder_name,
        encoder_depth=encoder_depth,
        encoder_weights=None,
        decoder_channels=tuple(decoder_channels),
        in_channels=in_channels,
        classes=1,
        **extra,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fuse_for_inference(network: nn.Module) -> nn.Module:
    """An inference copy of a UNet with every batch norm folded into its convolution.

    Folding removes a pass over every feature map (about 15 % of the CPU time
    of the narrow UNet); the outputs agree with the original to float32
    rounding. The copy is channels-last and in eval mode; the original is
    untouched (its ``state_dict`` is what checkpoints hold). An encoder that
    ``torch.fx`` cannot trace is returned unfused.

    Parameters
    ----------
    network
        The trained UNet.

    Returns
    -------
    torch.nn.Module
        For inference only (its parameters differ from the checkpoint's).
    """
    network = network.eval()
    try:
        fused = fuse(network)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError, RuntimeError) as error:
        log.info("batch norms left unfused (%s)", error)
        fused = network
    return fused.eval().to(memory_format=torch.channels_last)
