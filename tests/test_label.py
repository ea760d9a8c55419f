"""The label stage: bright places of the previous exposure, overrides, and a tiny synthetic case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from scipy import ndimage

from slewdark.config import Params, load_params
from slewdark.core.brightmap import bright_map
from slewdark.core.instrument import expected_dispersion
from slewdark.errors import SlewdarkError
from slewdark.io.clusters import read_labels
from slewdark.io.fits import DetectorImage, write_fits_atomic
from slewdark.io.tables import INDEX_COLUMNS, write_table
from slewdark.stages.label import (
    PatchEvidence,
    apply_overrides,
    coincidence,
    fallback_votes,
    peak_ratio,
    read_overrides,
    run_label,
    shape_features,
)

REPO = Path(__file__).resolve().parents[1]
SIZE, N_PER_CLUSTER = 68, 6
PERSISTENT_ROWS = slice(20, 30)  # stripe rows of cluster 0's patches (bright in the previous exposure)
ELSEWHERE_ROWS = slice(40, 50)  # stripe rows of cluster 1 (dark in the previous exposure)


def _detector_file(path: Path, layers: dict[str, np.ndarray], keys: dict[str, object]) -> None:
    header = fits.Header()
    header.update(keys)
    hdus = []
    for name, data in layers.items():
        hdu = fits.ImageHDU(data, name=name)
        if name.endswith(".SCI"):
            hdu.header["BUNIT"] = "electron"
        hdus.append(hdu)
    write_fits_atomic(path, header, hdus)


def make_world(tmp_path: Path) -> Params:
    """One exposure, one detector, 12 patches in 2 clusters; cluster 0 sits on the previous exposure's traces.

    Returns params.yaml of the repository with every path moved into tmp_path.
    """
    raw = tmp_path / "raw"
    raw.mkdir()
    n = 2 * N_PER_CLUSTER
    cols = np.arange(n) * SIZE
    fluence = np.zeros((2040, 2040), np.float32)
    pers = np.zeros((2040, 2040), np.float32)
    sci = np.zeros((2040, 2040), np.float32)
    for c in cols[:N_PER_CLUSTER]:
        fluence[PERSISTENT_ROWS, c + 4 : c + 64] = 60000.0
        pers[PERSISTENT_ROWS, c + 4 : c + 64] = 20.0
    sci += pers
    keys = {"OBS_ID": "e0", "EXPTIME": 100.0, "PREVFILE": "e0.prev.fits", "PREVGWA": "Y", "TSINCE": 60.0}
    _detector_file(raw / "e0.fits", {"DET11.SCI": sci}, keys)
    _detector_file(raw / "e0.prev.fits", {"DET11.SCI": fluence}, {"OBS_ID": "e0.prev", "EXPTIME": 90.0})
    empty = np.zeros((2040, 2040), np.uint8)
    truth = tmp_path / "truth"  # the pipeline's layout: truth apart from the exposures
    truth.mkdir()
    _detector_file(truth / "e0.truth.fits", {"DET11.PERS": pers, "DET11.CR": empty, "DET11.HOT": empty}, {})

    rng = np.random.default_rng(0)
    patches = np.clip(0.3 + 0.03 * rng.standard_normal((n, SIZE, SIZE)), 0, 1).astype(np.float32)
    patches[:N_PER_CLUSTER, PERSISTENT_ROWS, 4:64] += 0.3
    patches[N_PER_CLUSTER:, ELSEWHERE_ROWS, 4:64] += 0.3
    patch_dir = tmp_path / "patches"
    patch_dir.mkdir()
    np.save(patch_dir / "patches.npy", patches)
    np.save(patch_dir / "usable.npy", np.ones(patches.shape, bool))
    (tmp_path / "latents").mkdir()
    np.save(tmp_path / "latents" / "recon_loss.npy", np.where(np.arange(n) < N_PER_CLUSTER, 2.0, 1.0))
    rows = [
        {
            "patch": i,
            "exposure": "e0",
            "file": str(raw / "e0.fits"),
            "detector": "11",
            "channel": 0,
            "row": 0,
            "col": int(cols[i]),
            "split": "train",
            "usable_fraction": 1.0,
        }
        for i in range(n)
    ]
    write_table(patch_dir / "index.csv", rows, INDEX_COLUMNS)
    cluster_dir = tmp_path / "clusters"
    assignments = [
        {
            "patch": i,
            "group": "0",
            "cluster": int(i >= N_PER_CLUSTER),
            "probability": 0.9,
            "distance": 1.0,
            "in_neighbourhood": 1,
            "umap_x": 0.0,
            "umap_y": 0.0,
        }
        for i in range(n)
    ]
    write_table(cluster_dir / "assignments.csv", assignments, list(assignments[0]))
    truth_rows = [
        {
            "patch": i,
            "truth": "persistence" if i < N_PER_CLUSTER else "clean",
            "persistence_pixels": 600 if i < N_PER_CLUSTER else 0,
            "persistence_max": 20.0,
        }
        for i in range(n)
    ]
    write_table(tmp_path / "patch_truth.csv", truth_rows, list(truth_rows[0]))
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("{}\n")
    return load_params(
        REPO / "params.yaml",
        {
            "data.train_truth": str(truth),
            "patches.out": str(patch_dir),
            "embed.out": str(tmp_path / "latents"),
            "cluster.out": str(cluster_dir),
            "patch_truth.out": str(tmp_path / "patch_truth.csv"),
            "label.out": str(tmp_path / "labels" / "clusters.yaml"),
            "label.overrides": str(overrides),
            "label.gallery": str(tmp_path / "plots" / "label"),
            "pseudomask.out": str(tmp_path / "masks"),
            # hand-made assignments, no fitted cluster models: the neighbourhood rule (the
            # ablation's) needs them; test_latent_neighbourhood and the pipeline tests cover it
            "pseudomask.rule": "cluster",
            "pseudomask.quality.metrics_label": str(tmp_path / "metrics" / "label.json"),
            "pseudomask.quality.metrics": str(tmp_path / "metrics" / "pseudomask.json"),
            "pseudomask.quality.metrics_cluster": str(tmp_path / "metrics" / "cluster_truth.json"),
            "pseudomask.quality.plots": str(tmp_path / "plots" / "pseudomask"),
            "evaluate.truth_threshold": 3.0,
            "evaluate.amplitude_bins": [3.0, 5.0, 10.0, 20.0, 50.0, 1.0e9],
        },
    )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Params:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return make_world(tmp_path)


def test_labelling_finds_the_persistence_cluster(world: Params) -> None:
    summary = run_label(world)
    decisions = {d["cluster"]: d for d in read_labels(world.label.out)}
    assert decisions[0]["persistence"] and not decisions[1]["persistence"]
    assert decisions[0]["score"] > 0.5 > abs(decisions[1]["score"])
    assert all(d["source"] == "auto" and "previous exposure" in d["reason"] for d in decisions.values())
    assert summary["n_persistence"] == 1
    gallery = sorted(p.name for p in Path(world.label.gallery).iterdir())
    assert gallery == ["cluster_0000.png", "cluster_0001.png"]


def test_overrides_file_is_applied(world: Params) -> None:
    Path(world.label.overrides).write_text(
        yaml.safe_dump({0: {"persistence": False, "reason": "looks like a ghost"}, 1: {"persistence": True}})
    )
    run_label(world)
    decisions = {d["cluster"]: d for d in read_labels(world.label.out)}
    assert not decisions[0]["persistence"] and decisions[1]["persistence"]
    assert decisions[0]["source"] == decisions[1]["source"] == "override"
    assert decisions[0]["reason"].startswith("looks like a ghost (auto: yes")


def test_without_previous_exposure_the_fallback_rule_decides(world: Params) -> None:
    Path(world.patches.out, "..", "raw", "e0.prev.fits").resolve().unlink()
    run_label(world)
    decisions = read_labels(world.label.out)
    assert all(d["reason"].startswith("fallback rule") for d in decisions)
    # both clusters hold extended, smooth, unsaturated stripes and PREVGWA (Y) implies no trace direction
    assert all(d["persistence"] and d["score"] == 1.0 for d in decisions)


def test_repository_overrides_file_is_an_empty_mapping() -> None:
    assert read_overrides(REPO / "labels" / "overrides.yaml") == {}


def test_bad_overrides_are_named(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text("3: {persistence: maybe}\n")
    with pytest.raises(SlewdarkError, match=r"o\.yaml: cluster 3: needs 'persistence"):
        read_overrides(path)
    path.write_text("3: {persistence: true, colour: red}\n")
    with pytest.raises(SlewdarkError, match="unknown key"):
        read_overrides(path)
    auto = [{"cluster": 1, "persistence": False, "reason": "r", "source": "auto", "confident": False}]
    with pytest.raises(SlewdarkError, match=r"no cluster \[7\]"):
        apply_overrides(auto, {7: {"persistence": True, "reason": ""}}, "o.yaml")
    assert read_overrides(tmp_path / "absent.yaml") == {}


def prev_image(data: np.ndarray, saturated: np.ndarray | None = None) -> DetectorImage:
    """A previous exposure's detector as the reader returns it without a DQ layer (NaN = saturated)."""
    flagged = np.isnan(data) if saturated is None else saturated | np.isnan(data)
    return DetectorImage("11", data, None, np.isfinite(data), None, fits.Header(), 13, flagged)


def test_bright_map_and_coincidence() -> None:
    fluence = np.zeros((10, 10), np.float32)
    fluence[4, 4] = 5e4
    fluence[0, 0] = np.nan
    bright = bright_map(prev_image(fluence), 1e4, dilation=1, median=1)
    assert bright.sum() == 9 + 4 and bright[3:6, 3:6].all() and bright[:2, :2].all()  # NaN: saturated
    assert bright_map(prev_image(fluence), 1e4, dilation=0, median=1).sum() == 2
    signal = np.zeros((10, 10), bool)
    signal[4, 3:7] = True  # 3 of 4 signal pixels bright
    hit, chance = coincidence(signal, bright, np.ones((10, 10), bool))
    assert hit == pytest.approx(0.75) and chance == pytest.approx(0.13)
    assert np.isnan(coincidence(np.zeros((10, 10), bool), bright, np.ones((10, 10), bool))[0])


def test_bright_map_ignores_cosmic_rays_and_noise_but_not_saturated_cores() -> None:
    rng = np.random.default_rng(3)
    fluence = 500.0 + 9.0 * rng.standard_normal((80, 80))
    track = np.zeros((80, 80))
    track[np.arange(10, 40), np.arange(20, 50)] = 4e4  # a diagonal cosmic-ray track, 4e4 e- per pixel
    track[60, 5:35] = 4e4  # and one along a row
    fluence += ndimage.gaussian_filter(track, 0.6)  # charge diffusion as in the simulator
    assert fluence.max() > 1e4
    cosmic = prev_image(fluence.astype(np.float32))
    assert not bright_map(cosmic, 1e4, dilation=1, median=3).any()
    assert bright_map(cosmic, 1e4, dilation=1, median=1).any()  # without the median filter it would be

    yy, xx = np.mgrid[:80, :80]
    star = 3e5 * np.exp(-((yy - 20) ** 2 + (xx - 60) ** 2) / (2 * 0.7**2))  # PSF sigma 0.7 px
    capped = np.minimum(fluence + star, 1e5).astype(np.float32)
    flagged = capped >= 1e5
    assert 1 <= flagged.sum() <= 9
    bright = bright_map(prev_image(capped, flagged), 5e4, dilation=1, median=3)
    assert bright[19:22, 59:62].all() and not bright[:, :50].any()

    nan_core = np.where(flagged, np.nan, capped).astype(np.float32)
    assert np.array_equal(bright_map(prev_image(nan_core), 5e4, dilation=1, median=3), bright)


def test_shape_peak_and_dispersion_features() -> None:
    line = np.zeros((30, 30), bool)
    line[15, 2:28] = True  # along +x
    line[16, 2:28] = True
    elongation, angle = shape_features(line)
    assert elongation > 5 and min(angle, 180 - angle) < 1
    elongation, angle = shape_features(line.T)
    assert abs(angle - 90) < 1
    patch = np.full((9, 9), 0.2)
    patch[4, 4] = 1.0
    assert peak_ratio(patch, np.ones((9, 9), bool)) > 100
    patch[3:6, 3:6] = 0.9
    patch[4, 4] = 1.0
    assert peak_ratio(patch, np.ones((9, 9), bool)) < 1.5
    assert expected_dispersion("RGS180", -4.0) == pytest.approx(86.0)
    assert np.isnan(expected_dispersion("H", 0.0)) and np.isnan(expected_dispersion(None, None))


def test_fallback_rule_wants_a_streak_along_the_dispersion_after_a_grism() -> None:
    rule = load_params().label.fallback
    evidence = PatchEvidence.empty(4)
    evidence.signal_pixels[:] = 1000  # extended, smooth, unsaturated: only the shape decides
    evidence.elongation[:] = [8.0, 8.0, 1.2, 1.2]  # streak, streak, blob, blob
    evidence.angle[:] = [91.0, 0.0, 91.0, 0.0]
    evidence.dispersion[:] = [90.0, 90.0, 90.0, np.nan]  # RGS000 before the first three; imaging last
    votes = fallback_votes(evidence, 68 * 68, rule)
    assert votes.tolist() == [True, False, False, True]
