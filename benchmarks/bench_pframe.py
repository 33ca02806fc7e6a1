"""P-frame (video) codec cost: training step time and peak memory vs unroll length T, with and without
activation checkpointing; encode / decode frames/s of the smoke VideoCodec on the sample clips.

    python benchmarks/bench_pframe.py [--markdown | --json] [--device cpu|cuda] [--quick] [--paper]

1. Stage-2 training step as gvc.training.pframe does it: VideoCodec.forward_clip (frozen I-frame codec, DIS flow
   on the CPU, noise quantization) on a (B, T, 3, H, W) crop of consecutive bikes frames, the trainer's loss
   over the P-frames (gvc.objectives.PFrameObjective via _common.PFrameStep: rate + 255^2 MSE + LPIPS (random
   AlexNet) + Charbonnier flow (stage.flow_loss, relative) + GAN of D_P on [y_res_hat, y_free]), then the
   trainer's update (gvc.training.update.TrainingUpdate: G + aux step, clip, non-finite guard, one D_P step). T = 2, 3, 4, 6, 9, checkpoint_pframes off / on. Each configuration runs
   in a fresh Python process: on CPU the peak RSS over the steps (VmHWM, reset just before the first step) and
   that minus the RSS before the first step (models, data, imports); on CUDA torch.cuda.max_memory_allocated.
2. encode_video / decode_video (gvc.codec.coder; I-frame then P-frames, no GOP) of the first N frames of each
   sample clip with the smoke VideoCodec (I-frame codec briefly fitted on carphone, P-frame codec initialised
   from it), frames already decoded into memory; time split into entropy coding (compressai compress/decompress),
   flow estimation (DIS, encoder only) and the rest (networks, padding, colour conversion, container).
"""

from __future__ import annotations

import json
import os

import torch
from _common import (
    PFrameStep,
    Stopwatch,
    base_parser,
    build_discriminator,
    build_iframe,
    build_video,
    clip_crops,
    clip_paths,
    emit,
    fit_iframe,
    fmt,
    memory_reader,
    peak_rss_mib,
    random_lpips,
    read_frames,
    reset_peak_rss,
    run_isolated,
    section,
    seed_all,
    setup,
    table,
    time_call,
    time_entropy_coding,
)

UNROLLS = (2, 3, 4, 6, 9)


# ------------------------------------------------------------------------------------------------ training step


def step_worker(cfg: dict) -> dict:
    """Runs in a fresh process: build, one warm-up step, `reps` timed steps; time and peak memory."""
    device = torch.device(cfg["device"])
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    seed_all(0)
    t, b, s = cfg["T"], cfg["batch"], cfg["crop"]
    video = build_video(cfg["model"], checkpoint_pframes=cfg["ckpt"]).to(device).train()
    disc = build_discriminator(cfg["model"], "discriminator_p").to(device).train()
    step = PFrameStep(video, disc, random_lpips().to(device), device)
    clip = clip_crops("bikes", t, b, s).to(device)  # (B, T, 3, s, s), consecutive frames
    base = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    tm = time_call(lambda: step(clip), device, cfg["warmup"], cfg["reps"])
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
    return {**cfg, "step_s": tm["median"], "times": tm["times"], "base_mib": base, "peak_mib": peak}


# ------------------------------------------------------------------------------------------------ coding


def coding(device, fit_steps: int, frames: int) -> dict:
    import tempfile
    from pathlib import Path

    from gvc.codec.coder import decode_video, encode_video

    seed_all(0)
    iframe = build_iframe("smoke")
    fit = fit_iframe(iframe, read_frames("carphone_pristine", 32), fit_steps)
    video = build_video("smoke", iframe=iframe).to(device).eval()
    video.update(force=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in clip_paths():
            reader = memory_reader(name, frames)
            out = Path(tmp) / f"{name}.gvc"
            encode_video(reader, video, out, frames=1)  # warm-up (one I-frame; builds DIS)
            sw = Stopwatch(device)
            orig = video.estimate_flow

            def timed_flow(ref, x, orig=orig, sw=sw):
                with sw("flow"):
                    return orig(ref, x)

            video.estimate_flow = timed_flow
            try:
                with time_entropy_coding(sw, "enc entropy"), sw("enc total"):
                    st = encode_video(reader, video, out, estimate=False)
            finally:
                del video.estimate_flow
            with time_entropy_coding(sw, "dec entropy"), sw("dec total"):
                n_dec = sum(1 for _ in decode_video(out, video))
            assert n_dec == st.num_frames
            n = st.num_frames
            p_bytes = [f.bytes for f in st.frames if f.frame_type == "P"]
            rows.append(
                {
                    "clip": name,
                    "size": f"{st.width}x{st.height}",
                    "frames": n,
                    "enc_fps": n / sw.total["enc total"],
                    "dec_fps": n / sw.total["dec total"],
                    "enc_s": sw.total["enc total"],
                    "enc_entropy_s": sw.total["enc entropy"],
                    "enc_flow_s": sw.total["flow"],
                    "dec_s": sw.total["dec total"],
                    "dec_entropy_s": sw.total["dec entropy"],
                    "bpp": st.bpp,
                    "i_bytes": st.frames[0].bytes,
                    "p_bytes_mean": sum(p_bytes) / max(1, len(p_bytes)),
                }
            )
    return {"fit": fit, "rows": rows}


# ------------------------------------------------------------------------------------------------ main


def run(args, device) -> dict:
    quick, cuda = args.quick, device.type == "cuda"
    res = {"device": str(device), "quick": quick, "threads": torch.get_num_threads()}
    smoke = {"model": "smoke", "batch": 8 if cuda else 2, "crop": 256 if cuda else 64}
    reps = 1 if quick else (5 if cuda else 2)
    configs = [
        {**smoke, "T": t, "ckpt": ck, "warmup": 1, "reps": reps}
        for t in ((2, 4, 9) if quick else UNROLLS)
        for ck in (False, True)
    ]
    if cuda or args.paper:
        paper = {"model": "paper", "batch": 8 if cuda else 1, "crop": 256 if cuda else 128}
        unrolls = UNROLLS if cuda else (2, 3)
        configs += [
            {**paper, "T": t, "ckpt": ck, "warmup": 1 if cuda else 0, "reps": 1 if not cuda else reps}
            for t in unrolls
            for ck in (False, True)
        ]
    res["steps"] = []
    for c in configs:
        c = {**c, "device": str(device), "threads": args.threads}
        r = run_isolated(c, timeout=600)
        res["steps"].append({**c, **r})
        print(f"[bench_pframe] {json.dumps(res['steps'][-1])}", file=os.sys.stderr, flush=True)
    res["coding"] = coding(device, fit_steps=40 if quick else 100, frames=4 if quick else 8)
    return res


def markdown(res: dict) -> str:
    cuda = res["device"] == "cuda"
    mem = "peak GPU memory allocated (MiB)" if cuda else "peak RSS (MiB)"
    rows = []
    for r in res["steps"]:
        if "error" in r:
            rows.append(
                [
                    r["model"],
                    f"{r['batch']}x{r['T']}x3x{r['crop']}x{r['crop']}",
                    r["T"],
                    "on" if r["ckpt"] else "off",
                    "-",
                    f"failed: {r['error']}",
                    "-",
                    "-",
                ]
            )
            continue
        rows.append(
            [
                r["model"],
                f"{r['batch']}x{r['T']}x3x{r['crop']}x{r['crop']}",
                r["T"],
                "on" if r["ckpt"] else "off",
                r["reps"],
                fmt(r["step_s"]),
                fmt(r["peak_mib"], 4),
                fmt(r["peak_mib"] - r["base_mib"], 4),
            ]
        )
    t_steps = table(
        [
            "model",
            "clip (B x T x 3 x H x W)",
            "T",
            "checkpointing",
            "timed steps",
            "step (s, median)",
            mem,
            "step memory (MiB, peak - before first step)",
        ],
        rows,
    )
    c = res["coding"]
    crow = []
    for r in c["rows"]:
        crow.append(
            [
                r["clip"],
                r["size"],
                r["frames"],
                fmt(r["enc_fps"]),
                f"{100 * r['enc_entropy_s'] / r['enc_s']:.1f}%",
                f"{100 * r['enc_flow_s'] / r['enc_s']:.1f}%",
                f"{100 * (r['enc_s'] - r['enc_entropy_s'] - r['enc_flow_s']) / r['enc_s']:.1f}%",
                fmt(r["dec_fps"]),
                f"{100 * r['dec_entropy_s'] / r['dec_s']:.1f}%",
                fmt(r["bpp"]),
                r["i_bytes"],
                fmt(r["p_bytes_mean"], 4),
            ]
        )
    t_cod = table(
        [
            "clip",
            "size",
            "frames",
            "encode fps",
            "enc: entropy",
            "enc: flow (DIS)",
            "enc: networks + rest",
            "decode fps",
            "dec: entropy",
            "bpp",
            "I-frame bytes",
            "mean P-frame bytes",
        ],
        crow,
    )
    has_paper = any(r["model"] == "paper" for r in res["steps"])
    settings = [
        f"Device: {res['device']}"
        + (" (bf16 autocast for the networks)" if cuda else " (float32)")
        + ("; --quick" if res["quick"] else ""),
        f"Threads: torch intra-op {res['threads']} (2 cores shared with other jobs: timings under load)",
        "Weights: random init (P-frame codec initialised from the I-frame codec); LPIPS random AlexNet; flow: "
        "DIS (OpenCV, CPU) as in conf/model/*.yaml.",
    ]
    if not has_paper:
        settings.append(
            "Paper-size model: not run by default on CPU (GPU only: see bench_iframe for how long even one paper "
            "I-frame step takes on this CPU); `--paper` runs it at batch 1, 128x128, T = 2 and 3."
        )
    body = [
        "### Training step vs unroll length (fresh process per row)",
        t_steps,
        "### Encode / decode of the sample clips (smoke VideoCodec, I then P-frames)",
        f"I-frame codec fitted {c['fit']['steps']} steps ({fmt(c['fit']['seconds'])} s) on carphone crops first (P-frame codec: init from it, "
        "untrained), so the bitrates are not meaningful; speed and the split of time are.",
        t_cod,
    ]
    return section("P-frame / video codec (bench_pframe)", torch.device(res["device"]), settings, body)


def main(argv=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--paper", action="store_true", help="also the paper-size model on CPU (slow)")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(step_worker(json.loads(args.worker))))
        return 0
    device = setup(args)
    os.environ.setdefault("TQDM_DISABLE", "1")
    emit(args, run(args, device), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
