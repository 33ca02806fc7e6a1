"""Photometric augmentation, measured (`make bench-augment`; issue 24, item 3: augmentation only where it measures
better).

The trainer twin of bench_trainer_parity (small codec, MSE-only, lambda 0.013, 64x64 crops, batch 4; the same
seeds, data and budgets) trained once more with `+data/augment=photometric` (conf/data/augment/photometric.yaml:
half the clips get a brightness factor in [0.5, 1.25] and a saturation factor in [0.6, 1.5]) and compared with the
plain trainer twin (bench-parity's models, reused) on bench_trainer_parity's held-out clips: carphone and bikes
frames never trained on, each also darkened (x0.35) and saturated (chroma x1.8). The held-out copies lie outside
the augmentation's ranges on purpose: the question is whether jitter generalizes, not whether it fits them. All
intra through real files: file and payload bpp, PSNR-Y/U/V, each plane's mean error, ST-LPIPS-VGG (carphone),
and the rate on 16 training crops. Verdict per clip, on PSNR-YUV (6:1:1: luma and both chroma planes, since the
jitter is about colour): better where it is higher at no more bits, worse where it is lower at no fewer bits,
otherwise mixed (a move along the RD curve).

    python benchmarks/bench_augment.py --out-json benchmarks/results/bench_augment.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from _common import add_record_arguments, base_parser, machine_line, record_main, table  # noqa: E402

TITLE = "Photometric augmentation (bench_augment)"
BUDGETS = (10000,)
SEEDS = (1234, 1)
AUGMENT = ("+data/augment=photometric",)
TWINS = ("trainer", "trainer_aug")


def run(args) -> dict:
    import bench_trainer_parity as parity
    import torch

    parity_work = ROOT / "outputs" / "bench_trainer_parity"
    train_dir, clips = parity.write_clips(parity_work)
    parity_json = ROOT / "benchmarks" / "results" / "bench_trainer_parity.json"
    known = json.loads(parity_json.read_text())["runs"] if parity_json.exists() else {}
    old = json.loads(args.out_json.read_text())["runs"] if args.out_json and args.out_json.exists() else {}
    result = {"command": " ".join(sys.argv), "machine": machine_line(torch.device("cpu")), "augment": list(AUGMENT),
              "overrides": parity.OVERRIDES, "runs": {}}  # fmt: skip
    for seed in args.seeds:
        models = {
            "trainer": parity.run_trainer(train_dir, seed, args.budgets, parity_work, sys.executable),
            "trainer_aug": parity.run_trainer(
                train_dir, seed, args.budgets, args.work, sys.executable, name="trainer_aug", extra=AUGMENT
            ),  # fmt: skip
        }
        for twin, by_steps in models.items():
            for steps, model in by_steps.items():
                key = f"{twin}@{seed}@{steps}"
                done = (old.get(key) or known.get(key) or {}).get("clips", {})
                work = parity_work if twin == "trainer" else args.work
                result["runs"][key] = {"twin": twin, "seed": seed, "steps": steps,
                                       "clips": parity.measure(model, clips, work, done, perceptual=True)}  # fmt: skip
                if args.out_json is not None:
                    args.out_json.parent.mkdir(parents=True, exist_ok=True)
                    args.out_json.write_text(json.dumps(result, indent=1))
    return result


def _verdict(plain: dict, aug: dict) -> str:
    """better / worse / mixed for one clip: PSNR-YUV (6:1:1, luma and both chroma planes) and payload bpp of the
    augmented twin against the plain one."""
    d_db, d_bpp = aug["psnr_yuv"] - plain["psnr_yuv"], aug["bpp_payload"] / plain["bpp_payload"] - 1
    if d_db >= 0 and d_bpp <= 0:
        return "better"
    if d_db <= 0 and d_bpp >= 0:
        return "worse"
    return "mixed (a move along the RD curve)"


def summarize(result: dict) -> list[dict]:
    """Per (seed, steps, clip): the plain and augmented figures and their differences."""
    rows = []
    runs = result["runs"]
    for aug in runs.values():
        if aug["twin"] != "trainer_aug":
            continue
        plain = runs.get(f"trainer@{aug['seed']}@{aug['steps']}")
        if plain is None:
            continue
        for clip, a in aug["clips"].items():
            p = plain["clips"][clip]
            rows.append({"seed": aug["seed"], "steps": aug["steps"], "clip": clip, "plain": p, "aug": a,
                         "d_psnr_y": a["psnr_y"] - p["psnr_y"], "d_psnr_yuv": a["psnr_yuv"] - p["psnr_yuv"],
                         "bpp_ratio": a["bpp_payload"] / p["bpp_payload"],
                         "worst_plane_plain": max(abs(p[f"mean_err_{c}"]) for c in "yuv"),
                         "worst_plane_aug": max(abs(a[f"mean_err_{c}"]) for c in "yuv"),
                         "verdict": _verdict(p, a)})  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    rows = summarize(result)
    lines = [f"## {TITLE}", "", "```", result["command"], "```", "", f"- Machine: {result['machine']}",
             f"- Both twins: `train.py {' '.join(result['overrides'])}` (bench_trainer_parity's trainer); the "
             f"augmented twin adds `{' '.join(result['augment'])}`. All intra, held-out frames through real files; "
             "rates are payload bpp (the entropy-coded strings). Mean error = decoded minus source plane mean, "
             "8-bit levels.", ""]  # fmt: skip
    head = ["seed", "steps", "clip", "payload bpp plain / aug", "PSNR-Y plain / aug", "dB Y", "dB U / V", "dB YUV 6:1:1",
            "mean error Y / U / V plain", "mean error Y / U / V aug", "ST-LPIPS-VGG plain / aug", "verdict"]  # fmt: skip
    body = []
    for r in rows:
        p, a = r["plain"], r["aug"]
        vgg = (
            ""
            if "st_lpips_vgg" not in a
            else f"{p.get('st_lpips_vgg', float('nan')):.4f} / {a['st_lpips_vgg']:.4f}"
        )
        body.append([str(r["seed"]), str(r["steps"]), r["clip"], f"{p['bpp_payload']:.4f} / {a['bpp_payload']:.4f}",
                     f"{p['psnr_y']:.2f} / {a['psnr_y']:.2f}", f"{r['d_psnr_y']:+.2f}",
                     f"{a['psnr_u'] - p['psnr_u']:+.2f} / {a['psnr_v'] - p['psnr_v']:+.2f}", f"{r['d_psnr_yuv']:+.2f}",
                     " / ".join(f"{p[f'mean_err_{c}']:+.1f}" for c in "yuv"),
                     " / ".join(f"{a[f'mean_err_{c}']:+.1f}" for c in "yuv"), vgg, r["verdict"]])  # fmt: skip
    lines += [table(head, body), ""]
    held = [r for r in rows if r["clip"] != "train_crops"]
    if held:
        better = sum(r["verdict"] == "better" for r in held)
        worse = sum(r["verdict"] == "worse" for r in held)
        lines += [f"Held-out clips: augmentation better on {better}, worse on {worse}, mixed on "
                  f"{len(held) - better - worse} of {len(held)} (seed, clip) pairs (by PSNR-YUV 6:1:1 and payload bpp); "
                  f"mean change PSNR-Y {np.mean([r['d_psnr_y'] for r in held]):+.2f} dB, PSNR-YUV "
                  f"{np.mean([r['d_psnr_yuv'] for r in held]):+.2f} dB at {np.mean([r['bpp_ratio'] for r in held]):.2f}x "
                  f"the payload rate; worst plane-mean error {max(r['worst_plane_plain'] for r in held):.1f} levels "
                  f"plain, {max(r['worst_plane_aug'] for r in held):.1f} augmented.", ""]  # fmt: skip
    lines += ["<!-- notes -->"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_augment")
    add_record_arguments(p)
    args = p.parse_args()
    return record_main(args, "bench_augment", lambda: run(args), markdown)


if __name__ == "__main__":
    raise SystemExit(main())
