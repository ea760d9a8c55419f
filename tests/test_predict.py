"""slewdark predict: valid products, provenance, --dq, bad inputs skipped, nothing good overwritten."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from slewdark.cli import main
from slewdark.io.fits import file_sha256
from slewdark.models.unet import build_unet
from slewdark.predict import (
    PredictOptions,
    UnetModel,
    checkpoint_payload,
    load_unet,
    output_path,
    predict_files,
)
from slewdark.scaling import Scaling
from slewdark.unet_input import BrightVeto, Normalisation

REPO = Path(__file__).resolve().parents[1]
SIDE = 2040
ARCH = {
    "encoder_name": "tu-resnet18",
    "encoder_depth": 3,
    "decoder_channels": [8, 8, 4],
    "in_channels": 1,
    "encoder_width": 4,
}
PROVENANCE = ("SDVER", "GITREV", "MODEL", "MLRUN", "PARAMSHA", "INPUTSHA", "DATE")


SCALING = Scaling("channel_row_block", 34, 3.0, -4.0, 100.0)


def write_exposure(path: Path, detectors: tuple[str, ...], seed: int, with_dq: bool = False) -> Path:
    """A slew dark: read noise with a bright tilted streak, optionally DQ with a disconnected column."""
    rng = np.random.default_rng(seed)
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for det in detectors:
        sci = (9.0 * rng.standard_normal((SIDE, SIDE))).astype(np.float32)
        rows = np.arange(300, 800)
        sci[(rows * 0.07).astype(int) + 1000, rows] += 80.0
        hdus.append(fits.ImageHDU(sci, name=f"DET{det}.SCI"))
        if with_dq:
            dq = np.zeros((SIDE, SIDE), dtype=np.uint32)
            dq[:, 5] = 1 << 2
            hdus.append(fits.ImageHDU(dq, name=f"DET{det}.DQ"))
    primary = fits.PrimaryHDU()
    primary.header["OBS_ID"] = path.stem
    primary.header["EXPTIME"] = 100.0
    fits.HDUList([primary, *hdus]).writeto(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny UNet checkpoint whose head bias puts the threshold mid-distribution."""
    torch.manual_seed(0)
    network = build_unet(**ARCH).eval()
    unet = UnetModel(
        network=network,
        arch=ARCH,
        normalisation=Normalisation(SCALING, 1e5),
        tile=1024,
        overlap=32,
        threshold=0.5,
        source="tiny",
        mlflow_run_id="run-123",
        registered_version="7",
        params_sha="abc",
        veto=BrightVeto(sigma=30.0, grow=1),
    )
    with torch.inference_mode():
        x = torch.from_numpy(SCALING.squash(np.random.default_rng(0).standard_normal((1, 1, 64, 64))))
        median_logit = float(network(x).median())
        network.segmentation_head[0].bias -= median_logit
    path = tmp_path_factory.mktemp("model") / "unet.pt"
    torch.save(checkpoint_payload(unet), path)
    return path


def test_checkpoint_round_trip(tiny_model: Path) -> None:
    unet = load_unet(tiny_model, torch.device("cpu"))
    assert unet.arch == ARCH and unet.tile == 1024 and unet.overlap == 32 and unet.threshold == 0.5
    assert unet.mlflow_run_id == "run-123" and unet.registered_version == "7" and unet.params_sha == "abc"
    assert unet.source == str(tiny_model) and unet.veto == BrightVeto(sigma=30.0, grow=1)
    assert sorted(torch.load(tiny_model, weights_only=True)) == sorted(
        [
            "state_dict",
            "arch",
            "normalisation",
            "tile",
            "overlap",
            "threshold",
            "veto",
            "mlflow_run_id",
            "registered_version",
            "params_sha",
        ]
    )


def test_mask_never_flags_vetoed_or_unusable_pixels(tiny_model: Path) -> None:
    unet = load_unet(tiny_model, torch.device("cpu"))
    image = np.full((2, 64, 64), SCALING.squash(0.0))
    image[0, 10, 10] = SCALING.squash(500.0)  # a cosmic ray
    usable = np.ones((64, 64), bool)
    usable[40, 40] = False

    mask = unet.mask(np.ones((64, 64), np.float32), image, usable)

    assert not mask[9:12, 9:12].any() and not mask[40, 40]
    assert mask.sum() == 64 * 64 - 9 - 1
    assert not unet.mask(np.full((64, 64), 0.49, np.float32), image, usable).any()


def test_predict_cli_writes_a_contract_valid_product(tiny_model: Path, tmp_path: Path) -> None:
    exposure = write_exposure(tmp_path / "exp_a.fits", ("22", "11"), seed=1, with_dq=True)
    out = tmp_path / "pred"
    status = main(
        [
            "--params",
            str(REPO / "params.yaml"),
            "predict",
            str(exposure),
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--dq",
        ]
    )
    assert status == 0
    product = out / "exp_a.mask.fits"
    with fits.open(product) as hdul:
        header = hdul[0].header
        for key in PROVENANCE:
            assert key in header and str(header[key]) != ""
        assert header["INPUTSHA"] == file_sha256(exposure)
        assert header["MODEL"] == str(tiny_model) and header["MLRUN"] == "run-123"
        assert header["PARAMSHA"] == "abc"
        assert header["VETOSIG"] == 30.0 and header["VETOGROW"] == 1
        names = [hdu.name for hdu in hdul[1:]]
        assert names == ["DET22.MASK", "DET22.PROB", "DET22.DQ", "DET11.MASK", "DET11.PROB", "DET11.DQ"]
        for det in ("22", "11"):
            mask = hdul[f"DET{det}.MASK"].data
            prob = hdul[f"DET{det}.PROB"].data
            dq = hdul[f"DET{det}.DQ"].data
            assert mask.dtype == np.uint8 and mask.shape == (SIDE, SIDE)
            assert prob.dtype.kind == "f" and prob.dtype.itemsize == 4 and prob.shape == (SIDE, SIDE)
            assert prob.min() >= 0.0 and prob.max() <= 1.0
            assert set(np.unique(mask)) <= {0, 1} and 0 < mask.mean() < 1
            assert np.array_equal(mask, (prob >= 0.5).astype(np.uint8))
            persist = (dq >> 13) & 1
            assert np.array_equal(persist, mask)
            assert np.all(dq[:, 5] & (1 << 2))
            assert np.all(mask[:, 5] == 0)


def test_bad_inputs_are_reported_and_skipped(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write_exposure(tmp_path / "good.fits", ("11",), seed=2)
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("this is not a FITS file\n")
    truncated = tmp_path / "cut.fits"
    whole = write_exposure(tmp_path / "whole.fits", ("11",), seed=3).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "pred"
    out.mkdir()
    earlier = output_path(truncated, out)
    earlier.write_bytes(b"an earlier good product")
    missing = tmp_path / "missing.fits"
    with caplog.at_level(logging.ERROR, logger="slewdark.predict"):
        status = main(
            [
                "--params",
                str(REPO / "params.yaml"),
                "predict",
                str(not_fits),
                str(good),
                str(truncated),
                str(missing),
                "--out",
                str(out),
                "--model",
                str(tiny_model),
                "--device",
                "cpu",
            ]
        )
    assert status == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert any("notes.fits" in e and "not a readable FITS" in e for e in errors)
    assert any("cut.fits" in e and "truncated" in e for e in errors)
    assert any("missing.fits" in e and "no such file" in e for e in errors)
    assert all("\n" not in e for e in errors)
    assert earlier.read_bytes() == b"an earlier good product"
    with fits.open(out / "good.mask.fits") as hdul:
        assert [hdu.name for hdu in hdul[1:]] == ["DET11.MASK", "DET11.PROB"]
    assert sorted(p.name for p in out.iterdir()) == ["cut.mask.fits", "good.mask.fits"]


def test_predict_files_report_and_float32_matches_autocast(tiny_model: Path, tmp_path: Path) -> None:
    exposure = write_exposure(tmp_path / "exp_b.fits", ("11",), seed=4)
    unet = load_unet(tiny_model, torch.device("cpu"))
    probs = []
    for autocast in (False, True):
        options = PredictOptions(
            batch_size=2, write_prob=True, with_dq=False, num_threads=0, autocast=autocast
        )
        report = predict_files([exposure], tmp_path / f"out{autocast}", unet, options)
        assert report.failed == [] and len(report.written) == 1
        with fits.open(report.written[0]) as hdul:
            probs.append(hdul["DET11.PROB"].data.astype(np.float32))
    assert np.abs(probs[0] - probs[1]).max() < 0.05


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exposure = write_exposure(tmp_path / "exp_c.fits", ("11",), seed=5)
    status = main(
        [
            "--params",
            str(REPO / "params.yaml"),
            "predict",
            str(exposure),
            "--out",
            str(tmp_path / "pred"),
            "--model",
            str(tmp_path / "nope.pt"),
        ]
    )
    assert status == 2
    assert "nope.pt: model not found" in capsys.readouterr().err
    assert not (tmp_path / "pred").exists()


def test_predict_from_a_path_never_imports_mlflow(tiny_model: Path, tmp_path: Path) -> None:
    exposure = write_exposure(tmp_path / "exp_d.fits", ("11",), seed=6)
    script = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from slewdark.cli import main\n"
        f"sys.exit(main(['--params', {str(REPO / 'params.yaml')!r}, '-q', 'predict', {str(exposure)!r},"
        f" '--out', {str(tmp_path / 'pred')!r}, '--model', {str(tiny_model)!r}, '--device', 'cpu']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pred" / "exp_d.mask.fits").is_file()


def test_a_folder_input_predicts_its_exposures_without_companions(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "heldout"
    folder.mkdir()
    write_exposure(folder / "sd_0.fits", ("11",), seed=7)
    write_exposure(folder / "sd_0.prev.fits", ("11",), seed=8)
    fits.HDUList([fits.PrimaryHDU()]).writeto(folder / "sd_0.truth.fits")
    out = tmp_path / "pred"
    argv = ["--params", str(REPO / "params.yaml"), "predict", str(folder), "--out", str(out)]
    assert main([*argv, "--model", str(tiny_model), "--device", "cpu"]) == 0
    assert [p.name for p in out.iterdir()] == ["sd_0.mask.fits"]
