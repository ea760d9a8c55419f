"""The ``simulate`` and ``simulate_heldout`` stages: a simulated data set with its truth."""

from __future__ import annotations

import logging
from pathlib import Path

from slewdark.config import Params
from slewdark.simulate.dataset import simulate_dataset

log = logging.getLogger(__name__)


def run_simulate(params: Params, section: str, companion_truth: bool) -> list[Path]:
    """Simulate the ``simulate`` or ``heldout`` set of ``params``.

    Parameters
    ----------
    params
        The run's parameters.
    section
        ``simulate`` (the training set) or ``heldout``.
    companion_truth
        Write the truth beside the exposures (the data contract's companion layout)
        instead of in the set's ``truth_out``.

    Returns
    -------
    list of Path
        The exposures written.
    """
    config = params.simulate if section == "simulate" else params.heldout_simulation()
    if companion_truth:
        config = config.model_copy(update={"truth_out": None})
    written = simulate_dataset(config, params.workers)
    log.info("wrote %d exposures to %s", len(written), config.out)
    return written
