"""torch.compile and channels_last (conf/train.yaml `compile`, `channels_last`): train.py's stage-1 step time.

    python benchmarks/bench_compile.py [--out-json PATH | --from-json PATH] [--device cpu|cuda] [--quick]
                                       [--models smoke small paper] [--variants eager compile ...]
                                       [--overrides KEY=VALUE ...]

Each (model, variant) is one run of train.py: `+experiment=smoke_iframe` (the bundled sample clips, ST-LPIPS
AlexNet as the perceptual term, the proportional rate controller) with `model=<model>`, the plan's crops and
batch, and the GAN on from step 0 (`stage.warmup_steps=0`), so every step is the stage-1 module's training step:
the codec forward, the HiFiC objective and the one training update, gvc.training.update (G + aux step, clip,
non-finite guard, D step, rate controller). The variants set `compile` / `channels_last`, which train.py applies
through gvc.training.speed (in-place compile of E_I, G_I, the hyperprior towers and D_I; channels_last on the
module's weights and batches). Every run is a fresh process with an empty inductor cache, so "first step" is the
cold cost a new run pays (compilation included, and the first batch's loading). Lightning's ThroughputMonitor
logs the elapsed training time at every step (benchmarks/_common.timed_train); "step" is the median of the steps
after the first `warmup`. "first-step loss" is train/g_loss of step 0: the same seed, data and initial weights in
every variant, so equal up to float rounding when a variant computes the same thing.
"""

from __future__ import annotations

import os
import sys
import tempfile

from _common import (
    ROOT,
    add_record_arguments,
    base_parser,
    fmt,
    record_header,
    record_main,
    record_meta,
    setup,
    table,
    timed_train,
)
from render import NOTES_AT

NAME = "bench_compile"
TITLE = "torch.compile and channels_last (bench_compile)"
#: (compile, channels_last) of each variant
VARIANTS = {
    "eager": (False, False),
    "channels_last": (False, True),
    "compile": (True, False),
    "compile + channels_last": (True, True),
}
#: model -> (batch, crop, warm-up steps not timed (the first included), timed steps) [ours]: sizes that finish
#: the CPU plan in ~20 minutes on the 2-core dev box; the CUDA plan is the old bench's
PLAN = {
    "cpu": {"smoke": (4, 128, 3, 12), "small": (4, 128, 3, 12), "paper": (1, 128, 2, 4)},
    "cuda": {"smoke": (8, 256, 5, 20), "small": (8, 256, 5, 20), "paper": (8, 256, 3, 10)},
}
QUICK_TIMED = 3  # --quick: timed steps per run
#: the stage-1 run every variant shares: smoke_iframe's data and objective, GAN on from step 0
STAGE1 = ("+experiment=smoke_iframe", "stage.warmup_steps=0")
DEVICE_OVERRIDES = {"cpu": ("torch_num_threads=1",), "cuda": ("trainer=gpu",)}
WORKER_TIMEOUT_S = 1200


def run(args, device) -> dict:
    rows = []
    work = ROOT / "outputs" / NAME
    for model in args.models:
        batch, crop, warmup, timed = PLAN[device.type][model]
        timed = QUICK_TIMED if args.quick else timed
        for variant in args.variants:
            compile_, channels_last = VARIANTS[variant]
            overrides = [
                *STAGE1,
                *DEVICE_OVERRIDES[device.type],
                *args.overrides,
                f"model={model}",
                f"data.batch_size={batch}",
                f"data.crop_size={crop}",
                f"stage.max_steps={warmup + timed}",
                f"compile={str(compile_).lower()}",
                f"channels_last={str(channels_last).lower()}",
            ]
            row = {"model": model, "variant": variant, "batch": batch, "crop": crop, "warmup": warmup}
            row["load_1min"] = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix="gvc_inductor_") as cache:
                env = {"TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": f"{cache}/triton"}
                if device.type == "cpu":
                    env["OMP_NUM_THREADS"] = "1"
                out = work / model / variant.replace(" + ", "_")
                row.update(timed_train(overrides, out, warmup, env, WORKER_TIMEOUT_S))
            print(f"[{NAME}] {model} {variant}: {row.get('step_med_s', row.get('error'))}", file=sys.stderr)
            rows.append(row)
    return {
        **record_meta(device),
        "device": device.type,
        "quick": args.quick,
        "stage1": [*STAGE1, *DEVICE_OVERRIDES[device.type], *args.overrides],
        "rows": rows,
    }


def markdown(res: dict) -> str:
    rows = res["rows"]
    eager = {r["model"]: r for r in rows if r["variant"] == "eager" and "step_med_s" in r}
    body = []
    for r in rows:
        shape = f"{r['batch']}x3x{r['crop']}x{r['crop']}"
        if "error" in r:
            body.append([r["model"], shape, r["variant"], f"failed: {r['error']}", "", "", "", "", ""])
            continue
        base = eager.get(r["model"])
        speedup = f"{base['step_med_s'] / r['step_med_s']:.2f}x" if base else "n/a"
        body.append(
            [
                r["model"],
                shape,
                r["variant"],
                fmt(r["first_s"]),
                fmt(r["step_med_s"]),
                speedup,
                r["timed"],
                f"{r['g_loss'][0]:.6g}",
                fmt(r["load_1min"], 2),
            ]
        )
    headers = ["model", "batch", "variant", "first step (s)", "step (s, median)", "speed-up vs eager"]
    headers += ["timed steps", "first-step loss", "load (1 min) at start"]
    cpu = res["device"] == "cpu"
    lines = [
        *record_header(TITLE, res),
        f"- Device: {res['device']}"
        + (" (float32, torch intra-op 1 thread)" if cpu else " (trainer=gpu: bf16-mixed)")
        + ("; --quick" if res["quick"] else ""),
        f"- Every row: `train.py {' '.join(res['stage1'])} model=<model> data.batch_size=<b> data.crop_size=<c> "
        "compile=<..> channels_last=<..>` (GAN on from step 0: every step is G + aux + D through "
        "gvc.training.update); a fresh process with a cold inductor cache per row; step times from Lightning's "
        "ThroughputMonitor in the csv log. The first step includes compilation and the first batch's loading.",
        "",
        table(headers, body),
        "",
        NOTES_AT,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--models", nargs="+", choices=tuple(PLAN["cpu"]), default=["smoke", "small"])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--overrides", nargs="+", default=[], help="more train.py overrides for every row")
    add_record_arguments(parser)
    args = parser.parse_args(argv)
    return record_main(args, NAME, lambda: run(args, setup(args)), markdown)


if __name__ == "__main__":
    raise SystemExit(main())
