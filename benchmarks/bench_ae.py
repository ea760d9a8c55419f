"""Autoencoder throughput: training and embedding, patches per second, both architectures.

Run: ``.venv/bin/python benchmarks/bench_ae.py [--size 68] [--patches 1024]``. Uses
synthetic patches in a temporary folder (memory-mapped like the real product)
and the real training loop (:func:`slewdark.stages.train_ae.train_autoencoder`, one
epoch) and embedding (:func:`slewdark.stages.embed.embed_patches`); CPU always, CUDA
too when present. Prints patches/s and the compact/seed ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slewdark.io.tables import INDEX_COLUMNS, write_table
from slewdark.models.ae import build_autoencoder
from slewdark.stages.embed import embed_patches
from slewdark.stages.train_ae import AeHyper, TrainData, train_autoencoder
from slewdark.training.fit import FitConfig

WIDTHS = (16, 32, 64)


def synthetic_patches(folder: Path, n: int, size: int) -> None:
    """Noise patches with a bright streak in every fourth, as ``patches`` would write them."""
    rng = np.random.default_rng(0)
    patches = np.clip(0.3 + 0.05 * rng.standard_normal((n, size, size), dtype=np.float32), 0, 1)
    patches[::4, size // 2 : size // 2 + 3] = 0.9
    np.save(folder / "patches.npy", patches)
    np.save(folder / "usable.npy", np.ones((n, size, size), dtype=bool))
    index = [dict.fromkeys(INDEX_COLUMNS, 0) | {"patch": i, "split": "train"} for i in range(n)]
    write_table(folder / "index.csv", index, INDEX_COLUMNS)


def train_rate(folder: Path, arch: str, n: int, size: int, device: torch.device) -> float:
    """Training patches per second over one epoch (forward, backward, step, plus a small validation)."""
    train = np.arange(n)
    val = np.arange(min(64, n))
    data = TrainData(folder, train, val, val, size, "bench")
    hyper = AeHyper(arch, WIDTHS, 64, "mse", 1e-3, 64)
    config = FitConfig(epochs=1, patience=1, lr_patience=1, lr_factor=0.5, min_lr=1e-5, amp=True)
    start = time.perf_counter()
    train_autoencoder(data, hyper, config, device, 0, None)
    return n / (time.perf_counter() - start)


def embed_rate(folder: Path, arch: str, size: int, device: torch.device) -> float:
    """Embedding patches per second (latent and reconstruction loss of every patch)."""
    model = build_autoencoder(arch, size, WIDTHS, 64).to(device).eval()
    n = len(np.load(folder / "patches.npy", mmap_mode="r"))
    start = time.perf_counter()
    embed_patches(model, folder, folder / "latents", 256, device)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=68, help="patch side (default 68)")
    parser.add_argument("--patches", type=int, default=1024, help="patches per measurement")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU threads, {args.patches} patches of {args.size} px")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic_patches(folder, args.patches, args.size)
        for device in devices:
            rates = {}
            for arch in ("seed", "compact"):
                rates[arch] = (train_rate(folder, arch, args.patches, args.size, device),
                               embed_rate(folder, arch, args.size, device))  # fmt: skip
                print(f"{device.type:5s} {arch:8s} train {rates[arch][0]:9.1f} patches/s   "
                      f"embed {rates[arch][1]:9.1f} patches/s")  # fmt: skip
            print(f"{device.type:5s} compact/seed: train x{rates['compact'][0] / rates['seed'][0]:.2f}, "
                  f"embed x{rates['compact'][1] / rates['seed'][1]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
