"""DDP scaling of the smoke I-frame training step on the CPU: 1 process vs 2 processes (gloo).

    python benchmarks/bench_ddp.py [--markdown | --json] [--quick] [--batch 4] [--crop 128] [--steps 10]

Plain torch: torch.multiprocessing.spawn + torch.distributed (gloo, localhost) + DistributedDataParallel around
the smoke IFrameCodec and its discriminator D_I; each process runs the stage-1 step of benchmarks/_common.py
(IFrameStep: HiFiC loss with LPIPS (random AlexNet) through the trainer's update, gvc.training.update, with
torch.distributed as its reducer: G + aux step (the entropy-bottleneck quantiles, which DDP ignores: they are
local, like an aux optimizer), clip, non-finite guard on every rank, D step, all-reduced rate controller) on its own `--batch` random crops (weak scaling:
the global batch grows with the processes). Every process uses one torch thread. Time per step = median over
the timed steps on rank 0, after warm-up steps and a barrier. samples/s = processes * batch / step time;
efficiency = samples/s(2 processes) / (2 * samples/s(1 process)). A 1-process 2-thread run is listed for
reference (the other way to use two cores).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

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
    section,
    seed_all,
    setup,
    table,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, cfg: dict, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(cfg["threads"])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed = world > 1
    if distributed:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    seed_all(0)  # same initial weights on every rank (DDP also broadcasts them)
    codec = build_iframe("smoke").train()
    disc = build_discriminator("smoke").train()
    lpips = random_lpips()
    if distributed:
        ignore = [n for n, _ in codec.named_parameters() if n.endswith("quantiles")]
        DDP._set_params_and_buffers_to_ignore_for_model(codec, ignore)
        step = IFrameStep(DDP(codec), DDP(disc), lpips, "cpu", codec_module=codec, disc_module=disc)
    else:
        step = IFrameStep(codec, disc, lpips, "cpu")
    frames = read_frames("bikes", 8)
    gen = torch.Generator().manual_seed(1000 + rank)
    batches = [random_crops(frames, cfg["batch"], cfg["crop"], gen) for _ in range(4)]
    for i in range(cfg["warmup"]):
        step(batches[i % 4])
    if distributed:
        dist.barrier()
    times = []
    for i in range(cfg["steps"]):
        t0 = time.perf_counter()
        step(batches[i % 4])
        times.append(time.perf_counter() - t0)
    if distributed:
        dist.barrier()
    if rank == 0:
        Path(out).write_text(json.dumps({"times": times}))
    if distributed:
        dist.destroy_process_group()


def measure(world: int, threads: int, batch: int, crop: int, warmup: int, steps: int) -> dict:
    import torch.multiprocessing as mp

    cfg = {"threads": threads, "batch": batch, "crop": crop, "warmup": warmup, "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.json")
        t0 = time.perf_counter()
        mp.spawn(worker, args=(world, cfg, free_port(), out), nprocs=world, join=True)
        wall = time.perf_counter() - t0
        times = json.loads(Path(out).read_text())["times"]
    step_s = statistics.median(times)
    return {
        "processes": world,
        "threads": threads,
        **cfg,
        "step_s": step_s,
        "steps_per_s": 1.0 / step_s,
        "samples_per_s": world * batch / step_s,
        "wall_s": wall,
    }


def run(args, device) -> dict:
    if device.type != "cpu":
        raise SystemExit("bench_ddp measures CPU DDP (gloo); run it with --device cpu")
    steps = args.steps or (5 if args.quick else 10)
    warmup = 2 if args.quick else 3
    res = {"device": "cpu", "quick": args.quick, "cores": len(os.sched_getaffinity(0))}
    res["runs"] = [
        measure(1, 1, args.batch, args.crop, warmup, steps),
        measure(2, 1, args.batch, args.crop, warmup, steps),
        measure(1, 2, args.batch, args.crop, warmup, steps),
    ]
    one, two = res["runs"][0], res["runs"][1]
    res["efficiency"] = two["samples_per_s"] / (2 * one["samples_per_s"])
    return res


def markdown(res: dict) -> str:
    rows = [
        [
            r["processes"],
            r["threads"],
            f"{r['batch']}x3x{r['crop']}x{r['crop']}",
            r["processes"] * r["batch"],
            r["steps"],
            fmt(r["step_s"]),
            fmt(r["steps_per_s"]),
            fmt(r["samples_per_s"]),
        ]
        for r in res["runs"]
    ]
    t = table(
        [
            "processes",
            "threads / process",
            "batch / process",
            "global batch",
            "timed steps",
            "step (s, median)",
            "steps/s",
            "samples/s",
        ],
        rows,
    )
    eff = res["efficiency"]
    settings = [
        "Device: cpu, torch.distributed gloo over localhost, DistributedDataParallel"
        + ("; --quick" if res["quick"] else ""),
        f"This machine has only {res['cores']} cores, shared with other jobs (timings under load): 2 processes "
        "use every core, so the efficiency is a lower bound for a machine with idle cores.",
    ]
    body = [
        t,
        f"DDP scaling efficiency (1 -> 2 processes, 1 thread each) = samples/s(2) / (2 x samples/s(1)) = "
        f"**{eff:.2f}**.",
    ]
    return section("DDP scaling, smoke I-frame step (bench_ddp)", torch.device("cpu"), settings, body)


def main(argv=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--batch", type=int, default=4, help="crops per process per step")
    p.add_argument("--crop", type=int, default=128, help="crop size (multiple of 64)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10, --quick 5)")
    args = p.parse_args(argv)
    args.device = args.device or "cpu"  # a CPU (gloo) benchmark even where a GPU exists
    device = setup(args)
    emit(args, run(args, device), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
