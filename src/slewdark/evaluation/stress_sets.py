"""The stress sets: the held-out simulation varied one way per set (``robustness.sets``)."""

from __future__ import annotations

from slewdark.config import Params, SimulateParams
from slewdark.errors import ParamsError


def stress_simulations(params: Params) -> dict[str, SimulateParams]:
    """The simulation of every stress set, in ``robustness.sets`` order.

    Raises
    ------
    ParamsError
        Naming the first set with an unknown key or a bad value, or when
        ``robustness.seed`` is the training or held-out seed (the same skies).
    """
    seed = params.robustness.seed
    taken = {params.simulate.seed: "simulate.seed", params.heldout.seed: "heldout.seed"}
    if seed in taken:
        raise ParamsError(
            f"robustness.seed ({seed}) must differ from {taken[seed]}: the stress sets need new skies"
        )
    return {name: params.stress_simulation(name) for name in params.robustness.sets}
