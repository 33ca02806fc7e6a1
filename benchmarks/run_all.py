"""Run every benchmarks/bench_*.py and rewrite BENCHMARKS.md from what they print.

Each bench script prints one markdown section (its own heading, the command that reproduces it, the figures)
to stdout. This runner adds the machine and date, and never edits figures by hand.

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


RD_BENCH = "bench_operating_points"
PARITY_BENCH = "bench_iframe_parity"
TRAINER_PARITY_BENCH = "bench_trainer_parity"  # hours of training: `make bench-parity`; rendered here
FLOW_CODEC_BENCH = "bench_flow_codec"  # ~30 min of training: `make bench-flow`; rendered here
RENDERED = (TRAINER_PARITY_BENCH, FLOW_CODEC_BENCH)  # rendered from results/<name>.json with --from-json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="bench names (e.g. bench_data) to run")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    # the operating-point benchmark trains models for ~45 min: `make bench-rd` runs it; here its last recorded
    # results (benchmarks/results/bench_rd_*.json) are rendered again so BENCHMARKS.md keeps them
    # likewise the I-frame parity benchmark (`make bench-parity`, ~40 min): its recorded JSON is rendered again
    scripts = sorted(
        s for s in HERE.glob("bench_*.py") if s.stem not in (RD_BENCH, PARITY_BENCH, TRAINER_PARITY_BENCH)
    )
    if args.only:
        scripts = [s for s in scripts if s.stem in set(args.only)]
    sections, failures = [], []
    for script in scripts:
        print(f"[bench] running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, str(script), "--markdown"], cwd=ROOT, capture_output=True, text=True
        )
        if proc.returncode != 0:
            failures.append(script.name)
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            sections.append(f"## {script.stem}\n\nFAILED (exit {proc.returncode}):\n\n```\n{tail}\n```\n")
        else:
            sections.append(proc.stdout.strip() + "\n")
    parity = HERE / "results" / f"{PARITY_BENCH}.json"
    if parity.exists() and not args.only:  # cached runs: rendered, not retrained
        proc = subprocess.run(
            [sys.executable, str(HERE / f"{PARITY_BENCH}.py"), "--markdown", "--out-json", str(parity)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        sections.append(proc.stdout.strip() + "\n")
    recorded = [(HERE / f"{n}.py", HERE / "results" / f"{n}.json") for n in RENDERED]
    recorded = [(script, js) for script, js in recorded if js.exists() and not args.only]
    recorded += [(HERE / f"{RD_BENCH}.py", js) for js in sorted((HERE / "results").glob("bench_rd_*.json"))]
    for script, js in recorded:  # recorded results: rendered, not retrained
        proc = subprocess.run(
            [sys.executable, str(script), "--from-json", str(js)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        sections.append(proc.stdout.strip() + "\n")
    # the GPU learning run needs a GPU: its recorded result (benchmarks/results/gpu_learn.json), or "not run yet"
    proc = subprocess.run(
        [sys.executable, str(HERE / "gpu_learn.py"), "markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    sections.append(proc.stdout.strip() + "\n")

    header = (
        "# gvc benchmarks\n\n"
        "Written by `make bench` (`python benchmarks/run_all.py`); do not edit by hand.\n\n"
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n"
        f"- Machine: {machine_description()}\n\n"
    )
    args.out.write_text(header + "\n".join(sections))
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
