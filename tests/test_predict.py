"""slewdark predict: valid products, provenance, --dq, bad inputs skipped, nothing good overwritten."""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from slewdark.cli import main
from slewdark.config import load_params
from slewdark.core.law_fit import law_fit_settings, persistence_model
from slewdark.core.normalisation import BrightVeto, Normalisation
from slewdark.core.scaling import Scaling
from slewdark.inference.predict import (
    PredictOptions,
    default_model,
    load_unet,
    mask_product_path,
    predict_files,
    provenance_header,
)
from slewdark.io.exposures import exposure_files
from slewdark.io.fits import file_sha256
from slewdark.models.checkpoint import UnetModel, checkpoint_payload
from slewdark.models.unet import build_unet
from slewdark.revision import git_revision

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
    return save_tiny_model(tmp_path_factory.mktemp("model") / "unet.pt")


def save_tiny_model(path: Path) -> Path:
    """Write the checkpoint of :func:`tiny_model` to ``path``."""
    return save_model(path, ARCH)


def save_model(path: Path, arch: dict) -> Path:
    """Write a seeded, untrained checkpoint of ``arch`` whose median logit on noise is 0.

    A three-channel one carries ``params.yaml``'s law and fit settings, as training stores them.
    """
    torch.manual_seed(0)
    network = build_unet(**arch).eval()
    law = law_fit = None
    if arch["in_channels"] == 3:
        params = load_params(REPO / "params.yaml")
        law, law_fit = persistence_model(params), law_fit_settings(params)
    unet = UnetModel(
        network=network,
        arch=arch,
        normalisation=Normalisation(SCALING, 1e5, law, law_fit),
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
        noise = np.random.default_rng(0).standard_normal((1, arch["in_channels"], 64, 64))
        x = torch.from_numpy(SCALING.squash(noise))
        median_logit = float(network(x).median())
        network.segmentation_head[0].bias -= median_logit
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
        assert header["VETOSIG"] == 30.0 and header["VETOGROW"] == 1 and header["VETOFILL"] == 0
        assert header.comments["VETOFILL"] == "px: vetoed gaps closed by this; 0=none"  # not truncated
        assert "VETOSPAR" not in header  # the tiny model's veto spares nothing
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
    earlier = mask_product_path(truncated, out)
    earlier.write_bytes(b"an earlier good product")
    missing = tmp_path / "missing.fits"
    with caplog.at_level(logging.ERROR, logger="slewdark.inference.predict"):
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
    assert sorted(p.name for p in out.iterdir()) == ["cut.mask.fits", "good.mask.fits", "manifest.csv"]


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
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "sd_0.mask.fits"]


def test_predict_runs_from_any_folder_without_params_yaml(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exposure = write_exposure(tmp_path / "exp_e.fits", ("11",), seed=9)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["predict", str(exposure), "--out", "masks", "--model", str(tiny_model), "--device", "cpu"]
    assert main(argv) == 0
    assert not (elsewhere / "params.yaml").exists()
    with fits.open(elsewhere / "masks" / "exp_e.mask.fits") as hdul:
        header = hdul[0].header
        assert all(str(header[key]) != "" for key in PROVENANCE)
        assert header["GITREV"] == git_revision(REPO) != "unknown"  # the code's repository, not the cwd
        assert [hdu.name for hdu in hdul[1:]] == ["DET11.MASK", "DET11.PROB"]  # built-in write_prob


def test_an_unknown_code_revision_says_so_in_the_header(tiny_model: Path) -> None:
    unet = load_unet(tiny_model, torch.device("cpu"))
    header = provenance_header(unet, "0" * 64, "unknown", "obs")
    assert header["GITREV"] == "unknown"
    assert header.comments["GITREV"] == "not run from a git checkout: see SDVER"
    assert provenance_header(unet, "0" * 64, "abc123", "obs").comments["GITREV"] == ""


def test_the_default_model_is_the_repositorys_wherever_predict_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_model() == REPO / "models" / "unet.pt"


def test_a_detector_without_usable_pixel_gets_an_empty_mask_saying_why(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exposure = write_exposure(tmp_path / "holes.fits", ("11", "12", "13"), seed=10, with_dq=True)
    with fits.open(exposure, mode="update") as hdul:
        hdul["DET12.SCI"].data[:] = np.nan
        hdul["DET13.DQ"].data[:] = 1  # INVALID everywhere
    out = tmp_path / "pred"
    with caplog.at_level(logging.WARNING, logger="slewdark.inference.predict"):
        status = main(
            ["predict", str(exposure), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]
        )
    assert status == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "DET12: no usable pixel" in warnings[0] and "DET13: no usable pixel" in warnings[1]
    with fits.open(out / "holes.mask.fits") as hdul:
        assert "NOMASK" not in hdul["DET11.MASK"].header and hdul["DET11.MASK"].data.any()
        for det in ("12", "13"):
            assert hdul[f"DET{det}.MASK"].header["NOMASK"] == "no usable pixel"
            assert hdul[f"DET{det}.MASK"].data.shape == (SIDE, SIDE)
            assert not hdul[f"DET{det}.MASK"].data.any() and not hdul[f"DET{det}.PROB"].data.any()


def test_two_inputs_for_one_product_are_refused_up_front(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_exposure(tmp_path / "x.fits", ("11",), seed=11)
    (tmp_path / "night2").mkdir()
    second = write_exposure(tmp_path / "night2" / "x.fits", ("11",), seed=12)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "x.mask.fits").write_bytes(b"an earlier good product")
    status = main(["predict", str(first), str(second), "--out", str(out), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"both {first} and {second} would be written there" in err
    assert [p.name for p in out.iterdir()] == ["x.mask.fits"]
    assert (out / "x.mask.fits").read_bytes() == b"an earlier good product"


def test_an_out_that_is_a_file_is_reported_once(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [str(write_exposure(tmp_path / f"e{k}.fits", ("11",), seed=k)) for k in (13, 14)]
    out = tmp_path / "results.txt"
    out.write_text("keep me\n")
    status = main(["predict", *inputs, "--out", str(out), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"slewdark predict: error: {out}: --out is an existing file, not a folder\n"
    assert out.read_text() == "keep me\n"


def test_weights_that_do_not_fit_their_arch_are_one_line(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = torch.load(tiny_model, weights_only=True)
    saved["arch"] = {**saved["arch"], "decoder_channels": [16, 8, 4]}
    bad = tmp_path / "bad.pt"
    torch.save(saved, bad)
    exposure = write_exposure(tmp_path / "exp_f.fits", ("11",), seed=15)
    status = main(["predict", str(exposure), "--out", str(tmp_path / "pred"), "--model", str(bad)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"slewdark predict: error: {bad}: weights do not fit the network of its arch:")
    assert "of another shape (first: decoder." in err and err.count("\n") == 1
    assert not (tmp_path / "pred").exists()


def test_folder_inputs_find_every_fits_spelling_but_no_companion(tmp_path: Path) -> None:
    names = ["a.fits", "b.fit", "c.FITS", "d.fits.gz", "e.Fit"]
    companions = ["a.prev.fits", "a.truth.fits", "d.prev.fits.gz", "old.MASK.FITS", "a.pseudo.fits"]
    others = [".a.mask.fits.123.abc.tmp", "notes.txt", "f.fits.bak"]
    for name in names + companions + others:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in exposure_files(tmp_path)] == sorted(names)


def test_a_gzip_exposure_in_a_folder_is_predicted(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    plain = write_exposure(tmp_path / "sd_2.fits", ("11",), seed=16)
    (folder / "sd_2.fits.gz").write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    fits.HDUList([fits.PrimaryHDU()]).writeto(folder / "sd_2.truth.fits.gz")
    out = tmp_path / "pred"
    assert (
        main(["predict", str(folder), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"]) == 0
    )
    with fits.open(out / "sd_2.mask.fits") as hdul:
        assert hdul[0].header["INPUTSHA"] == file_sha256(folder / "sd_2.fits.gz")
        assert hdul["DET11.MASK"].data.shape == (SIDE, SIDE) and hdul["DET11.MASK"].data.any()


def test_a_three_channel_model_without_its_law_is_one_line(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = torch.load(tiny_model, weights_only=True)
    saved["arch"] = {**saved["arch"], "in_channels": 3}
    bad = tmp_path / "no_law.pt"
    torch.save(saved, bad)
    exposure = write_exposure(tmp_path / "exp_l.fits", ("11",), seed=16)
    status = main(["predict", str(exposure), "--out", str(tmp_path / "pred"), "--model", str(bad)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"slewdark predict: error: {bad}: ")
    assert err.endswith(
        ": a three-channel UNet checkpoint without the law (and its fit) of its third channel\n"
    )


def test_the_product_says_which_previous_exposure_and_timing_the_model_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = save_model(tmp_path / "three.pt", {**ARCH, "in_channels": 3})
    write_exposure(tmp_path / "sd_prev.fits", ("11",), seed=20)
    named = write_exposure(tmp_path / "sd_named.fits", ("11",), seed=21)
    alone = write_exposure(tmp_path / "sd_alone.fits", ("11",), seed=22)
    untimed = write_exposure(tmp_path / "sd_untimed.fits", ("11",), seed=23)
    with fits.open(named, mode="update") as hdul:
        hdul[0].header.update(PREVFILE="sd_prev.fits", TSINCE=60.0)
    with fits.open(untimed, mode="update") as hdul:
        hdul[0].header.update(PREVFILE="sd_prev.fits")
    out = tmp_path / "pred"
    with caplog.at_level(logging.WARNING):
        status = main(
            ["predict", str(named), str(alone), str(untimed), "--out", str(out), "--model", str(model)]
        )
    assert status == 0
    headers = {name: fits.getheader(out / f"sd_{name}.mask.fits") for name in ("named", "alone", "untimed")}
    assert headers["named"]["PREVUSED"] == "sd_prev.fits" and "LAWTIME" not in headers["named"]
    assert headers["alone"]["PREVUSED"] == "none" and "LAWTIME" not in headers["alone"]
    assert headers["untimed"]["PREVUSED"] == "sd_prev.fits" and headers["untimed"]["LAWTIME"] == "nominal"
    warnings = [r.getMessage() for r in caplog.records if "no previous exposure" in r.getMessage()]
    assert len(warnings) == 1 and str(alone) in warnings[0] and "not evidence of none" in warnings[0]
    timing = [r.getMessage() for r in caplog.records if "no TSINCE" in r.getMessage()]
    assert len(timing) == 1 and str(untimed) in timing[0]
