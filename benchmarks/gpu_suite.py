"""GPU suite: the figures to take on a lent H100/H200-class GPU, in one command (benchmarks/gpu_suite.sh).

    python benchmarks/gpu_suite.py [--device cuda|cpu] [--tiny] [--markdown | --json] [--benchmarks BENCHMARKS.md]

1. Stage-2 training step (benchmarks/_common.PFrameStep: VideoCodec.forward_clip + gvc.objectives.PFrameObjective,
   then the trainer's update, gvc.training.update.TrainingUpdate: G + aux step, clip, D_P step; bf16 autocast
   on CUDA) of the paper model at 256x256, T=9, batch 8: median step time,
   FLOPs per step (torch.utils.flop_counter.FlopCounterMode over one whole step: forward, backward, D step),
   achieved TFLOP/s and MFU against the GPU's dense bf16 peak; the DIS flow (OpenCV, CPU) share of the step.
2. The same at T=12 with activation checkpointing (VideoCodec checkpoint_pframes): step time and peak memory
   (torch.cuda.max_memory_allocated; CPU: peak RSS of this process).
3. 1080p decode: the paper model's .gvc of the 1280x720 sample clip resized to 1920x1080 (I then P-frames),
   decoded by gvc.codec.coder.decode_video; P-frame fps including entropy decoding, and the entropy share.
   Weights are random (CDFs built), so bitrates are not meaningful and entropy decoding is pessimistic.
4. Cross-device decoding: the smoke model's file encoded on the run's device, decoded there and on the CPU: the
   decoded latents are bit-identical (the hyper-synthesis that picks CDFs runs at the portable placement) and
   the frames agree to float rounding (max |diff|, share of identical 8-bit values).

--tiny runs the same code at toy sizes (smoke model, 64x64 crops, short clips); the default test suite runs it on
the CPU (tests/benchmarks/test_gpu_suite.py) so the suite cannot rot. --benchmarks FILE replaces (or appends) this script's
section "## GPU suite (gpu_suite)" in FILE; otherwise the section is printed.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from _common import (
    PFrameStep,
    Stopwatch,
    base_parser,
    build_discriminator,
    build_video,
    clip_crops,
    fmt,
    memory_reader,
    peak_rss_mib,
    random_lpips,
    reset_peak_rss,
    section,
    seed_all,
    setup,
    sync,
    table,
    time_call,
    time_entropy_coding,
)

TITLE = "GPU suite (gpu_suite)"

#: dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; first match wins
PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1))


@dataclass(frozen=True)
class Sizes:
    model: str = "paper"
    crop: int = 256
    batch: int = 8
    t_train: int = 9
    t_checkpoint: int = 12
    decode_size: tuple[int, int] = (1920, 1080)
    decode_frames: int = 5
    cross_frames: int = 4
    warmup: int = 1
    reps: int = 3


FULL = Sizes()
TINY = Sizes(
    model="smoke",
    crop=64,
    batch=1,
    t_train=3,
    t_checkpoint=4,
    decode_size=(192, 128),
    decode_frames=3,
    cross_frames=3,
    warmup=0,
    reps=1,
)


def peak_tflops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak (TFLOP/s), None on the CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)


def train_figures(s: Sizes, device: torch.device, t: int, checkpointing: bool, count_flops: bool) -> dict:
    """One stage-2 configuration: median step time, FLOPs per step, TFLOP/s, MFU, peak memory, DIS share."""
    from torch.utils.flop_counter import FlopCounterMode

    seed_all(0)
    video = build_video(s.model, checkpoint_pframes=checkpointing).to(device).train()
    disc = build_discriminator(s.model, "discriminator_p").to(device).train()
    step = PFrameStep(video, disc, random_lpips().to(device), device)
    clip = clip_crops("bikes", t, s.batch, s.crop).to(device)
    sw = Stopwatch(device)
    orig = video.estimate_flow

    def timed_flow(ref, x):
        with sw("flow"):
            return orig(ref, x)

    video.estimate_flow = timed_flow
    flops = None
    if count_flops:  # also the warm-up step
        with FlopCounterMode(display=False) as counter:
            step(clip)
        flops = int(counter.get_total_flops())
    base = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    sw.total.clear()
    tm = time_call(lambda: step(clip), device, s.warmup, s.reps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
    flow_s = sw.total["flow"] / (s.warmup + s.reps)
    tflops = None if flops is None else flops / tm["median"] / 1e12
    peak_tf = peak_tflops(device)
    return {
        "T": t,
        "checkpointing": checkpointing,
        "step_s": tm["median"],
        "flops": flops,
        "tflops": tflops,
        "mfu": None if tflops is None or peak_tf is None else tflops / peak_tf,
        "flow_share": flow_s / tm["median"],
        "peak_mib": peak,
        "base_mib": base,
    }


def _coding_model(name: str, device, path: Path):
    """A VideoCodec from conf/model/<name>.yaml (random init, CDFs built) saved as a model file and loaded back
    onto `device` (what a user's decoder has)."""
    from gvc.codec.modelfile import load_model_file, save_model_file

    seed_all(0)
    video = build_video(name).eval()
    save_model_file(path, video)
    return load_model_file(path).to(device).eval()


def decode_figures(s: Sizes, device: torch.device, tmp: Path) -> dict:
    """P-frame decode fps at s.decode_size (entropy decoding included) and the entropy-decoding share."""
    from gvc.codec.coder import decode_video, encode_video

    model = _coding_model(s.model, device, tmp / "decode.gvcm")
    reader = memory_reader("bigbuckbunny", s.decode_frames, s.decode_size)
    path = tmp / "decode.gvc"
    stats = encode_video(reader, model, path, estimate=False)
    sw = Stopwatch(device)
    times = []
    with time_entropy_coding(sw, "entropy"):
        it = iter(decode_video(path, model))
        while True:
            sync(device)
            before = dict(sw.total)
            t0 = time.perf_counter()
            frame = next(it, None)
            sync(device)
            if frame is None:
                break
            times.append((time.perf_counter() - t0, sw.total["entropy"] - before.get("entropy", 0.0)))
    p_times = times[1:]  # frame 0 is the I-frame
    total = sum(t for t, _ in p_times)
    return {
        "size": f"{stats.width}x{stats.height}",
        "frames": len(times),
        "p_frames": len(p_times),
        "p_fps": len(p_times) / total if total else None,
        "entropy_share": sum(e for _, e in p_times) / total if total else None,
        "bpp": stats.bpp,
    }


def _decode_latents(model, path: Path) -> list[list[torch.Tensor]]:
    """Every frame's decoded latents (y_hat; or y_flow_hat, y_res_hat), on the CPU, by VideoCodec.step."""
    from gvc.codec.bitstream import read_bitstream
    from gvc.codec.coder import deterministic, entropy_placement
    from gvc.models.latents import DecodeLatents
    from gvc.models.pframe import PFrameCodec
    from gvc.models.video import GOPState

    header, packets = read_bitstream(path)
    state = GOPState(period=header.gop)
    out = []
    with deterministic():
        for p in packets:
            names = ("",) if p.frame_type == "I" else PFrameCodec.LATENTS
            latents = DecodeLatents.from_packet(
                names, [[b] for b in p.strings], p.shapes, entropy_placement(header.portable_entropy)
            )
            state.index, state.frame_type = p.index, p.frame_type
            state.shift = tuple(p.shift) if p.frame_type == "P" else None
            fo = model.step(None, state, latents)
            keys = ("y_hat",) if p.frame_type == "I" else ("y_flow_hat", "y_res_hat")
            out.append([fo[k].detach().to("cpu") for k in keys])
    return out


def cross_device(s: Sizes, device: torch.device, tmp: Path, decode_device: str = "cpu") -> dict:
    """The smoke model's file encoded on `device`, decoded on `device` and on `decode_device`: latents
    identical?, max |frame difference|, share of identical 8-bit values."""
    from gvc.codec.coder import decode_video, encode_video

    enc = _coding_model("smoke", device, tmp / "cross.gvcm")
    dec = _coding_model("smoke", decode_device, tmp / "cross.gvcm")
    path = tmp / "cross.gvc"
    encode_video(memory_reader("carphone_pristine", s.cross_frames), enc, path)
    here = list(decode_video(path, enc))
    there = list(decode_video(path, dec))
    lat_here, lat_there = _decode_latents(enc, path), _decode_latents(dec, path)
    same_latents = all(
        torch.equal(a, b)
        for fa, fb in zip(lat_here, lat_there, strict=True)
        for a, b in zip(fa, fb, strict=True)
    )
    a, b = torch.stack(here), torch.stack(there)
    q8 = (a * 255).round() == (b * 255).round()
    return {
        "encode_device": str(device),
        "decode_device": decode_device,
        "frames": len(here),
        "latents_identical": same_latents,
        "max_abs_diff": float((a - b).abs().max()),
        "identical_8bit_share": float(q8.float().mean()),
    }


def run(sizes: Sizes, device: torch.device) -> dict:
    res = {"device": str(device), "sizes": asdict(sizes), "threads": torch.get_num_threads()}
    res["peak_tflops"] = peak_tflops(device)
    res["train"] = train_figures(sizes, device, sizes.t_train, checkpointing=False, count_flops=True)
    res["train_checkpointed"] = train_figures(
        sizes, device, sizes.t_checkpoint, checkpointing=True, count_flops=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        res["decode"] = decode_figures(sizes, device, Path(tmp))
        res["cross_device"] = cross_device(sizes, device, Path(tmp))
    return res


def markdown(res: dict) -> str:
    s = res["sizes"]
    cuda = res["device"].startswith("cuda")
    tr, ck, de, cr = res["train"], res["train_checkpointed"], res["decode"], res["cross_device"]
    mem = "peak memory (MiB, max_memory_allocated)" if cuda else "peak memory (MiB, process RSS)"
    rows = [
        [
            s["model"],
            f"{s['batch']} x {r['T']} x 3 x {s['crop']} x {s['crop']}",
            "on" if r["checkpointing"] else "off",
            fmt(r["step_s"]),
            fmt(None if r["flops"] is None else r["flops"] / 1e12),
            fmt(r["tflops"]),
            "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
            f"{100 * r['flow_share']:.1f}%",
            fmt(r["peak_mib"], 4),
        ]
        for r in (tr, ck)
    ]
    t_train = table(
        [
            "model",
            "clip (B x T x 3 x H x W)",
            "checkpointing",
            "step (s, median)",
            "TFLOP per step",
            "TFLOP/s",
            "MFU",
            "DIS flow share",
            mem,
        ],
        rows,
    )
    t_dec = table(
        [
            "model",
            "size",
            "frames (1 I, rest P)",
            "P-frame decode fps (entropy decoding included)",
            "entropy share",
        ],
        [
            [
                s["model"],
                de["size"],
                de["frames"],
                fmt(de["p_fps"]),
                "n/a" if de["entropy_share"] is None else f"{100 * de['entropy_share']:.1f}%",
            ]
        ],
    )
    t_cross = table(
        [
            "encoded on",
            "decoded on",
            "frames",
            "latents identical",
            "max abs frame diff",
            "identical 8-bit values",
        ],
        [
            [
                cr["encode_device"],
                cr["decode_device"],
                cr["frames"],
                "yes" if cr["latents_identical"] else "NO",
                fmt(cr["max_abs_diff"]),
                f"{100 * cr['identical_8bit_share']:.3f}%",
            ]
        ],
    )
    peak = res["peak_tflops"]
    settings = [
        f"Device: {res['device']}"
        + (" (bf16 autocast for the networks)" if cuda else " (float32)")
        + ("; tiny sizes (--tiny)" if s["model"] == "smoke" else ""),
        f"Threads: torch intra-op {res['threads']}",
        "MFU: achieved TFLOP/s (FlopCounterMode FLOPs of one whole step / median step time) over the dense bf16 "
        + (f"peak {peak:g} TFLOP/s" if peak else "peak (unknown for this device: n/a)")
        + "; the DIS flow runs on the CPU inside the step.",
        "Weights: random init (P-frame codec from the I-frame codec), CDFs built; LPIPS random AlexNet.",
    ]
    body = [
        "### Stage-2 training step (G + aux + D_P step)",
        t_train,
        "### P-frame decode (bigbuckbunny resized, I then P-frames)",
        t_dec,
        "### A file encoded on one device, decoded on another (smoke model, carphone)",
        t_cross,
    ]
    return section(TITLE, torch.device(res["device"]), settings, body)


def write_section(path: Path, text: str) -> None:
    """Put `text` (this benchmark's "## TITLE" section) into the markdown file `path` (render.write)."""
    from render import write

    write("gpu_suite", text, path)


def main(argv=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--tiny", action="store_true", help="toy sizes (what the CPU test suite runs)")
    p.add_argument("--benchmarks", type=Path, default=None, help="write the section into this markdown file")
    args = p.parse_args(argv)
    device = setup(args)
    os.environ.setdefault("TQDM_DISABLE", "1")
    res = run(TINY if args.tiny else FULL, device)
    if args.json:
        import json

        print(json.dumps(res, indent=1, default=str))
        return 0
    text = markdown(res)
    if args.benchmarks is not None:
        write_section(args.benchmarks, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
