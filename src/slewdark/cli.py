"""The ``slewdark`` command: one sub-command per pipeline stage.

Each sub-command is thin: parse arguments, load and validate ``params.yaml``,
call the library function, report. Errors that a user can fix
(:class:`~slewdark.errors.SlewdarkError`) become one line on stderr and a
non-zero exit status, never a traceback; so do SIGTERM during ``predict``
(exit 143) and a reader that closes the pipe early (``slewdark inspect F | head``,
exit 141, as a process killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from slewdark import __version__
from slewdark.config import DEFAULT_PARAMS, Device, Labels, Params, load_params
from slewdark.errors import SlewdarkError, Terminated

if TYPE_CHECKING:
    from slewdark.inference.predict import PredictOptions, PredictReport

log = logging.getLogger("slewdark")

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def _params(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Params:
    """Load params.yaml with the command's overrides (flags left as None are ignored)."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return load_params(args.params or DEFAULT_PARAMS, given)


def _add_device(p: argparse.ArgumentParser, help_text: str = "default: params device") -> None:
    """The ``--device`` flag of a sub-command: one of :data:`slewdark.config.Device`."""
    p.add_argument("--device", choices=get_args(Device), help=help_text)


# --- simulate -------------------------------------------------------------------------


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate Euclid-like NISP slew darks (with truth)")
    p.add_argument(
        "--set",
        choices=["simulate", "heldout"],
        default="simulate",
        help="which params section to use (default: simulate, the training set)",
    )
    p.add_argument("--out", help="output folder (default: the section's 'out')")
    p.add_argument(
        "--truth-out",
        help="folder of the .truth.fits (default: the section's truth_out; with --out: beside the exposures)",
    )
    p.add_argument("--n-exposures", type=int, help="number of exposures")
    p.add_argument("--detectors", help="comma-separated detector ids, e.g. 11,12")
    p.add_argument("--seed", type=int, help="seed of this data set")


def _run_simulate(args: argparse.Namespace) -> int:
    from slewdark.stages.simulate import run_simulate

    section = args.set
    params = _params(
        args,
        {
            f"{section}.out": args.out,
            f"{section}.truth_out": args.truth_out,
            f"{section}.n_exposures": args.n_exposures,
            f"{section}.detectors": args.detectors,
            f"{section}.seed": args.seed,
        },
    )
    run_simulate(params, section, companion_truth=bool(args.out and not args.truth_out))
    return 0


COMMANDS["simulate"] = _run_simulate


# --- inspect, show ----------------------------------------------------------------------


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="first look at exposures: header, shape, units, noise, NaN/DQ")
    p.add_argument("files", nargs="+", type=Path, help="exposure FITS files")


def _run_inspect(args: argparse.Namespace) -> int:
    from slewdark.ops.inspection import format_report

    failed = 0
    for path in args.files:
        try:
            for line in format_report(path):
                print(line, flush=True)
        except SlewdarkError as error:
            failed += 1
            print(f"slewdark inspect: error: {error}", file=sys.stderr, flush=True)
    if failed:
        print(f"slewdark inspect: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="quick-look PNG of an exposure's detectors (and truth when simulated)")
    p.add_argument("file", type=Path, help="exposure FITS file")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--binning", type=int, default=2, help="display block size in pixels (default 2)")
    p.add_argument(
        "--truth-dir", type=Path, help="folder of the simulator's .truth.fits (default: beside FILE)"
    )


def _run_show(args: argparse.Namespace) -> int:
    from slewdark.ops.quicklook import show_exposure

    if args.binning < 1:
        raise SlewdarkError(f"--binning must be a positive integer, got {args.binning}")
    log.info("wrote %s", show_exposure(args.file, args.out, args.binning, args.truth_dir))
    return 0


COMMANDS["inspect"] = _run_inspect
COMMANDS["show"] = _run_show


# --- profile ----------------------------------------------------------------------------


def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="print a parameter profile as `dvc exp run -S` arguments")
    p.add_argument("name", help="profile in profiles/<name>.yaml, e.g. tiny or full")


def _run_profile(args: argparse.Namespace) -> int:
    import shlex

    from slewdark.ops.profiles import dvc_set_args

    print(shlex.join(dvc_set_args(args.name, args.params or DEFAULT_PARAMS)))
    return 0


COMMANDS["profile"] = _run_profile


# --- release --------------------------------------------------------------------------


def _add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release", help="check, push products to the DVC remote, promote the model to @production, tag git"
    )
    p.add_argument("version", help="release name and git tag, e.g. v1.2.0 or 1.2.0")
    p.add_argument("--model", help="checkpoint whose MLflow model version is promoted (default: unet.model)")
    p.add_argument("-r", "--remote", help="DVC remote to push to (default: the repository's default remote)")
    p.add_argument("--push-tag", action="store_true", help="also push the git tag to origin")


def _run_release(args: argparse.Namespace) -> int:
    from slewdark.ops.release import release, summary

    params = _params(args)
    published = release(
        ".",
        args.version,
        args.model or params.unet.model,
        params.tracking.registered_model,
        params.tracking.uri,
        args.remote,
        args.push_tag,
    )
    for line in summary(published):
        print(line)
    return 0


COMMANDS["release"] = _run_release


# --- patches, patch-truth, train-ae, embed ----------------------------------------------


def _add_patches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patches", help="normalise detectors and cut them into patches (data/patches)")
    p.add_argument("--raw", help="folder of input exposures (default: data.train)")
    p.add_argument("--out", help="output folder (default: patches.out)")
    p.add_argument("--size", type=int, help="patch side in pixels, stride = size (study: 136, 68, 34)")


def _run_patches(args: argparse.Namespace) -> int:
    from slewdark.core.scaling import Scaling
    from slewdark.io.exposures import exposure_files
    from slewdark.stages.patches import BackgroundOptions, PatchOptions, build_patches

    params = _params(args, {"data.train": args.raw, "patches.out": args.out, "patches.size": args.size})
    cfg = params.patches
    background = cfg.background
    options = PatchOptions(
        size=cfg.size,
        stride=cfg.stride if args.size is None else cfg.size,
        n_channels=cfg.n_channels,
        scaling=Scaling(**params.scaling.model_dump()),
        background=(
            BackgroundOptions(background.threshold, background.mad_factor, background.min_neighbor)
            if background.enabled
            else None
        ),
        split_mode=cfg.split.mode,
        fractions=(cfg.split.train, cfg.split.val, cfg.split.test),
        seed=params.seed,
    )
    n = build_patches(exposure_files(params.data.train), cfg.out, options)
    log.info("wrote %d patches of %d px to %s", n, cfg.size, cfg.out)
    return 0


def _add_patch_truth(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("patch-truth", help="evaluation only: true class of every patch (simulator's truth)")


def _run_patch_truth(args: argparse.Namespace) -> int:
    from slewdark.stages.patch_truth import build_patch_truth

    params = _params(args)
    cfg = params.patch_truth
    counts = build_patch_truth(
        params.patches.out, params.data.train_truth, cfg.out, cfg.persistence_threshold, cfg.min_pixels
    )
    log.info("wrote %s: %s", cfg.out, counts)
    return 0


def _add_train_ae(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-ae", help="train the autoencoder (Optuna study, MLflow runs) -> models/ae.pt")
    p.add_argument("--n-trials", type=int, help="Optuna trials (0 = train once with the ae values)")
    p.add_argument("--epochs", type=int, help="maximum epochs per training")
    _add_device(p)


def _run_train_ae(args: argparse.Namespace) -> int:
    from slewdark.stages.train_ae import run_train_ae

    params = _params(
        args, {"optuna.n_trials": args.n_trials, "ae.epochs": args.epochs, "device": args.device}
    )
    metrics = run_train_ae(
        params.patches.out, params.ae, params.optuna, params.seed, params.device, params.tracking
    )
    log.info("wrote %s: best val loss %.6g", params.ae.model, metrics["best_val_loss"])
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="latent vector and reconstruction loss of every patch -> data/latents")
    _add_device(p)


def _run_embed(args: argparse.Namespace) -> int:
    from slewdark.stages.embed import run_embed

    params = _params(args, {"device": args.device})
    summary = run_embed(params.patches.out, params.ae.model, params.embed, params.device, params.tracking)
    log.info("wrote %d latent vectors of %d numbers", summary["n_patches"], summary["latent_dim"])
    return 0


COMMANDS["patches"] = _run_patches
COMMANDS["patch-truth"] = _run_patch_truth
COMMANDS["train-ae"] = _run_train_ae
COMMANDS["embed"] = _run_embed


# --- cluster, classify -----------------------------------------------------------------


def _add_cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="UMAP + Gaussian mixtures of the latent space -> data/clusters")
    p.add_argument("--mode", choices=["channelwise", "merged"], help="default: params cluster.mode")


def _run_cluster(args: argparse.Namespace) -> int:
    from slewdark.stages.cluster import run_cluster

    metrics = run_cluster(_params(args, {"cluster.mode": args.mode}))
    counts = (metrics["n_clusters"], metrics["n_groups"], metrics["mode"])
    log.info("%d clusters in %d groups (%s mode)", *counts)
    return 0


def _add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="assign patches of new exposures to the fitted clusters (no refit)")
    p.add_argument("--patches", required=True, help="patches folder of the new exposures (index.csv)")
    p.add_argument("--latents", required=True, help="folder with their latents.npy")
    p.add_argument("--out", required=True, help="output CSV (columns of assignments.csv)")
    p.add_argument("--models", help="fitted models (default: <params cluster.out>/models)")


def _run_classify(args: argparse.Namespace) -> int:
    from slewdark.stages.cluster import classify_patches

    params = _params(args)
    models = args.models or str(Path(params.cluster.out) / "models")
    table = classify_patches(args.patches, args.latents, models, args.out, params)
    inside = table["in_neighbourhood"].mean() if len(table["patch"]) else 0.0
    log.info("classified %d patches (%.1f %% in a cluster neighbourhood)", len(table["patch"]), 100 * inside)
    return 0


COMMANDS["cluster"] = _run_cluster
COMMANDS["classify"] = _run_classify


# --- label, pseudomask, pseudomask-quality ---------------------------------------------


def _add_label(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("label", help="decide which clusters hold persistence -> data/labels/clusters.yaml")


def _run_label(args: argparse.Namespace) -> int:
    from slewdark.stages.label import run_label

    params = _params(args)
    summary = run_label(params)
    counts = (summary["n_persistence"], summary["n_clusters"])
    log.info("wrote %s: %d of %d clusters persistence", params.label.out, *counts)
    return 0


def _add_pseudomask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudomask", help="segment persistence clusters -> data/masks/<stem>.pseudo.fits")
    p.add_argument(
        "--rule",
        choices=["cluster", "neighbourhood"],
        help="which patches are persistence (default: pseudomask.rule)",
    )
    p.add_argument(
        "--law",
        choices=["none", "clusters", "everywhere", "only"],
        help="where the law scaled to the dark labels (default: pseudomask.law)",
    )
    p.add_argument("--out", help="output folder (default: pseudomask.out)")


def _run_pseudomask(args: argparse.Namespace) -> int:
    from slewdark.stages.pseudomask import run_pseudomask

    overrides = {"pseudomask.rule": args.rule, "pseudomask.law": args.law, "pseudomask.out": args.out}
    params = _params(args, overrides)
    stats = run_pseudomask(params)
    log.info("wrote %d pseudo-masks to %s", stats["exposures"], params.pseudomask.out)
    return 0


def _add_pseudomask_quality(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("pseudomask-quality", help="evaluation only: labels and pseudo-masks against the truth")


def _run_pseudomask_quality(args: argparse.Namespace) -> int:
    from slewdark.stages.pseudomask_quality import run_quality

    params = _params(args)
    metrics = run_quality(params)
    log.info("pseudo-mask F1 %.3f, IoU %.3f", metrics["pixels"]["f1"], metrics["pixels"]["iou"])
    return 0


def _add_heuristic_masks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "heuristic-masks", help="ablation: cluster-free heuristic masks of data.train -> <stem>.pseudo.fits"
    )
    p.add_argument("--out", help="output folder (default: ablation.heuristic_masks)")


def _run_heuristic_masks(args: argparse.Namespace) -> int:
    from slewdark.stages.heuristic_masks import run_heuristic_masks

    params = _params(args)
    run_heuristic_masks(params, args.out or params.ablation.heuristic_masks)
    return 0


COMMANDS["label"] = _run_label
COMMANDS["pseudomask"] = _run_pseudomask
COMMANDS["pseudomask-quality"] = _run_pseudomask_quality
COMMANDS["heuristic-masks"] = _run_heuristic_masks


# --- train-unet, predict -----------------------------------------------------------------


def _add_train_unet(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-unet", help="train the segmentation UNet (MLflow run) -> models/unet.pt")
    p.add_argument(
        "--labels",
        choices=get_args(Labels),
        default="pseudo",
        help="pseudo: the pseudo-masks (the product, default); truth: the simulator's truth "
        "(the evaluation's supervised ceiling, written to unet.truth_model); heuristic, cluster: "
        "the ablation's masks (ablation.*_masks), written to models/unet_<labels>.pt",
    )
    p.add_argument("--epochs", type=int, help="maximum epochs")
    _add_device(p)


def _run_train_unet(args: argparse.Namespace) -> int:
    from slewdark.stages.train_unet import run_train_unet

    params = _params(args, {"unet.epochs": args.epochs, "device": args.device})
    log.info("wrote %s", run_train_unet(params, args.labels))
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="persistence mask of exposures -> DIR/<stem>.mask.fits")
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="slew-dark exposure FITS files, or folders (their exposures, without .prev/.truth companions)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--model",
        help="checkpoint path or registry URI models:/NAME@ALIAS (default: params unet.model, "
        "without params.yaml the repository's models/unet.pt)",
    )
    _add_device(p, "default: params device, else auto")
    p.add_argument("--dq", action="store_true", help="also write DETxy.DQ with the persistence bit set")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="run on a local Dask cluster of N worker processes, one exposure per task (default: in-process)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the existing Dask cluster whose scheduler is ADDRESS (e.g. tcp://host:8786)",
    )


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


@dataclass(frozen=True)
class _PredictSetup:
    """What ``slewdark predict`` runs with: from the flags, then params.yaml, then built-in defaults."""

    model: str
    device: str
    tracking_uri: str | None
    options: PredictOptions


def _predict_setup(args: argparse.Namespace) -> _PredictSetup:
    """Settings of ``predict``: params.yaml only when ``--params`` names it or the current folder has it."""
    from slewdark.inference.predict import PredictOptions, default_model, default_tracking_uri

    if args.params is None and not DEFAULT_PARAMS.is_file():
        return _PredictSetup(
            model=args.model or str(default_model()),
            device=args.device or "auto",
            tracking_uri=default_tracking_uri(),
            options=PredictOptions(with_dq=args.dq),
        )
    params = _params(args, {"device": args.device})
    cfg = params.predict
    return _PredictSetup(
        model=args.model or params.unet.model,
        device=params.device,
        tracking_uri=params.tracking.uri,
        options=PredictOptions(
            cfg.batch_size, cfg.write_prob, args.dq, cfg.num_threads, cfg.autocast, cfg.gpu_batch_size
        ),
    )


def _run_predict(args: argparse.Namespace) -> int:
    from slewdark.inference.manifest import MANIFEST_NAME
    from slewdark.inference.predict import load_unet, plan_outputs, predict_files
    from slewdark.io.exposures import exposure_files
    from slewdark.models.device import resolve_device

    inputs = [f for path in args.inputs for f in (exposure_files(path) if path.is_dir() else [path])]
    if not inputs:
        raise SlewdarkError(f"no exposure in {', '.join(map(str, args.inputs))}")
    plan_outputs(inputs, args.out)
    setup = _predict_setup(args)
    if args.workers is None and args.scheduler is None:
        model = load_unet(setup.model, resolve_device(setup.device), setup.tracking_uri)
        report = predict_files(inputs, args.out, model, setup.options)
    else:
        report = _predict_on_cluster(inputs, args, setup)
    log.info(
        "wrote %d of %d masks to %s (%d already current); manifest %s",
        len(report.written),
        len(inputs),
        args.out,
        len(report.skipped),
        args.out / MANIFEST_NAME,
    )
    if report.failed:
        print(f"slewdark predict: {len(report.failed)} of {len(inputs)} files failed", file=sys.stderr)
    return 1 if report.failed else 0


def _predict_on_cluster(inputs: list[Path], args: argparse.Namespace, setup: _PredictSetup) -> PredictReport:
    """``predict --workers N`` or ``--scheduler ADDRESS``: the batch on Dask (imported only here)."""
    from slewdark.inference.batch import cluster_client, predict_on_cluster, threads_per_worker
    from slewdark.inference.predict import load_unet
    from slewdark.models.device import resolve_device

    options = setup.options
    if args.workers is not None and options.num_threads == 0:
        options = replace(options, num_threads=threads_per_worker(args.workers))
    model = load_unet(setup.model, resolve_device("cpu"), setup.tracking_uri)
    with cluster_client(args.workers, args.scheduler) as client:
        return predict_on_cluster(inputs, args.out, client, model, setup.device, setup.tracking_uri, options)


COMMANDS["train-unet"] = _run_train_unet
COMMANDS["predict"] = _run_predict


# --- evaluate -------------------------------------------------------------------------


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="UNet and baselines against the held-out truth -> metrics/eval.json")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="score the UNets of ablation.methods beside the product instead -> metrics/ablation.json",
    )
    _add_device(p)


def _run_evaluate(args: argparse.Namespace) -> int:
    from slewdark.stages.evaluate import evaluation_for, run_evaluate

    params = _params(args, {"device": args.device})
    run_evaluate(params, args.ablation)
    written = evaluation_for(params, args.ablation)
    log.info("wrote %s and %s", written.metrics, written.table)
    return 0


COMMANDS["evaluate"] = _run_evaluate


# --- simulate-stress, robustness --------------------------------------------------------


def _add_simulate_stress(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("simulate-stress", help="simulate every robustness set -> data/stress/<set>")


def _run_simulate_stress(args: argparse.Namespace) -> int:
    from slewdark.stages.simulate_stress import run_simulate_stress

    params = _params(args)
    written = run_simulate_stress(params)
    log.info("wrote %d stress sets to %s: %s", len(written), params.robustness.out, written)
    return 0


def _add_robustness(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="UNet and physics baseline per stress set -> metrics/robustness.*")
    _add_device(p)


def _run_robustness(args: argparse.Namespace) -> int:
    from slewdark.stages.robustness import run_robustness

    params = _params(args, {"device": args.device})
    run_robustness(params)
    log.info("wrote %s and %s", params.robustness.metrics, params.robustness.table)
    return 0


COMMANDS["simulate-stress"] = _run_simulate_stress
COMMANDS["robustness"] = _run_robustness


# --- entry point ----------------------------------------------------------------------

PARSERS = [
    _add_simulate,
    _add_inspect,
    _add_show,
    _add_profile,
    _add_release,
    _add_patches,
    _add_patch_truth,
    _add_train_ae,
    _add_embed,
    _add_cluster,
    _add_classify,
    _add_label,
    _add_pseudomask,
    _add_pseudomask_quality,
    _add_heuristic_masks,
    _add_train_unet,
    _add_predict,
    _add_evaluate,
    _add_simulate_stress,
    _add_robustness,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="slewdark", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"slewdark {__version__}")
    parser.add_argument(
        "--params",
        type=Path,
        help="parameter file (default: params.yaml; predict runs without one, see predict --help)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``slewdark`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return COMMANDS[args.command](args)
    except SlewdarkError as error:
        print(f"slewdark {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"slewdark {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"slewdark {args.command}: terminated, temporary files removed", file=sys.stderr)
        return 128 + stop.signum
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush to a closed pipe stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
