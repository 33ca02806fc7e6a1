"""torch.compile and channels_last (conf/train.yaml `compile`, `channels_last`): stage-1 training step time.

    python benchmarks/bench_compile.py [--markdown | --json] [--device cpu|cuda] [--quick] [--models smoke paper]

One stage-1 training step (benchmarks/_common.IFrameStep: the trainer's step past its GAN warm-up, HiFiC loss
with LPIPS (random AlexNet) through gvc.training.update.TrainingUpdate: G + aux step, clip, non-finite guard, D
step, rate controller) in four variants: eager, channels_last, compile, compile + channels_last. The options are
applied as gvc.training.speed does in training: in-place `nn.Module.compile()` of E_I, G_I, the hyperprior towers
(IFRAME_CODEC_TARGETS) and D_I; channels_last on every module's weights (codec, D, LPIPS) and on the input frames.
Each (model, variant) runs in a fresh process with an empty inductor cache directory, so "first step" is the
cold-cache cost a new training run pays (compilation included); "step" is the median of the timed steps after
that step and `warmup` more. "first-step loss" is the G loss of the first step (same seed and input in every
variant: equal up to float rounding when the variant computes the same thing).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch
from _common import (
    IFrameStep,
    base_parser,
    build_discriminator,
    build_iframe,
    emit,
    fmt,
    random_crops,
    random_lpips,
    read_frames,
    run_isolated,
    section,
    seed_all,
    setup,
    sync,
    table,
)

VARIANTS = {
    "eager": (False, False),
    "channels_last": (False, True),
    "compile": (True, False),
    "compile + channels_last": (True, True),
}
WORKER_TIMEOUT_S = 900


def step_time(cfg: dict) -> dict:
    """Worker: build the model, apply the variant, time the first step and the steady-state steps."""
    from gvc.training.speed import IFRAME_CODEC_TARGETS, compile_submodules, to_channels_last

    device = torch.device(cfg["device"])
    compile_, channels_last = VARIANTS[cfg["variant"]]
    seed_all(0)
    codec = build_iframe(cfg["model"]).to(device).train()
    disc = build_discriminator(cfg["model"]).to(device).train()
    lpips = random_lpips().to(device)
    frames = read_frames("bigbuckbunny", 4)
    x = random_crops(frames, cfg["batch"], cfg["crop"], torch.Generator().manual_seed(0)).to(device)
    if channels_last:
        for m in (codec, disc, lpips):
            m.to(memory_format=torch.channels_last)
        x = to_channels_last(x)
    if compile_:
        compile_submodules(codec, IFRAME_CODEC_TARGETS)
        disc.compile()
    step = IFrameStep(codec, disc, lpips, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    first = step(x)
    sync(device)
    first_s = time.perf_counter() - t0
    for _ in range(cfg["warmup"]):
        step(x)
    times = []
    for _ in range(cfg["reps"]):
        sync(device)
        t0 = time.perf_counter()
        step(x)
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    out = {**cfg, "first_s": first_s, "step_s": times[len(times) // 2], "min_s": times[0]}
    out["first_loss"] = first["loss"]
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def run(args, device) -> dict:
    cuda = device.type == "cuda"
    quick = args.quick
    # (model, batch, crop, warmup steps after the first, timed steps)
    if cuda:
        plan = {"smoke": (8, 256, 2, 5 if quick else 20), "paper": (8, 256, 2, 3 if quick else 10)}
    else:
        plan = {"smoke": (4, 128, 1, 3 if quick else 5), "paper": (1, 128, 1, 1 if quick else 2)}
    rows = []
    for model in args.models:
        batch, crop, warmup, reps = plan[model]
        for variant in VARIANTS:
            cfg = dict(
                model=model,
                variant=variant,
                batch=batch,
                crop=crop,
                warmup=warmup,
                reps=reps,
                device=device.type,
                threads=torch.get_num_threads(),
            )
            with tempfile.TemporaryDirectory(prefix="gvc_inductor_") as cache:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold compile in every worker
                os.environ["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
                res = run_isolated(cfg, timeout=WORKER_TIMEOUT_S)
            print(f"[bench_compile] {model} {variant}: {res}", file=sys.stderr, flush=True)
            rows.append({**cfg, **res})
    return {"device": device.type, "quick": quick, "rows": rows}


def markdown(res: dict) -> str:
    rows = res["rows"]
    eager = {r["model"]: r for r in rows if r["variant"] == "eager" and "step_s" in r}
    has_mem = any("peak_gib" in r for r in rows)
    body_rows = []
    for r in rows:
        shape = f"{r['batch']}x3x{r['crop']}x{r['crop']}"
        if "error" in r:
            body_rows.append([r["model"], shape, r["variant"], f"failed: {r['error']}", "", "", "", ""])
            continue
        base = eager.get(r["model"])
        speedup = f"{base['step_s'] / r['step_s']:.2f}x" if base else "n/a"
        body_rows.append(
            [
                r["model"],
                shape,
                r["variant"],
                fmt(r["first_s"]),
                fmt(r["step_s"]),
                speedup,
                r["reps"],
                f"{r['first_loss']:.6g}",
                *([fmt(r.get("peak_gib"))] if has_mem else []),
            ]
        )
    t = table(
        [
            "model",
            "batch",
            "variant",
            "first step incl. compile (s)",
            "step (s, median)",
            "speed-up vs eager",
            "timed steps",
            "first-step loss",
        ]
        + (["peak GPU mem (GiB)"] if has_mem else []),
        body_rows,
    )
    settings = [
        f"Device: {res['device']}"
        + (" (bf16 autocast for the networks)" if res["device"] == "cuda" else " (float32)")
        + ("; --quick" if res["quick"] else ""),
        f"Threads: torch intra-op {torch.get_num_threads()}"
        + ("" if res["device"] == "cuda" else " (2 cores shared with other jobs: timings under load)"),
        "Compile: torch.compile default mode (inductor), in place on E_I, G_I, h_a, h_s towers and D_I; cold "
        "inductor cache per variant (a rerun with a warm cache compiles faster).",
    ]
    body = [
        "### Stage-1 training step (G + aux + D step), four variants",
        t,
        "Both are off by default: their effect depends on the device and the model size (see the rows above), "
        "so measure on the training GPU (`--device cuda`) before turning them on with `compile=true "
        "channels_last=true` (conf/train.yaml). The first step's compile cost is paid once per run (and again "
        "for a new input shape, e.g. the first validation batch).",
    ]
    return section(
        "torch.compile and channels_last (bench_compile)", torch.device(res["device"]), settings, body
    )


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--models", nargs="+", choices=("smoke", "paper"), default=["smoke", "paper"])
    args = parser.parse_args(argv)
    if args.worker:
        cfg = json.loads(args.worker)
        torch.set_num_threads(int(cfg["threads"]))
        os.environ.setdefault("TQDM_DISABLE", "1")
        print(json.dumps(step_time(cfg)))
        return 0
    device = setup(args)
    emit(args, run(args, device), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
