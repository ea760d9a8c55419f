"""The ``slewdark`` command: one sub-command per pipeline stage.

Each sub-command is thin: parse arguments, load and validate ``params.yaml``,
call the library function, report. Errors that a user can fix
(:class:`~slewdark.errors.SlewdarkError`) become one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slewdark import __version__
from slewdark.config import DEFAULT_PARAMS, Params, load_params
from slewdark.errors import SlewdarkError

log = logging.getLogger("slewdark")

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def _params(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Params:
    """Load params.yaml with the command's overrides (flags left as None are ignored)."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return load_params(args.params, given)


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
    p.add_argument("--n-exposures", type=int, help="number of exposures")
    p.add_argument("--detectors", help="comma-separated detector ids, e.g. 11,12")
    p.add_argument("--seed", type=int, help="seed of this data set")


def _run_simulate(args: argparse.Namespace) -> int:
    from slewdark.simulate.dataset import simulate_dataset

    section = args.set
    params = _params(
        args,
        {
            f"{section}.out": args.out,
            f"{section}.n_exposures": args.n_exposures,
            f"{section}.detectors": args.detectors,
            f"{section}.seed": args.seed,
        },
    )
    written = simulate_dataset(getattr(params, section))
    log.info("wrote %d exposures to %s", len(written), getattr(params, section).out)
    return 0


COMMANDS["simulate"] = _run_simulate


# --- entry point ----------------------------------------------------------------------

PARSERS = [_add_simulate]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="slewdark", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"slewdark {__version__}")
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="parameter file (default: params.yaml)"
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


if __name__ == "__main__":
    sys.exit(main())
