"""DDP scaling of train.py's stage-1 step on the CPU: 1 process vs 2 processes (conf/trainer/ddp.yaml, gloo).

    python benchmarks/bench_ddp.py [--out-json PATH | --from-json PATH] [--quick] [--models smoke small]
                                   [--batch 4] [--crop 128] [--steps 20] [--layouts cpu:1x1 ddp:2x1 ...]

Every run is train.py: `+experiment=smoke_iframe` (the bundled sample clips, ST-LPIPS AlexNet, the proportional
rate controller) with `model=<model>`, `--batch` crops of `--crop` pixels per process and the GAN on from step 0,
so every step is the stage-1 module's training step through the one training update (gvc.training.update: G + aux,
clip, non-finite guard on every rank, D, the rate controller fed the all-reduced bpp). The 2-process run is
`trainer=ddp trainer.accelerator=cpu trainer.precision=32-true trainer.devices=2`: Lightning's DDPStrategy exactly
as conf/trainer/ddp.yaml builds it (find_unused_parameters true, process_group_backend null: gloo on CPU), its
ranks launched by Lightning. The 1-process runs are plain `trainer=cpu` (strategy auto), with 1 and 2 torch
threads (the other way to use two cores); `--layouts ddp:1x1` adds one process under the DDP strategy (what the
wrapping costs without a second rank). Each rank reads its own clips (weak scaling: the global batch grows
with the processes). gvc.training.callbacks.RankConsistencyCheck writes every rank's step, lambda_R and float64
weight checksums at the end (and fails the run when they differ); "ranks identical" compares them.

Step times are rank 0's, from Lightning's ThroughputMonitor in the csv log (benchmarks/_common.timed_train):
the median of the steps after the first `warmup`. samples/s = processes * batch / step time; efficiency =
samples/s(2 processes) / (2 * samples/s(1 process, 1 thread)).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import _common
from _common import ROOT, base_parser, fmt, setup, table, timed_train
from render import NOTES_AT

NAME = "bench_ddp"
TITLE = "DDP scaling, train.py's stage-1 step (bench_ddp)"
STAGE1 = ("+experiment=smoke_iframe", "stage.warmup_steps=0")
#: conf/trainer/ddp.yaml on the CPU: its strategy node unchanged (gloo: process_group_backend null)
DDP_CPU = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true")
#: the runs, `trainer:PROCESSESxTHREADS` (trainer=cpu or DDP_CPU; torch threads per process): cpu:1x1 and ddp:2x1
#: give the efficiency; ddp:1x1 (one process under the DDP strategy) shows what the wrapping costs alone
LAYOUTS = ("cpu:1x1", "ddp:2x1", "cpu:1x2", "ddp:1x1")
DEFAULT_LAYOUTS = ("cpu:1x1", "ddp:2x1", "cpu:1x2")
WARMUP = 3  # steps not timed (the first included) [ours]
WORKER_TIMEOUT_S = 1200


def parse_layout(layout: str) -> tuple[str, int, int]:
    """ "ddp:2x1" -> ("ddp", 2, 1)."""
    trainer, shape = layout.split(":")
    processes, threads = (int(v) for v in shape.split("x"))
    return trainer, processes, threads


def layout_overrides(trainer: str, processes: int, threads: int) -> list[str]:
    node = [*DDP_CPU, f"trainer.devices={processes}"] if trainer == "ddp" else ["trainer=cpu"]
    return [*node, f"torch_num_threads={threads}"]


def trainer_of(row: dict) -> str:
    """A row's trainer (rows recorded before ddp:1x1 existed: ddp exactly when 2 processes)."""
    return row.get("trainer", "ddp" if row["processes"] > 1 else "cpu")


def ranks(dump_dir: Path, processes: int) -> dict:
    """The ranks' RankConsistencyCheck records: {"identical": every rank's step, lambda_R, controller state and
    per-module checksums equal rank 0's, "step", "lambda_r", "checksum"} (rank 0's)."""
    recs = [json.loads((dump_dir / f"rank{r}.json").read_text()) for r in range(processes)]
    keys = ("step", "lambda_r", "rate_controller", "modules")
    same = all(all(rec[k] == recs[0][k] for k in keys) for rec in recs[1:])
    return {"identical": same, **{k: recs[0][k] for k in ("step", "lambda_r", "checksum")}}


def measure(model: str, layout: str, args) -> dict:
    trainer, processes, threads = parse_layout(layout)
    out = ROOT / "outputs" / NAME / f"{model}_{trainer}_p{processes}_t{threads}"
    dump = out.parent / f"{out.name}_ranks"
    overrides = [
        *STAGE1,
        f"model={model}",
        f"data.batch_size={args.batch}",
        f"data.crop_size={args.crop}",
        f"stage.max_steps={WARMUP + args.steps}",
        *layout_overrides(trainer, processes, threads),
        "+callbacks.consistency._target_=gvc.training.callbacks.RankConsistencyCheck",
        "+callbacks.consistency.every_n_steps=0",
        f"+callbacks.consistency.dump_dir={dump}",
    ]
    row = {"model": model, "trainer": trainer, "processes": processes, "threads": threads}
    row.update(batch=args.batch, crop=args.crop)
    row["load_1min"] = os.getloadavg()[0]
    row.update(timed_train(overrides, out, WARMUP, {"OMP_NUM_THREADS": str(threads)}, WORKER_TIMEOUT_S))
    if "error" not in row:
        row["samples_per_s"] = processes * args.batch / row["step_med_s"]
        row["ranks"] = ranks(dump, processes)
    print(f"[{NAME}] {model} {layout}: {row.get('step_med_s', row.get('error'))}", file=sys.stderr)
    return row


def run(args, device) -> dict:
    rows = [measure(m, layout, args) for m in args.models for layout in args.layouts]
    return {
        **_common.record_meta(device),
        "quick": args.quick,
        "stage1": list(STAGE1),
        "ddp": list(DDP_CPU),
        "warmup": WARMUP,
        "rows": rows,
    }


def efficiency(rows: list[dict], model: str) -> float | None:
    """samples/s of 2 processes (1 thread) over twice that of 1 process (1 thread); None when one failed."""
    by = {(trainer_of(r), r["processes"], r["threads"]): r for r in rows if r["model"] == model}
    one, two = by.get(("cpu", 1, 1), {}), by.get(("ddp", 2, 1), {})
    if "step_med_s" not in one or "step_med_s" not in two:
        return None
    return two["samples_per_s"] / (2 * one["samples_per_s"])


def markdown(res: dict) -> str:
    body = []
    for r in res["rows"]:
        head = [
            r["model"],
            trainer_of(r),
            r["processes"],
            r["threads"],
            f"{r['batch']}x3x{r['crop']}x{r['crop']}",
        ]
        if "error" in r:
            body.append([*head, f"failed: {r['error']}", "", "", "", "", ""])
            continue
        same = r["ranks"]["identical"] if r["processes"] > 1 else None
        body.append(
            [
                *head,
                r["processes"] * r["batch"],
                r["timed"],
                fmt(r["step_med_s"]),
                fmt(r["samples_per_s"]),
                {True: "yes", False: "**no**", None: "-"}[same],
                fmt(r["load_1min"], 2),
            ]
        )
    headers = [
        "model",
        "trainer",
        "processes",
        "threads / process",
        "batch / process",
        "global batch",
        "timed steps",
    ]
    headers += ["step (s, median)", "samples/s", "ranks identical", "load (1 min) at start"]
    models = list(dict.fromkeys(r["model"] for r in res["rows"]))
    effs = [f"{m} **{fmt(efficiency(res['rows'], m), 2)}**" for m in models]
    lines = [
        *_common.record_header(TITLE, res),
        "- Device: cpu, float32" + ("; --quick" if res["quick"] else ""),
        f"- Every row: `train.py {' '.join(res['stage1'])} model=<model> data.batch_size=<b> "
        f"data.crop_size=<c>`; trainer ddp: `{' '.join(res['ddp'])} trainer.devices=<processes>` (Lightning's "
        "DDPStrategy of conf/trainer/ddp.yaml, gloo); trainer cpu: `trainer=cpu`. Rank 0's step times from "
        f"Lightning's ThroughputMonitor, median after {res['warmup']} steps; ranks compared by "
        "gvc.training.callbacks.RankConsistencyCheck at the end (step, lambda_R, controller state, float64 "
        "checksums of every module).",
        "",
        table(headers, body),
        "",
        "DDP scaling efficiency (1 thread each) = samples/s(ddp, 2 processes) / (2 x samples/s(cpu, 1 process)): "
        + ", ".join(effs)
        + ".",
        "",
        NOTES_AT,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--models", nargs="+", choices=("smoke", "small", "paper"), default=["smoke", "small"])
    p.add_argument("--batch", type=int, default=4, help="crops per process per step")
    p.add_argument("--crop", type=int, default=128, help="crop size (multiple of 64)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20, --quick 3)")
    p.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(DEFAULT_LAYOUTS))
    _common.add_record_arguments(p)
    args = p.parse_args(argv)
    args.device = "cpu"  # a CPU (gloo) benchmark even where a GPU exists
    args.steps = args.steps or (3 if args.quick else 20)
    return _common.record_main(args, NAME, lambda: run(args, setup(args)), markdown)


if __name__ == "__main__":
    raise SystemExit(main())
