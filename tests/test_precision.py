"""Mixed precision: one rule for training and prediction, bfloat16 on CPUs that run it natively."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slewdark.models.precision import autocast_dtype
from slewdark.training.fit import FitConfig, fit

NATIVE_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_the_rule_follows_the_hardware() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, enabled=False) is None
    assert autocast_dtype(cpu, enabled=True) == (torch.bfloat16 if NATIVE_BF16 else None)
    assert autocast_dtype(torch.device("cuda"), enabled=True) == torch.float16
    assert autocast_dtype(torch.device("cuda"), enabled=False) is None


@pytest.mark.parametrize("amp", [False, True])
def test_training_convolves_in_the_precision_of_the_rule(amp: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    seen: set[torch.dtype] = set()
    model[0].register_forward_hook(lambda _module, _inputs, output: seen.add(output.dtype))
    x = torch.rand(16, 1, 8, 8)
    y = x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()

    def loss(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return ((net(batch[0]).float() - batch[1]) ** 2).mean()

    result = fit(
        model,
        torch.optim.Adam(model.parameters(), lr=0.01),
        lambda epoch: [(x, y)],
        lambda: [(x, y)],
        loss,
        loss,
        FitConfig(epochs=5, patience=5, lr_patience=5, lr_factor=0.5, min_lr=1e-5, amp=amp),
        torch.device("cpu"),
    )
    expected = torch.bfloat16 if amp and NATIVE_BF16 else torch.float32
    assert seen == {expected}
    assert all(value.dtype == torch.float32 for value in result.best_state.values()), "weights stay float32"
    assert result.history[-1].train_loss < result.history[0].train_loss
