"""slewdark predict and inspect stopped from outside: SIGTERM, SIGKILL, a closed pipe.

Each runs the real command in a subprocess; nothing is mocked.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits

from slewdark.cli import main
from test_fits_io import exposure
from test_predict import SIDE, save_tiny_model, write_exposure

TEMP_WAIT_S = 180.0


def start_predict(exposure_path: Path, out: Path, model: Path) -> subprocess.Popen[str]:
    """``slewdark predict`` in a subprocess, returned once its temporary product exists."""
    argv = ["-q", "predict", str(exposure_path), "--out", str(out), "--model", str(model), "--device", "cpu"]
    process = subprocess.Popen(
        [sys.executable, "-m", "slewdark.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TEMP_WAIT_S
    while not temporaries(out):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no temporary product appeared: {process.communicate()[1]}")
        time.sleep(0.05)
    return process


def temporaries(folder: Path) -> list[Path]:
    """The hidden temporary files of mask products in ``folder``."""
    return sorted(folder.glob(".*.mask.fits.*.tmp"))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "unet.pt")


def test_sigterm_removes_the_temporary_product_and_exits_143(model: Path, tmp_path: Path) -> None:
    exposure_path = write_exposure(tmp_path / "long.fits", ("11", "12", "13", "14"), seed=20)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "long.mask.fits").write_bytes(b"an earlier good product")
    process = start_predict(exposure_path, out, model)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "slewdark predict: terminated, temporary files removed" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["long.mask.fits"]
    assert (out / "long.mask.fits").read_bytes() == b"an earlier good product"


def test_the_next_run_removes_what_a_killed_run_left_and_nothing_else(
    model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exposure_path = write_exposure(tmp_path / "exp_k.fits", ("11", "12"), seed=21)
    out = tmp_path / "pred"
    process = start_predict(exposure_path, out, model)
    process.kill()
    process.communicate(timeout=60)
    [left] = temporaries(out)
    running = out / f".other.mask.fits.{os.getpid()}.abc123.tmp"  # a run still writing (this process)
    running.write_bytes(b"partial")
    with caplog.at_level(logging.WARNING, logger="slewdark.inference.predict"):
        status = main(
            ["predict", str(exposure_path), "--out", str(out), "--model", str(model), "--device", "cpu"]
        )
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([running.name, "exp_k.mask.fits", "manifest.csv"])
    assert any(str(left) in r.getMessage() and "killed run" in r.getMessage() for r in caplog.records)
    with fits.open(out / "exp_k.mask.fits") as hdul:
        assert hdul["DET12.MASK"].data.shape == (SIDE, SIDE)


def test_inspect_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = exposure(tmp_path / "piped.fits", detectors=("11", "12"))
    process = subprocess.Popen(
        [sys.executable, "-m", "slewdark.cli", "inspect", str(path), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # like `| head` that has read all it wants, before the first line
    err = process.stderr.read()
    process.wait(timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE
    assert err == b""
