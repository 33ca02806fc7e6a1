"""Training crop size and the hyperprior: why held-out rates run far above the training-crop rate
(`make bench-crop`; issue: held-out file rate within 1.3x of the training-crop rate).

bench_trainer_parity found that on whole held-out frames the small codec's hyperprior predicts scales far too
small after 20k steps, while on 64x64 tiles it is calibrated: a 64x64 training crop gives a 1x1 z map, so only the
central taps of the hyper-synthesis' first transposed convolution ever train. This bench trains the same trainer
twin (bench_trainer_parity's overrides: small codec, MSE-only, lambda 0.013, seed 1234) on 128x128 crops with
batch 1 (the same pixels per step as 4 x 64x64; z 2x2) to the same budgets, and measures both on the held-out clips
and the training crops (payload bpp: the entropy-coded strings, without the container) with the hyperprior's
calibration (bench_trainer_parity.calibration).

    python benchmarks/bench_crop_size.py --out-json benchmarks/results/bench_crop_size.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from _common import base_parser, machine_line, table  # noqa: E402
from render import section  # noqa: E402

TITLE = "Training crop size and the hyperprior (bench_crop_size)"
BUDGETS = (10000, 20000)
SEED = 1234
#: the 128-crop twin: z 2x2, the same pixels per step as bench_trainer_parity's 4 x 64x64
CROP128 = ("data.crop_size=128", "data.batch_size=1")
CLIPS = ("carphone_pristine", "bikes", "carphone_pristine_dark", "bikes_dark", "train_crops")


def run(args) -> dict:
    import bench_trainer_parity as parity
    import torch

    parity_work = ROOT / "outputs" / "bench_trainer_parity"
    train_dir, clips = parity.write_clips(parity_work)
    crop64 = parity.run_trainer(train_dir, SEED, args.budgets, parity_work, sys.executable)
    crop128 = parity.run_trainer(train_dir, SEED, args.budgets, args.work, sys.executable, name="crop128",
                                 extra=CROP128)  # fmt: skip
    suite = parity._suite(False)
    result = {"command": " ".join(sys.argv), "machine": machine_line(torch.device("cpu")), "seed": SEED,
              "overrides": parity.OVERRIDES, "crop128": list(CROP128), "runs": {}}  # fmt: skip
    for name, models in (("crop64_batch4", crop64), ("crop128_batch1", crop128)):
        for steps, model in models.items():
            key = f"{name}@{steps}"
            row = {"steps": steps, "clips": {}}
            for clip in CLIPS:
                m = parity.measure_gvc(model, clips[clip], args.work / "coded" / key / clip, suite)
                row["clips"][clip] = {"bpp": m["bpp"], "payload_bpp": sum(m["payload_bits"]) / m["pixels"],
                                      "psnr_y": m["summary"]["psnr_y"]}  # fmt: skip
            cal = {c: v for c, v in clips.items() if c in ("carphone_pristine", "bikes", "train_crops")}
            row["calibration"] = parity.calibration([model], cal)
            result["runs"][key] = row
    return result


def markdown(result: dict) -> str:
    lines = [f"## {TITLE}", "", "```", result["command"], "```", "", f"- Machine: {result['machine']}",
             f"- Both twins: `train.py {' '.join(result['overrides'])}` (bench_trainer_parity's trainer), seed "
             f"{result['seed']}; the 128 twin adds `{' '.join(result['crop128'])}` (the same pixels per step).",
             "- Rates are payload bpp (the entropy-coded strings, without the container); ratio: held-out clip over "
             "the 16 training crops.", ""]  # fmt: skip
    rows, cal_rows = [], []
    for key, run in result["runs"].items():
        c = run["clips"]
        crops = c["train_crops"]["payload_bpp"]
        for clip in CLIPS:
            v = c[clip]
            ratio = "" if clip == "train_crops" else f"{v['payload_bpp'] / crops:.2f}x"
            rows.append([key, clip, f"{v['payload_bpp']:.4f}", ratio, f"{v['psnr_y']:.2f}"])
        cal_rows += [[key, *r[1:]] for r in run["calibration"]]
    lines += [table(["twin@steps", "clip", "payload bpp", "held-out / crops", "PSNR-Y"], rows), "",
              "The hyperprior's calibration (|round(y - mu)| / sigma of the coded latents; whole frames as coded, and "
              "the same frames cut into 64x64 tiles, z 1x1 as in 64-crop training):", "",
              table(["model", "clip", "whole frames: mean", "P(> 3 sigma)", "64x64 tiles: mean", "P(> 3 sigma)",
                     "h_s first layer abs(w): central 2x2 / other taps"], cal_rows), "", "<!-- notes -->"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_crop_size")
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None)
    args = p.parse_args()
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        result = run(args)
        if args.out_json is not None:
            args.out_json.parent.mkdir(parents=True, exist_ok=True)
            args.out_json.write_text(json.dumps(result, indent=1))
    print(section("bench_crop_size", markdown(result)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
