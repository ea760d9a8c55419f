"""slewdark predict on a Dask cluster: same masks as in-process, manifest, skips, failures, dead workers.

Every test runs a real ``distributed.LocalCluster`` of worker processes on real
FITS files (one 2040 x 2040 detector per exposure, the tiny UNet of
``test_predict``).
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import pytest
import torch
from astropy.io import fits
from distributed import Client

from slewdark.cli import main
from slewdark.config import load_params
from slewdark.inference.batch import cluster_client, predict_on_cluster
from slewdark.inference.manifest import MANIFEST_NAME
from slewdark.inference.predict import PredictOptions, PredictReport, load_unet, predict_files
from slewdark.io.fits import file_sha256
from slewdark.stages.train_unet import arch_kwargs
from test_predict import save_model, save_tiny_model, write_exposure

REPO = Path(__file__).resolve().parents[1]
OPTIONS = PredictOptions(num_threads=1)
"""One torch thread, as each of two workers on two cores: the same threads, the same bytes."""
TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.mask\.fits\.(?P<pid>\d+)\.\w+\.tmp$")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "unet.pt")


@pytest.fixture(scope="module")
def exposures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three one-detector slew darks."""
    folder = tmp_path_factory.mktemp("exposures")
    return [write_exposure(folder / f"sd{i}.fits", ("11",), seed=i) for i in range(3)]


@pytest.fixture(scope="module")
def in_process(model: Path, exposures: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The masks of ``exposures`` predicted in this process (the reference)."""
    out = tmp_path_factory.mktemp("in_process")
    report = predict_files(exposures, out, load_unet(model, torch.device("cpu")), OPTIONS)
    assert len(report.written) == len(exposures)
    return out


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two local workers; a task whose worker dies is rerun once, and fails when a second one dies."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), cluster_client(workers=2) as c:
        yield c


def on_cluster(client: Client, model: Path, exposures: list[Path], out: Path) -> PredictReport:
    """``predict_on_cluster`` with the tiny model on the CPU."""
    unet = load_unet(model, torch.device("cpu"))
    return predict_on_cluster(exposures, out, client, unet, "cpu", None, OPTIONS)


def manifest(out: Path) -> dict[str, dict[str, str]]:
    """``manifest.csv`` by input file name."""
    with open(out / MANIFEST_NAME, newline="") as handle:
        return {Path(row["input"]).name: row for row in csv.DictReader(handle)}


def assert_same_masks(made: Path, reference: Path, stems: list[str]) -> None:
    """MASK and PROB data identical, byte for byte, in two folders of products."""
    for stem in stems:
        with fits.open(made / f"{stem}.mask.fits") as a, fits.open(reference / f"{stem}.mask.fits") as b:
            for name in ("DET11.MASK", "DET11.PROB"):
                assert a[name].data.tobytes() == b[name].data.tobytes(), (stem, name)


def test_two_workers_write_the_in_process_masks_and_a_rerun_skips_them(
    client: Client, model: Path, exposures: list[Path], in_process: Path, tmp_path: Path
) -> None:
    report = on_cluster(client, model, exposures, tmp_path)

    assert report.written == [tmp_path / f"{p.stem}.mask.fits" for p in exposures]
    assert_same_masks(tmp_path, in_process, [p.stem for p in exposures])
    rows = manifest(tmp_path)
    assert sorted(rows) == [p.name for p in exposures]
    for path in exposures:
        row = rows[path.name]
        assert row["input"] == str(path.absolute())
        assert row["inputsha"] == file_sha256(path)
        assert (row["status"], row["error"], row["detectors"]) == ("ok", "", "1")
        assert (row["model"], row["modelsha"]) == (str(model), file_sha256(model))
        assert (row["modelver"], row["mlrun"]) == ("7", "run-123")
        assert float(row["seconds"]) > 0
    written_at = [os.stat(out).st_mtime_ns for out in report.written]

    again = on_cluster(client, model, exposures, tmp_path)
    in_process_again = on_cluster(client, model, exposures, in_process)

    assert again.skipped == report.written and not again.written
    assert {row["status"] for row in manifest(tmp_path).values()} == {"skipped"}
    assert [os.stat(out).st_mtime_ns for out in report.written] == written_at
    assert len(in_process_again.skipped) == len(exposures)  # a product is current however it was made


def test_the_release_architecture_gives_the_same_bytes_on_two_threads_as_on_one_thread_workers(
    client: Client, exposures: list[Path], tmp_path: Path
) -> None:
    arch = arch_kwargs(load_params(REPO / "params.yaml").unet)
    model = save_model(tmp_path / "release_arch.pt", arch)
    unet = load_unet(model, torch.device("cpu"))
    two_threads = predict_files(exposures[:1], tmp_path / "in_process", unet, PredictOptions(num_threads=2))
    workers = predict_on_cluster(exposures[:1], tmp_path / "workers", client, unet, "cpu", None, OPTIONS)

    assert len(two_threads.written) == len(workers.written) == 1
    assert_same_masks(tmp_path / "workers", tmp_path / "in_process", [exposures[0].stem])


def test_a_corrupt_input_fails_alone_and_a_rerun_retries_only_it(
    model: Path, exposures: list[Path], in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no params.yaml: the built-in defaults
    corrupt = tmp_path / "broken.fits"
    corrupt.write_bytes(exposures[0].read_bytes()[:5000])
    inputs = [str(exposures[0]), str(corrupt), str(exposures[1])]
    argv = ["predict", *inputs, "--out", "masks", "--model", str(model), "--device", "cpu"]

    status = main([*argv, "--workers", "2"])

    rows = manifest(tmp_path / "masks")
    assert status == 1
    assert rows["broken.fits"]["status"] == "failed"
    assert rows["broken.fits"]["error"].startswith(f"{corrupt}: ")
    assert "\n" not in rows["broken.fits"]["error"]
    assert [rows[p.name]["status"] for p in exposures[:2]] == ["ok", "ok"]
    assert not (tmp_path / "masks" / "broken.mask.fits").exists()

    corrupt.write_bytes(exposures[2].read_bytes())
    assert main(argv) == 0  # in-process: the same manifest, the failed input retried

    rows = manifest(tmp_path / "masks")
    assert [rows[name]["status"] for name in ("sd0.fits", "broken.fits", "sd1.fits")] == [
        "skipped",
        "ok",
        "skipped",
    ]
    assert_same_masks(tmp_path / "masks", in_process, ["sd0", "sd1"])


def kill_workers_writing(out: Path, stem: str, times: int, timeout: float = 120) -> list[int]:
    """SIGKILL the worker processes writing ``out/<stem>.mask.fits``, ``times`` in turn.

    The worker's pid is in the name of the temporary file it writes.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while len(killed) < times and time.monotonic() < deadline:
        for temporary in out.glob(f".{stem}.mask.fits.*.tmp"):
            match = TEMPORARY.match(temporary.name)
            pid = int(match["pid"]) if match else 0
            if pid and pid not in killed and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.005)
    return killed


def test_a_worker_killed_mid_batch_loses_only_its_task(
    client: Client, model: Path, exposures: list[Path], in_process: Path, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(on_cluster, client, model, exposures, tmp_path)
        killed = kill_workers_writing(tmp_path, exposures[1].stem, times=1)
        report = batch.result(timeout=300)

    assert len(killed) == 1
    assert killed[0] not in client.run(os.getpid).values()
    assert len(report.written) == len(exposures) and not report.failed
    assert {row["status"] for row in manifest(tmp_path).values()} == {"ok"}
    assert_same_masks(tmp_path, in_process, [p.stem for p in exposures])


def test_an_input_that_kills_every_worker_it_meets_is_recorded_as_failed(
    client: Client, model: Path, exposures: list[Path], tmp_path: Path
) -> None:
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(on_cluster, client, model, exposures[:1], tmp_path)
        killed = kill_workers_writing(tmp_path, exposures[0].stem, times=2)
        report = batch.result(timeout=300)

    assert len(killed) == 2
    assert report.failed and not report.written
    row = manifest(tmp_path)[exposures[0].name]
    assert row["status"] == "failed"
    assert row["error"] == (
        f"{exposures[0]}: its task killed the workers that ran it (distributed.scheduler.allowed-failures)"
    )
    assert np.all([w > 0 for w in client.nthreads().values()])  # the workers were restarted


def test_predict_without_workers_never_imports_dask(
    model: Path, exposures: list[Path], in_process: Path
) -> None:
    script = (
        "import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"
        "from slewdark.cli import main\n"
        f"sys.exit(main(['-q', 'predict', {str(exposures[0])!r}, '--out', {str(in_process)!r},"
        f" '--model', {str(model)!r}, '--device', 'cpu']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert manifest(in_process)[exposures[0].name]["status"] == "skipped"
