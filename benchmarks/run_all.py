"""Run the quick benchmarks/bench_*.py and update BENCHMARKS.md from what they print and what is recorded.

Each bench script prints one markdown section (its own heading, the command that reproduces it, the figures)
to stdout; render.py puts it in place of that section with its notes (benchmarks/notes/<bench>.md), and renders
the recorded results (benchmarks/results/*.json) of the long benches again. This runner adds the machine and date,
and never edits figures by hand.

    python benchmarks/run_all.py [--only NAME ...] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

import render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine_description() -> str:
    """One line: CPU model, core count, RAM, GPU if any, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores, {mem_gib:.0f} GiB RAM, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


#: recorded, not run here (hours of training; their make targets, or a GPU): the modules of render.RECORDED,
#: whose results (benchmarks/results/*.json) render.py renders again
RECORDED_ONLY = frozenset(render.RECORDED.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="bench names (e.g. bench_data) to run")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    scripts = sorted(s for s in HERE.glob("bench_*.py") if s.stem not in RECORDED_ONLY)
    if args.only:
        scripts = [s for s in scripts if s.stem in set(args.only)]
    failures = []
    for script in scripts:
        print(f"[bench] running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, str(script), "--markdown"], cwd=ROOT, capture_output=True, text=True
        )
        text = proc.stdout
        if proc.returncode != 0:
            failures.append(script.name)
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            text = f"## {script.stem}\n\nFAILED (exit {proc.returncode}):\n\n```\n{tail}\n```\n"
        render.write(script.stem, text, args.out)
    if not args.only:  # recorded results (and the GPU learning run's, or its "not run yet")
        render.main(["--out", str(args.out)])
    render.set_header(
        args.out,
        "# gvc benchmarks\n\n"
        "Written by `make bench` (`python benchmarks/run_all.py`, each section by benchmarks/render.py); edit the "
        "analysis in benchmarks/notes/, not here.\n\n"
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n"
        f"- Machine: {machine_description()}\n",
    )
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
