"""`make demo`: the main job end to end on the bundled sample footage, tiny model, CPU.

1. stage 1: `python -m gvc.train +experiment=smoke_iframe` (train.py's program; I-frame GAN codec on the
   sample clips);
2. stage 2: `python -m gvc.train +experiment=smoke_pframe stage.iframe_ckpt=...` (P-frame branch, two unroll
   stages);
3. `gvc encode` a real clip (carphone, 176x144) in low-delay I+P mode into a `.gvc` file;
4. `gvc decode` it from the file and the model file alone, `gvc info` on the stream;
5. prints bpp per frame type (from the file) and PSNR per frame (decoded vs source, RGB, BT.709 full range).

Everything goes under `outputs/demo/` of the current folder (removed and rewritten on each run); nothing is read
from the source tree, so an installed wheel runs it too (`python -m gvc.demo`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _run(cmd: list[str]) -> None:
    print(f"\n$ {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {proc.returncode}): {' '.join(cmd)}")
    print(f"[demo] step took {time.perf_counter() - t0:.0f} s", flush=True)


def _per_frame_psnr(source: Path, decoded: Path, frames: int) -> list[float]:
    """PSNR (dB, RGB in [0,1]) of each decoded frame against the source frame."""
    from gvc.data.io import open_video
    from gvc.eval.metrics import psnr

    values = []
    with open_video(source) as src, open_video(decoded) as dec:
        for i in range(frames):
            a, b = src.read_rgb(i), dec.read_rgb(i)
            values.append(float(psnr(a[None], b[None])[0]))
    return values


def _training_rate(run_dir: Path, steps: int = 100) -> tuple[float, float] | None:
    """(mean of the controller's bpp EMA over the last `steps` logged steps, target bpp) of a training run, from
    its CSV log and the Hydra config it saved; None when either is missing."""
    import csv

    from omegaconf import OmegaConf

    logs = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not logs or not cfg_file.exists():
        return None
    with logs[-1].open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/bpp_ema")]
    last_step = int(rows[-1]["step"])
    ema = [float(r["train/bpp_ema"]) for r in rows if int(r["step"]) > last_step - steps]
    return sum(ema) / len(ema), float(OmegaConf.load(cfg_file).rate.target_bpp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs") / "demo")
    parser.add_argument(
        "--clip",
        default="carphone_pristine",
        help="sample clip to code (carphone_pristine, bikes, bigbuckbunny)",
    )
    parser.add_argument("--frames", type=int, default=12, help="frames to encode")
    args = parser.parse_args(argv)

    from gvc.data import sample_clips

    clip = sample_clips()[args.clip]
    if args.out.exists():
        shutil.rmtree(args.out)
    iframe_dir, pframe_dir = args.out / "iframe", args.out / "pframe"
    t_start = time.perf_counter()
    py = sys.executable
    train = [py, "-m", "gvc.train"]
    _run([*train, "+experiment=smoke_iframe", f"paths.output_dir={iframe_dir}"])
    _run(
        [
            *train,
            "+experiment=smoke_pframe",
            f"stage.iframe_ckpt={iframe_dir / 'checkpoints' / 'last.ckpt'}",
            f"paths.output_dir={pframe_dir}",
        ]
    )
    model = pframe_dir / "model.gvcm"
    stream = args.out / f"{args.clip}.gvc"
    decoded = args.out / f"{args.clip}_decoded.y4m"
    stats_json = args.out / f"{args.clip}_encode.json"
    gvc = [py, "-m", "gvc.cli"]
    _run(
        gvc
        + ["encode", str(clip), "-o", str(stream), "--model", str(model), "--frames", str(args.frames)]
        + ["--json", str(stats_json)]
    )
    _run(gvc + ["decode", str(stream), "-o", str(decoded), "--model", str(model)])
    _run(gvc + ["info", str(stream)])

    info = json.loads(
        subprocess.run(
            gvc + ["info", str(stream), "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    pixels = info["width"] * info["height"]
    psnrs = _per_frame_psnr(clip, decoded, info["frames"])
    print(
        f"\n[demo] {args.clip}: {info['width']}x{info['height']}, {info['frames']} frames, "
        f"stream {info['bytes']} bytes -> {info['bpp']:.4f} bpp (file size)"
    )
    print(f"{'frame':>5} {'type':>4} {'bits':>8} {'bpp':>8} {'PSNR dB':>8}")
    for row, p in zip(info["per_frame"], psnrs):
        print(f"{row['index']:>5} {row['type']:>4} {row['bits']:>8} {row['bits'] / pixels:>8.4f} {p:>8.2f}")
    for kind in ("I", "P"):
        rows = [r for r in info["per_frame"] if r["type"] == kind]
        if rows:
            bpp = sum(r["bits"] for r in rows) / (len(rows) * pixels)
            ps = [p for r, p in zip(info["per_frame"], psnrs) if r["type"] == kind]
            print(
                f"[demo] {kind}-frames: {len(rows)}, mean {bpp:.4f} bpp, mean PSNR {sum(ps) / len(ps):.2f} dB"
            )
    for stage, run_dir in (("stage 1 (I)", iframe_dir), ("stage 2 (P)", pframe_dir)):
        rate = _training_rate(run_dir)
        if rate is not None:
            print(
                f"[demo] {stage} training: estimated bpp {rate[0]:.4f} (controller EMA, last 100 steps, "
                f"training crops) vs target {rate[1]:.4f} ({100 * (rate[0] / rate[1] - 1):+.1f}%)"
            )
    print(f"[demo] done in {time.perf_counter() - t_start:.0f} s; outputs in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
