"""Where the training truth lies against the label stage's bright map, per amplitude factor.

The pseudo-masks keep labels only where the previous exposure was bright
(``label.bright_level`` 1e4 e-, median-filtered, grown: ``label_bright_map``)
and teach every other pixel as clean with weight 1. Run from the repository
root with the ``[0.5, 30]`` run's training data checked out
(``cp metrics/experiments/amplitude_range/after_dvc.lock dvc.lock && dvc checkout``):

    python metrics/experiments/amplitude_range/outside_bright.py
"""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from slewdark.config import load_params
from slewdark.core.brightmap import label_bright_map
from slewdark.evaluation.truth import truth_file
from slewdark.io.fits import read_detector, read_info
from slewdark.io.previous import previous_exposure

TRUTH_LEVEL = 9.0


def main() -> None:
    params = load_params("params.yaml")
    print("| exposure | detector | factor | truth px >= 9 e- | share outside the bright map |")
    print("|---|---|---:|---:|---:|")
    for path in sorted(Path(params.data.train).glob("sd*_????.fits")):
        prev, _ = previous_exposure(read_info(path))
        with fits.open(truth_file(path, params.data.train_truth)) as truth:
            for det in params.simulate.detectors:
                pers = truth[f"DET{det}.PERS"]
                positive = pers.data >= TRUTH_LEVEL
                if prev is None or not positive.any():
                    continue
                bright = label_bright_map(read_detector(prev, det), params.label)
                outside = (positive & ~bright).sum() / positive.sum()
                factor = pers.header["SIMPAMP"]
                print(f"| {path.stem} | {det} | {factor:.2f} | {positive.sum()} | {outside:.3f} |")


if __name__ == "__main__":
    main()
