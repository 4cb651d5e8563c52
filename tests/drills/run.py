"""Run the reliability drills (``make drills``) and print their lines of figures together.

Each drill is its own process (``python -m tests.drills.drill_<name>``): its progress goes to
stderr as it runs, its line(s) of figures are collected and printed again at the end. The exit
status is non-zero when any drill missed its goal or failed to run.

    .venv/bin/python -m tests.drills.run                    # every drill, full size (~15 min)
    .venv/bin/python -m tests.drills.run --quick            # every drill, < 1 min each
    .venv/bin/python -m tests.drills.run kill9 abuse        # some of them
    make drills DRILLS_ARGS="--quick pg_outage"
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python tests/drills/run.py): the repository first
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.drills.common import ROOT, exit_on_sigterm

DRILLS = ("kill9", "pg_outage", "abuse", "schemathesis")
#: a drill still running after this long is stopped (by its PID) and counted as failed
DRILL_TIMEOUT_S = 45 * 60


def run_one(name: str, quick: bool) -> tuple[int, list[str]]:
    """Run one drill; its exit status and the lines it printed on stdout."""
    command = [sys.executable, "-m", f"tests.drills.drill_{name}", *(["--quick"] if quick else [])]
    print(f"\n=== drill {name}{' (quick)' if quick else ''}", file=sys.stderr, flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=DRILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, [f"{name}: did not finish within {DRILL_TIMEOUT_S // 60} min goal=FAIL"]
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    print(f"=== drill {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    lines = [line for line in out.splitlines() if line.strip()]
    if process.returncode and not lines:
        lines = [f"{name}: exited with {process.returncode} before its figures goal=FAIL"]
    return process.returncode, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "drills", nargs="*", metavar="DRILL", help=f"any of {', '.join(DRILLS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute a drill")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    unknown = sorted(set(args.drills) - set(DRILLS))
    if unknown:
        parser.error(f"unknown drill(s) {', '.join(unknown)}; choose from {', '.join(DRILLS)}")
    started = time.monotonic()
    status = 0
    figures: list[str] = []
    for name in args.drills or DRILLS:
        code, lines = run_one(name, args.quick)
        status = status or code
        figures += lines
    print(f"\n=== drill figures ({time.monotonic() - started:.0f} s)", flush=True)
    for line in figures:
        print(line, flush=True)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
