"""``slewdark inspect`` and ``slewdark show`` from the command line."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from slewdark.cli import main
from slewdark.io.fits import write_fits_atomic
from slewdark.ops.quicklook import render_exposure
from test_fits_io import bad_files, exposure


def test_inspect_reports_good_files_and_one_line_per_bad_file(tmp_path, capsys):
    good = exposure(tmp_path / "mine.fits", detectors=("11", "12"), TSINCE=45.0)
    bad = [path for path, _ in bad_files(tmp_path).values()]
    status = main(["inspect", str(bad[0]), str(good), *map(str, bad[1:])])
    out, err = capsys.readouterr()
    assert status == 1
    assert "PREVGWA=RGS000" in out and "TSINCE=45.0" in out and "2040x2040" in out
    assert out.count("\n  1") == 2  # one line per detector (11, 12)
    error_lines = [line for line in err.splitlines() if line.startswith("slewdark inspect: error:")]
    assert len(error_lines) == len(bad)
    assert "Traceback" not in err


def test_inspect_statistics(tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = (50 + 9 * rng.standard_normal((2040, 2040))).astype(np.float32)
    data[:204, :] = np.nan
    write_fits_atomic(tmp_path / "n.fits", fits.Header(), [fits.ImageHDU(data, name="DET44.SCI")])
    assert main(["inspect", str(tmp_path / "n.fits")]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[0] == "44"
    median, sigma, nan_percent = float(row[3]), float(row[4]), float(row[5])
    assert abs(median - 50) < 0.1 and abs(sigma - 9) < 0.1 and abs(nan_percent - 10.0) < 0.01


def test_show_writes_a_png(tmp_path):
    path = exposure(tmp_path / "s.fits", detectors=("11", "21"))
    out = tmp_path / "look.png"
    assert main(["show", str(path), "--out", str(out), "--binning", "8"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_finds_the_truth_in_its_folder_or_beside(tmp_path):
    path = exposure(tmp_path / "s.fits", detectors=("11", "21"))
    layers = {"PERS": np.float32, "CR": np.uint8, "HOT": np.uint8}
    hdus = [fits.ImageHDU(np.zeros((2040, 2040), kind), name=f"DET{d}.{name}")
            for d in ("11", "21") for name, kind in layers.items()]  # fmt: skip
    write_fits_atomic(tmp_path / "truth" / "s.truth.fits", fits.Header(), hdus)
    assert len(render_exposure(path, 8).axes) == 2  # nothing beside the exposure: data row only
    assert len(render_exposure(path, 8, tmp_path / "truth").axes) == 4
    out = tmp_path / "look.png"
    assert (
        main(["show", str(path), "--out", str(out), "--binning", "8", "--truth-dir", str(tmp_path / "truth")])
        == 0
    )
    (tmp_path / "truth" / "s.truth.fits").rename(tmp_path / "s.truth.fits")
    assert len(render_exposure(path, 8).axes) == 4


def test_show_bad_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.fits").write_text("nope")
    assert main(["show", str(tmp_path / "bad.fits"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slewdark show: error:") and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
