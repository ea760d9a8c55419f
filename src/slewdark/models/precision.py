"""Reduced precision where the hardware runs it natively: one rule for training and inference."""

from __future__ import annotations

import torch


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype for ``device``, or None for float32.

    bfloat16 on a CPU with native support (oneDNN reports it: AVX512-BF16 or
    AMX), float16 on CUDA; None when disabled or when the CPU would emulate
    bfloat16 (slower than float32). Training and prediction use the same rule,
    so a network is trained in the precision it predicts in.
    """
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None
