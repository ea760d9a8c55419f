"""The dark's timing for the law's input channel, nominal where its header lacks it.

The persistence law integrates its decay ``(t / 1000 s)^-gamma`` over the
dark, from ``TSINCE`` to ``TSINCE + EXPTIME``: one factor for every pixel of
the dark, which the fit of the law to the dark absorbs
(:mod:`slewdark.core.law_fit`). So a dark whose header lacks either keyword
keeps the third input channel, computed with a nominal value in its place,
where it would otherwise be empty and the model would flag nothing
(``metrics/experiments/no_prevfile/``). The value still matters where the
fit selects its pixels (``law_fit.min_predicted``) and where too few pixels
qualify and the lab law is used unscaled (``law_fit.min_pixels``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from slewdark.io.fits import ExposureInfo

log = logging.getLogger(__name__)

NOMINAL_TSINCE = 60.0
"""s: the shared brief's reference case, a dark starting 60 s after the exposure."""
NOMINAL_EXPTIME = 100.0
"""s: the shared brief's reference case, a 100 s dark."""


def input_timing(
    path: Path, info: ExposureInfo, in_channels: int, prev_path: Path | None
) -> tuple[tuple[float | None, float | None], bool]:
    """The ``TSINCE`` and ``EXPTIME`` a model's input is built with, nominal where missing.

    Parameters
    ----------
    path
        The exposure (named in the warning).
    info
        Its header values.
    in_channels
        The model's input channels; only a three-channel model has the law's.
    prev_path
        The previous exposure the model reads, None when none (no law channel then).

    Returns
    -------
    timing : tuple
        ``(TSINCE, EXPTIME)`` in seconds: the header's, with the nominal value
        for a missing one when the law's channel is built; the header's as
        they are (None where missing) otherwise.
    nominal : bool
        Whether the law's channel uses a nominal value (a warning then names
        the missing keywords).
    """
    header = (info.tsince, info.exptime)
    missing = [name for name, value in zip(("TSINCE", "EXPTIME"), header, strict=True) if value is None]
    if in_channels < 3 or prev_path is None or not missing:
        return header, False
    log.warning(
        "%s: no %s in the header: the law's input channel uses the nominal %g s after the exposure "
        "and %g s of dark (the fit to the dark absorbs the law's time factor)",
        path,
        " or ".join(missing),
        NOMINAL_TSINCE,
        NOMINAL_EXPTIME,
    )
    tsince = NOMINAL_TSINCE if info.tsince is None else info.tsince
    exptime = NOMINAL_EXPTIME if info.exptime is None else info.exptime
    return (tsince, exptime), True
