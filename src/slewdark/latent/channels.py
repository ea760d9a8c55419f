"""Which patches are clustered together: per horizontal channel, or all at once.

- ``channelwise`` (the study's Solution 2): one group per horizontal band of
  the detector (``channel`` column of ``data/patches/index.csv``); each group
  gets its own UMAP, cluster count and mixture.
- ``merged`` (the study's first next step): every channel's latents in one
  group, ``all``.

Every patch belongs to exactly one group. Cluster ids are made unique over all
groups by giving each group a block of consecutive ids, in group order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from slewdark.errors import SlewdarkError

GroupingMode = Literal["channelwise", "merged"]
MERGED_GROUP = "all"


def patch_groups(channels: np.ndarray, mode: GroupingMode) -> dict[str, np.ndarray]:
    """Split patch rows into clustering groups.

    Parameters
    ----------
    channels
        int (N,), channel number of each patch.
    mode
        ``channelwise`` or ``merged``.

    Returns
    -------
    dict
        ``{group name: sorted row indices}``, groups in increasing channel order;
        the index arrays partition ``0..N-1``.
    """
    channels = np.asarray(channels)
    if mode == "merged":
        return {MERGED_GROUP: np.arange(len(channels))}
    if mode == "channelwise":
        return {str(int(c)): np.flatnonzero(channels == c) for c in np.unique(channels)}
    raise SlewdarkError(f"unknown clustering mode {mode!r} (use channelwise or merged)")


def cluster_offsets(n_clusters: Mapping[str, int]) -> dict[str, int]:
    """Global id of each group's first cluster: consecutive blocks in group order.

    Parameters
    ----------
    n_clusters
        ``{group: number of clusters}``, in group order.

    Returns
    -------
    dict
        ``{group: id of its local component 0}``.
    """
    offsets = np.concatenate([[0], np.cumsum(list(n_clusters.values()))[:-1]]).astype(int)
    return dict(zip(n_clusters, (int(o) for o in offsets), strict=True))
