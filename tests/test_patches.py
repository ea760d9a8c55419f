"""patches: stretch, tiling and index, channels, splits, background removal, the stage on FITS files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from slewdark.core.background import remove_background
from slewdark.core.patch_grid import cut_patches, patch_channels, patch_origins
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.errors import SlewdarkError
from slewdark.evaluation.truth import read_truth_classes
from slewdark.io.exposures import exposure_files
from slewdark.io.tables import read_index, write_table
from slewdark.stages.patch_truth import build_patch_truth, classify_patches
from slewdark.stages.patches import PatchOptions, assign_splits, build_patches

SIZE = 2040
SCALING = Scaling("channel_row_block", 34, 3.0, -4.0, 100.0)


def test_index_round_trips_to_pixel_positions() -> None:
    rows, cols = patch_origins(SIZE, SIZE, 68, 68)
    assert len(rows) == 900
    image = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    patches = cut_patches(image, rows, cols, 68)
    for k in (0, 29, 30, 457, 899):
        r, c = rows[k], cols[k]
        assert np.array_equal(patches[k], image[r : r + 68, c : c + 68])
    assert (rows[-1], cols[-1]) == (SIZE - 68, SIZE - 68)
    overlapping = patch_origins(SIZE, SIZE, 136, 68)[0]
    assert len(overlapping) == 29 * 29


def test_channels_are_horizontal_bands_of_the_patch_centre() -> None:
    rows = np.unique(patch_origins(SIZE, SIZE, 68, 68)[0])
    channels = patch_channels(rows, 68, SIZE, 10)
    assert np.array_equal(np.bincount(channels), np.full(10, 3))  # 3 patch rows per 204-row band
    assert np.array_equal(patch_channels(np.array([0, 136, 1904]), 136, SIZE, 10), [0, 1, 9])


def test_grouped_split_keeps_each_exposure_in_one_split() -> None:
    exposures = np.repeat([f"e{i}" for i in range(20)], 50)
    splits = assign_splits(exposures, (0.7, 0.15, 0.15), "grouped", seed=4)
    for exposure in np.unique(exposures):
        assert len(set(splits[exposures == exposure])) == 1
    per_split = {s: len(set(exposures[splits == s])) for s in ("train", "val", "test")}
    assert per_split == {"train": 14, "val": 3, "test": 3}
    assert np.array_equal(splits, assign_splits(exposures, (0.7, 0.15, 0.15), "grouped", seed=4))
    assert not np.array_equal(splits, assign_splits(exposures, (0.7, 0.15, 0.15), "grouped", seed=5))


def test_few_exposures_still_fill_every_split_and_random_split_mixes() -> None:
    grouped = assign_splits(np.repeat(["a", "b", "c"], 4), (0.7, 0.15, 0.15), "grouped", seed=0)
    assert set(grouped) == {"train", "val", "test"}
    random = assign_splits(np.repeat(["a", "b"], 100), (0.7, 0.15, 0.15), "random", seed=0)
    assert list(np.unique(random, return_counts=True)[1]) == [30, 140, 30]
    assert len(set(random[:100])) == 3


def test_background_removal_keeps_bright_regions_only() -> None:
    image = np.full((20, 20), 0.2, dtype=np.float32)
    image[2, 2] = 0.99  # isolated pixel: removed (min_neighbor 2)
    image[10, 10:13] = 0.97  # 3-pixel streak: kept
    image[15, 15:18] = 0.5  # below the absolute threshold: removed
    usable = np.ones_like(image, dtype=bool)
    usable[10, 12] = False
    out = remove_background(image, usable, threshold=0.95, mad_factor=0.5, min_neighbor=2)
    expected = np.zeros_like(image)
    expected[10, 10:12] = 0.97
    assert np.array_equal(out, expected)


# --- the stage on FITS files written by hand -------------------------------------------------


def write_exposure(path: Path, images: dict[str, np.ndarray]) -> None:
    hdus = [fits.PrimaryHDU(header=fits.Header({"OBS_ID": path.stem, "EXPTIME": 100.0}))]
    for detector, data in images.items():
        hdus.append(fits.ImageHDU(data.astype(np.float32), name=f"DET{detector}.SCI"))
    fits.HDUList(hdus).writeto(path)


def write_truth(path: Path, detectors: list[str], pers: np.ndarray, cr: np.ndarray, hot: np.ndarray) -> None:
    hdus = [fits.PrimaryHDU()]
    for detector in detectors:
        hdus.append(fits.ImageHDU(pers.astype(np.float32), name=f"DET{detector}.PERS"))
        hdus.append(fits.ImageHDU(cr.astype(np.uint8), name=f"DET{detector}.CR"))
        hdus.append(fits.ImageHDU(hot.astype(np.uint8), name=f"DET{detector}.HOT"))
    fits.HDUList(hdus).writeto(path)


def options(**changes: object) -> PatchOptions:
    values = {
        "size": 340,
        "stride": 340,
        "n_channels": 10,
        "scaling": SCALING,
        "background": None,
        "split_mode": "grouped",
        "fractions": (0.7, 0.15, 0.15),
        "seed": 0,
    }
    values.update(changes)
    return PatchOptions(**values)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(3):
        image = rng.normal(0, 9, (SIZE, SIZE))
        image[100:110, 700:720] = np.nan
        image[400, 50:400] += 40.0
        write_exposure(folder / f"exp{k}.fits", {"11": image, "22": image[::-1]})
    write_exposure(folder / "exp0.prev.fits", {"11": image})
    pers = np.zeros((SIZE, SIZE))
    pers[400, 50:400] = 40.0
    cr = np.zeros((SIZE, SIZE), bool)
    cr[1000, 1000] = True
    hot = np.zeros((SIZE, SIZE), bool)
    hot[1500, 100] = hot[1000, 1001] = True
    for k in range(3):
        write_truth(folder / f"exp{k}.truth.fits", ["11", "22"], pers, cr, hot)
    return folder


def test_stage_streams_patches_that_round_trip_to_the_fits_pixels(raw: Path, tmp_path: Path) -> None:
    from slewdark.io.fits import read_detector

    files = exposure_files(raw)
    assert [f.name for f in files] == ["exp0.fits", "exp1.fits", "exp2.fits"]
    out = tmp_path / "patches"
    assert build_patches(files, out, options()) == 3 * 2 * 36
    patches = np.load(out / "patches.npy", mmap_mode="r")
    usable = np.load(out / "usable.npy", mmap_mode="r")
    index = read_index(out)
    assert patches.shape == usable.shape == (216, 340, 340)
    for exposure in ("exp0", "exp1", "exp2"):
        assert len(set(index["split"][index["exposure"] == exposure])) == 1
    assert set(index["split"]) == {"train", "val", "test"}
    for k in (0, 40, 215):
        det = read_detector(raw / f"{index['exposure'][k]}.fits", index["detector"][k])
        expected = scale_detector(det.data, det.usable, SCALING).image
        r, c = index["row"][k], index["col"][k]
        assert np.array_equal(patches[k], expected[r : r + 340, c : c + 340])
        assert np.array_equal(usable[k], det.usable[r : r + 340, c : c + 340])
    nan_patch = 2  # row 0, col 680 holds the NaN block at rows 100-109, cols 700-719
    assert (index["row"][nan_patch], index["col"][nan_patch]) == (0, 680)
    assert not usable[nan_patch, 100:110, 20:40].any()
    block = patches[nan_patch, 100:110, 20:40]
    assert np.all(block == SCALING.squash(0.0))  # the background level, not 0
    assert index["usable_fraction"][nan_patch] == pytest.approx(1 - 200 / 340**2, abs=1e-6)
    assert np.array_equal(index["channel"][:6], [0] * 6)


def test_bad_file_is_named_and_the_others_are_still_written(raw: Path, tmp_path: Path) -> None:
    (raw / "broken.fits").write_bytes(b"not a fits file")
    with pytest.raises(SlewdarkError, match=r"broken\.fits"):
        build_patches(exposure_files(raw), tmp_path / "patches", options(size=680, stride=680))
    index = read_index(tmp_path / "patches")
    assert sorted(set(index["exposure"])) == ["exp0", "exp1", "exp2"]
    assert len(np.load(tmp_path / "patches/patches.npy", mmap_mode="r")) == len(index["patch"]) == 54


def test_patch_truth_classes_by_priority() -> None:
    pers = np.zeros((8, 8))
    pers[0, 0:3] = 10.0
    cr = np.zeros((8, 8), bool)
    cr[0, 5] = cr[5, 1] = True
    hot = np.zeros((8, 8), bool)
    hot[5, 6] = hot[0, 1] = True
    rows, cols = patch_origins(8, 8, 4, 4)
    classes, n_pixels, maxima = classify_patches(pers, cr, hot, rows, cols, 4, 3.0, 2)
    assert list(classes) == ["persistence", "cosmic_ray", "cosmic_ray", "hot_pixel"]
    assert list(n_pixels) == [3, 0, 0, 0] and maxima[0] == 10.0


def test_patch_truth_stage_from_truth_files(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "patches"
    build_patches([raw / "exp0.fits", raw / "exp1.fits"], out, options(size=680, stride=680))
    counts = build_patch_truth(out, None, tmp_path / "truth.csv", 3.0, 5)  # truth beside the exposures
    assert counts == {"persistence": 4, "cosmic_ray": 4, "hot_pixel": 4, "clean": 24}
    table = (tmp_path / "truth.csv").read_text().splitlines()
    assert table[0] == "patch,truth,persistence_pixels,persistence_max"
    assert table[1] == "0,persistence,350,40.0"
    assert table[5].startswith("4,cosmic_ray,0,")
    assert table[7].startswith("6,hot_pixel,0,")
    truth = tmp_path / "truth"  # the pipeline's layout: truth in its own folder
    truth.mkdir()
    for k in range(2):
        (raw / f"exp{k}.truth.fits").rename(truth / f"exp{k}.truth.fits")
    assert build_patch_truth(out, truth, tmp_path / "apart.csv", 3.0, 5) == counts
    assert (tmp_path / "apart.csv").read_text() == (tmp_path / "truth.csv").read_text()
    (truth / "exp1.truth.fits").unlink()
    with pytest.raises(SlewdarkError, match=r"exp1\.truth\.fits"):
        build_patch_truth(out, truth, tmp_path / "again.csv", 3.0, 5)
    assert not (tmp_path / "again.csv").exists()
    (truth / "exp0.truth.fits").unlink()  # real data: no exposure has truth
    assert build_patch_truth(out, truth, tmp_path / "real.csv", 3.0, 5) == dict.fromkeys(counts, 0)
    assert (tmp_path / "real.csv").read_text().splitlines() == [table[0]]
    assert read_truth_classes(tmp_path / "real.csv", 36) is None


def test_stale_truth_table_is_ignored(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", [{"patch": 0, "truth": "clean"}], ("patch", "truth"))
    assert read_truth_classes(tmp_path / "t.csv", 2) is None
    assert read_truth_classes(tmp_path / "absent.csv", 2) is None
    assert list(read_truth_classes(tmp_path / "t.csv", 1)) == ["clean"]
