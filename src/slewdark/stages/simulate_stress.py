"""The stress sets: the held-out simulation varied one way per set (``simulate_stress`` stage).

Each set of ``robustness.sets`` is the held-out simulation
(:meth:`~slewdark.config.Params.heldout_simulation`) with a few ``simulate``
keys replaced, and its own seed, size and folder (``robustness.out/<set>``);
:mod:`slewdark.stages.robustness` scores them. Kept apart from the scoring so that the
simulation of the sets depends on the simulator only.
"""

from __future__ import annotations

import logging

from slewdark.config import Params
from slewdark.evaluation.stress_sets import stress_simulations
from slewdark.simulate.dataset import simulate_datasets

log = logging.getLogger(__name__)


def run_simulate_stress(params: Params) -> dict[str, int]:
    """Run the ``simulate_stress`` stage: simulate every set into ``robustness.out/<set>``.

    The exposures of all sets are made side by side on ``workers`` local Dask processes.

    Returns
    -------
    dict
        Set name to the number of exposures written.
    """
    simulations = stress_simulations(params)
    for name, simulation in simulations.items():
        log.info("stress set %s: %s -> %s", name, params.robustness.sets[name] or "held-out", simulation.out)
    written = simulate_datasets(list(simulations.values()), params.workers)
    return {name: len(files) for name, files in zip(simulations, written, strict=True)}
