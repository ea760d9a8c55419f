"""How a detector becomes network input: the stored normalisation and the bright-pixel veto."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from slewdark.core.law_fit import LawFitSettings
from slewdark.core.persistence_law import PersistenceModel
from slewdark.core.scaling import Scaling


@dataclass(frozen=True)
class Normalisation:
    """How detectors become network input.

    Attributes
    ----------
    scaling
        The slew dark's noise scaling.
    prev_full_scale
        Previous-exposure fluence (e-) mapped to 1 (second channel only).
    law
        The persistence law that makes the third channel (the persistence it
        predicts for the dark, scaled to the dark); None for one- and two-channel models.
    law_fit
        How the law is scaled to each dark (:mod:`slewdark.core.law_fit`); None with ``law``.
    """

    scaling: Scaling
    prev_full_scale: float
    law: PersistenceModel | None = None
    law_fit: LawFitSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the checkpoint."""
        return {
            "scaling": self.scaling.to_dict(),
            "prev_full_scale": self.prev_full_scale,
            "law": None if self.law is None else self.law.to_dict(),
            "law_fit": None if self.law_fit is None else self.law_fit.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalisation:
        """From the checkpoint's ``normalisation`` entry (older ones have no ``law`` and ``law_fit``)."""
        law, law_fit = values.get("law"), values.get("law_fit")
        return cls(
            Scaling.from_dict(values["scaling"]),
            float(values["prev_full_scale"]),
            None if law is None else PersistenceModel.from_dict(law),
            None if law_fit is None else LawFitSettings.from_dict(law_fit),
        )


@dataclass(frozen=True)
class BrightVeto:
    """Pixels too bright to be persistence, removed from the mask after the threshold.

    Persistence is a few to a few tens of electrons per pixel (the Fermi law of
    Sanchez et al. 2023 gives at most about 30 e- over 300 s starting 30 s after
    a saturating exposure, a few times that for the densest traps); cosmic rays,
    snowballs and hot pixels reach hundreds to tens of thousands. A pixel above
    ``sigma`` noise units, and its neighbours within ``grow`` px (inter-pixel
    capacitance, charge diffusion), is not flagged for what the network says of
    it. A hit on a persistence trace hides the persistence under it, not the
    trace: with ``fill``, a vetoed pixel is flagged when the morphological
    closing of the unvetoed mask by a ``(2 fill + 1)``-px square covers it,
    i.e. when it lies in a gap of the mask that closing bridges. With
    ``spare_saturated``, pixels within that many px of where the previous
    exposure saturated are not vetoed: persistence there can be as bright
    as a hit (the Euclid ground tests find amplitudes up to a few tenths of
    a per cent of the fluence), and the network, which sees that exposure,
    decides them. With ``spare_predicted``, pixels where the law scaled to the
    dark (the third input channel) predicts at least that many of the
    channel's units (``law_fit.mask_electrons``; older checkpoints: noise
    sigmas) are not vetoed either: persistence the law expects to be bright is not
    too bright to be persistence (a detector whose traps are tens of times the
    lab's, a near-saturated trace just short of the SATUR bit).

    Attributes
    ----------
    sigma
        Noise units (of :mod:`slewdark.core.scaling`) above which a pixel is vetoed.
    grow
        px: the vetoed pixels are grown by this (8-connected).
    fill
        px: half-side of the closing's square; 0 = vetoed pixels are never flagged.
    spare_saturated
        px around the previous exposure's saturated pixels where nothing is
        vetoed; None = the veto acts everywhere.
    spare_predicted
        Units of the third channel (the mask level in electrons, or noise
        sigmas without it) of the law's scaled prediction from which nothing
        is vetoed; None = none spared for it.
    """

    sigma: float
    grow: int
    fill: int = 0
    spare_saturated: int | None = None
    spare_predicted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the checkpoint."""
        return {
            "sigma": self.sigma,
            "grow": self.grow,
            "fill": self.fill,
            "spare_saturated": self.spare_saturated,
            "spare_predicted": self.spare_predicted,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> BrightVeto | None:
        """From the checkpoint's ``veto`` entry (None: no veto; older ones: no fill, nothing spared)."""
        if values is None:
            return None
        spare = values.get("spare_saturated")
        predicted = values.get("spare_predicted")
        return cls(
            float(values["sigma"]),
            int(values["grow"]),
            int(values.get("fill", 0)),
            None if spare is None else int(spare),
            None if predicted is None else float(predicted),
        )

    def vetoed(self, image01: np.ndarray, scaling: Scaling) -> np.ndarray:
        """Boolean map of the vetoed pixels of a scaled slew dark (channel 0 of :func:`detector_input`).

        The squashing is monotonic, so ``z > sigma`` is ``image01 > squash(sigma)``.
        """
        return _grown(image01 > scaling.squash(self.sigma), self.grow)

    def apply(
        self,
        mask: np.ndarray,
        image01: np.ndarray,
        scaling: Scaling,
        previous01: np.ndarray | None = None,
        predicted01: np.ndarray | None = None,
    ) -> np.ndarray:
        """The mask with the vetoed pixels removed, or filled from their surroundings.

        Parameters
        ----------
        mask
            Boolean mask before the veto (the thresholded probability).
        image01
            The scaled slew dark (channel 0 of :func:`detector_input`).
        scaling
            Its scaling.
        previous01
            The previous-exposure channel (channel 1 of :func:`detector_input`,
            1 where it saturated), or None without one.
        predicted01
            The law channel (channel 2 of :func:`detector_input`), or None without one.

        Returns
        -------
        ndarray
            Boolean mask: unvetoed pixels as in ``mask``; vetoed pixels False,
            or with ``fill`` flagged where the closed mask covers them.
        """
        vetoed = self.vetoed(image01, scaling)
        if self.spare_saturated is not None and previous01 is not None:
            vetoed &= ~_grown(previous01 >= 1.0, self.spare_saturated)
        if self.spare_predicted is not None and predicted01 is not None:
            vetoed &= predicted01 < scaling.squash_positive(self.spare_predicted)
        kept = mask & ~vetoed
        if self.fill == 0 or not vetoed.any():
            return kept
        side = 2 * self.fill + 1
        padded = np.pad(kept, self.fill)
        closed = ndimage.binary_closing(padded, structure=np.ones((side, side), bool))
        return kept | (vetoed & closed[self.fill : -self.fill, self.fill : -self.fill])


def _grown(pixels: np.ndarray, grow: int) -> np.ndarray:
    """``pixels`` grown by ``grow`` px (8-connected)."""
    if grow == 0 or not pixels.any():
        return pixels
    return ndimage.binary_dilation(pixels, structure=np.ones((3, 3), bool), iterations=grow)
