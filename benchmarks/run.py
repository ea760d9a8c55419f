"""Run every benchmark (``benchmarks/bench_*.py``) in turn and print its figures.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/run.py [NAME ...]`` for some,
e.g. ``simulate predict predict_memory``). Each benchmark runs in its own process so that one's
threads and memory do not disturb the next.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    """Run the named benchmarks (all when empty); return the number that failed."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = 0
    for script in scripts:
        print(f"== {script.stem} ==", flush=True)
        failed += subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
