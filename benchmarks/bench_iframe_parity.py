"""I-frame parity at small size: gvc's small I-frame codecs against compressai's MeanScaleHyperprior(32, 16),
trained by ONE fixed-lambda loop with the same steps, crops and data, measured on held-out frames through their
real compress()/decompress() (`make bench-parity`).

The loop (compressai's habit, identical for every model): loss = lambda * 255^2 * MSE + bpp (noisy-latent
bpp) through the trainer's update (gvc.training.update.TrainingUpdate with smoke_iframe's stage, GAN off,
rate.k_p = 0: Adam lr 1e-3, global grad-norm clip 1, a separate Adam (lr 1e-3) on the entropy bottleneck's
quantiles with the aux loss, the non-finite guard), batch 4 of 64x64 crops drawn by one seeded generator from
training frames (bikes [0, 200), bigbuckbunny [0, 100)), `--steps` steps (2000 by default), one CPU thread.

Held out: every 4th frame of carphone [0, 32) (a clip never trained on) and of bikes [200, 232) (frames never
trained on), coded whole (replicate-padded to a multiple of 64; bits over the unpadded pixels). Figures per
model and lambda: file bpp, PSNR-RGB, PSNR-Y (the clip's own colour matrix), the file bpp of 32 fixed 64x64
training crops (so the rate on crops can be set beside the rate on whole held-out frames), step time.
Comparison: PSNR-Y of each gvc point minus compressai's curve at the same bpp, interpolated linearly in log(bpp)
between measured compressai points only ("n/a (outside the measured range)" otherwise); BD-rate (Bjontegaard,
PSNR-Y) where both curves have 4 points.

    python benchmarks/bench_iframe_parity.py --markdown --out-json benchmarks/results/bench_iframe_parity.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    HELD_OUT,
    TRAIN,
    base_parser,
    fixed_lambda_loss,
    fixed_lambda_update,
    interp_log,
    machine_line,
    random_crops,
    read_frames,
    table,
)
from render import section  # noqa: E402

LAMBDAS = (0.0035, 0.0067, 0.013, 0.025)  # [ours] around compressai's 0.013 (~0.2 bpp on this data)
HELD_OUT_STRIDE = 4
BATCH, CROP = 4, 64

#: the models compared; gvc variants are IFrameCodec kwargs (the "small" one is conf/model/small.yaml's iframe)
MODELS = {
    "compressai_msh": {"compressai": "MeanScaleHyperprior", "N": 32, "M": 16},
    "gvc_hific_cn": {
        "channels": [32] * 5,
        "latent_channels": 16,
        "num_residual_blocks": 1,
        "hyper_channels": 16,
        "in_channels": 3,
        "norm_eps": 1.0e-3,
        "scale_min": 0.11,
        "scale_max": 256.0,
        "scale_levels": 64,
        "norm": "channel",
        "kernel_size": 3,
        "stem": True,
    },
    "gvc_small": "small",
}


def build(spec):
    if isinstance(spec, str):  # conf/model/<spec>.yaml's iframe node
        from _common import build_iframe

        return build_iframe(spec)
    if "compressai" in spec:
        import compressai.models as cm

        return getattr(cm, spec["compressai"])(spec["N"], spec["M"])
    from gvc.models.iframe import IFrameCodec

    return IFrameCodec(**spec)


@torch.no_grad()
def code(net, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Real compress + decompress of x (1, 3, H, W) -> (bits in the strings, decoded frame clamped)."""
    from gvc.training.base import pad_to_multiple

    h, w = x.shape[-2:]
    enc = net.compress(pad_to_multiple(x, 64))
    bits = 8 * sum(len(s[0]) for s in enc["strings"])
    x_hat = net.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w].clamp(0, 1)
    return bits, x_hat


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of frames in [0, 1]: gvc.objectives.psnr."""
    from gvc.objectives import psnr as frame_psnr

    return float(frame_psnr(a, b))


def luma(x: torch.Tensor, matrix: str) -> torch.Tensor:
    """Y' (B, 1, H, W) in [0, 1] of RGB in [0, 1], full range, luma weights of `matrix` (gvc.data.color)."""
    from gvc.data.color import rgb_to_yuv444

    return rgb_to_yuv444(x, matrix, full_range=True)[:, :1] / 255.0


@torch.no_grad()
def evaluate(net, held_out: list, train_crops: torch.Tensor) -> dict:
    bits = pixels = 0
    p_rgb, p_y = [], []
    for x, matrix in held_out:
        b, x_hat = code(net, x)
        bits += b
        pixels += x.shape[-1] * x.shape[-2]
        p_rgb.append(psnr(x_hat, x))
        p_y.append(psnr(luma(x_hat, matrix), luma(x, matrix)))
    crop_bits = sum(code(net, c[None])[0] for c in train_crops)
    return {
        "bpp": bits / pixels,
        "psnr_rgb": float(np.mean(p_rgb)),
        "psnr_y": float(np.mean(p_y)),
        "train_crop_bpp": crop_bits / (len(train_crops) * CROP * CROP),
    }


def load_data():
    """(training frame tensors, held-out [(frame (1, 3, H, W), colour matrix)])."""
    from _common import clip_paths

    from gvc.data import open_video

    # the clips differ in size: one tensor per clip, crops drawn from each in turn (crops_from)
    train_sets = [read_frames(n, b - a, a) for n, (a, b) in TRAIN.items()]
    held_out = []
    for name, (a, b) in HELD_OUT.items():
        with open_video(clip_paths()[name]) as r:
            matrix = r.colour.get("matrix", "bt601")
        clip = read_frames(name, b - a, a)[::HELD_OUT_STRIDE]
        held_out += [(f[None], matrix) for f in clip]
    return train_sets, held_out


def crops_from(sets: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """BATCH random crops from one randomly chosen training clip."""
    i = int(torch.randint(len(sets), (1,), generator=gen))
    return random_crops(sets[i], BATCH, CROP, gen)


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjontegaard delta rate (%) of test vs anchor on PSNR-Y (gvc.eval.rd.bd_rate, 4+ points each), or None
    (fewer points, no overlap, or a curve that is not monotone: short trainings can give one)."""
    from gvc.eval.rd import bd_rate as rd_bd_rate

    try:
        return rd_bd_rate([p["bpp"] for p in anchor], [p["psnr_y"] for p in anchor], [p["bpp"] for p in test],
                          [p["psnr_y"] for p in test], method="akima", min_points=4)  # fmt: skip
    except ValueError:
        return None


def run(models: list[str], lambdas, steps: int, out_json: Path | None) -> dict:
    torch.set_num_threads(1)
    train_sets, held_out = load_data()
    gen = torch.Generator().manual_seed(123)
    train_crops = torch.cat([random_crops(s, 16, CROP, gen) for s in train_sets])
    result = json.loads(out_json.read_text()) if out_json and out_json.exists() else {}
    result.setdefault("runs", {})
    result.update(steps=steps, lambdas=list(lambdas))
    result.setdefault(
        "machine", machine_line(torch.device("cpu"))
    )  # where the runs were trained, kept on re-renders
    for name in models:
        for lam in lambdas:
            key = f"{name}@{lam}"
            if key in result["runs"] and result["runs"][key].get("steps") == steps:
                continue
            torch.manual_seed(0)
            net = build(MODELS[name])
            n_params = sum(p.numel() for p in net.parameters())
            t0 = time.time()
            fit = train_on_sets(net, train_sets, lam, steps)
            ev = evaluate(net, held_out, train_crops)
            result["runs"][key] = {
                "model": name,
                "lambda": lam,
                "steps": steps,
                "params": n_params,
                "train_s": time.time() - t0,
                **fit,
                **ev,
            }
            print(f"[parity] {key}: {result['runs'][key]}", file=sys.stderr, flush=True)
            if out_json:
                out_json.parent.mkdir(parents=True, exist_ok=True)
                out_json.write_text(json.dumps(result, indent=1))
    return result


def train_on_sets(net, sets, lam, steps, seed: int = 0):
    """The fixed-lambda loop (_common.fixed_lambda_loss) through the trainer's update (_common.fixed_lambda_update:
    GAN off, lambda fixed), crops alternating between the training clips (one seeded generator for every
    model); the step time is the forward plus the update."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    update = fixed_lambda_update(net, lam)
    net.train()
    times, bpps = [], []
    for _ in range(steps):
        x = crops_from(sets, gen)
        t0 = time.perf_counter()
        loss, bpp, _ = fixed_lambda_loss(net, x, lam)
        update(loss, net.aux_loss(), None, bpp)
        times.append(time.perf_counter() - t0)
        bpps.append(float(bpp.detach()))
    net.update(force=True)
    net.eval()
    return {"step_s": float(np.median(times[10:] or times)), "train_bpp_noisy": float(np.mean(bpps[-100:]))}


def interleaved_step_times(models: list[str], steps: int = 60, lam: float = 0.013) -> dict[str, float]:
    """Median seconds per training step (the forward plus the trainer's update, as in `train_on_sets`) of each
    model, the models' steps interleaved one by one on the same crops, so that a busy machine slows every model
    alike (the per-run step times above are not comparable when the load changes between runs)."""
    torch.set_num_threads(1)
    train_sets, _ = load_data()
    nets = {m: build(MODELS[m]).train() for m in models}
    updates = {m: fixed_lambda_update(n, lam) for m, n in nets.items()}
    gen = torch.Generator().manual_seed(7)
    times: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(steps):
        x = crops_from(train_sets, gen)
        for m, net in nets.items():
            t0 = time.perf_counter()
            loss, bpp, _ = fixed_lambda_loss(net, x, lam)
            updates[m](loss, net.aux_loss(), None, bpp)
            times[m].append(time.perf_counter() - t0)
    return {m: float(np.median(t[5:])) for m, t in times.items()}


def summarize(result: dict) -> dict:
    """Per model: its points sorted by bpp; per gvc point: PSNR-Y minus compressai's at the same bpp; BD-rate."""
    by_model: dict[str, list[dict]] = {}
    for r in result["runs"].values():
        by_model.setdefault(r["model"], []).append(r)
    for pts in by_model.values():
        pts.sort(key=lambda p: p["bpp"])
    anchor = by_model.get("compressai_msh", [])
    summary = {"models": {}}
    for name, pts in by_model.items():
        deltas = []
        for p in pts:
            ref = (
                interp_log(p["bpp"], [a["bpp"] for a in anchor], [a["psnr_y"] for a in anchor])
                if anchor
                else None
            )
            deltas.append(None if ref is None else p["psnr_y"] - ref)
        inside = [d for d in deltas if d is not None]
        timing = result.get("interleaved_step_s") or {}
        step_ratio = (
            timing[name] / timing["compressai_msh"] if name in timing and "compressai_msh" in timing else None
        )
        summary["models"][name] = {
            "points": pts,
            "delta_psnr_y": deltas,
            "mean_delta_psnr_y": float(np.mean(inside)) if inside else None,
            "bd_rate_vs_compressai": bd_rate(anchor, pts) if name != "compressai_msh" else None,
            "step_time_ratio": step_ratio,
            "crop_to_file_rate": float(np.mean([p["bpp"] / p["train_crop_bpp"] for p in pts])),
        }
    return summary


def markdown(result: dict, summary: dict | None = None) -> str:
    """The figures (summary: `summarize(result)` when not given)."""
    summary = summary or summarize(result)

    def f(v, d=2):
        return "n/a (outside the measured range)" if v is None else f"{v:+.{d}f}"

    rows = []
    for name, s in summary["models"].items():
        for p, d in zip(s["points"], s["delta_psnr_y"]):
            rows.append([
                name, f"{p['lambda']}", f"{p['params'] / 1e3:.0f}k", f"{p['bpp']:.4f}", f"{p['train_crop_bpp']:.4f}",
                f"{p['psnr_rgb']:.2f}", f"{p['psnr_y']:.2f}", "-" if name == "compressai_msh" else f(d),
                f"{1e3 * p['step_s']:.0f}",
            ])  # fmt: skip
    lines = [
        "## I-frame parity at small size (bench_iframe_parity)",
        "",
        f"Machine: {result['machine']}. One fixed-lambda loop for every model: lambda * 255^2 * MSE + bpp, Adam "
        f"1e-3, clip 1, aux step, batch {BATCH} x {CROP}x{CROP} crops, {result['steps']} steps, one thread. "
        "Held out: every 4th frame of carphone [0, 32) and bikes [200, 232), real compress()/decompress(). "
        "Step ms per run is what that run measured (the machine's load changed between runs); the step-time ratio "
        "comes from a separate run that interleaves the models' steps on the same crops.",
        "",
        "    python benchmarks/bench_iframe_parity.py --markdown --out-json benchmarks/results/bench_iframe_parity.json",
        "",
        table(
            [
                "model",
                "lambda",
                "params",
                "file bpp (held out)",
                "file bpp (train crops)",
                "PSNR-RGB",
                "PSNR-Y",
                "PSNR-Y - compressai @ same bpp",
                "step ms",
            ],
            rows,
        ),  # fmt: skip
        "",
        table(
            [
                "model",
                "mean dPSNR-Y (inside range)",
                "BD-rate vs compressai (PSNR-Y)",
                "step time / compressai",
                "held-out / crop rate",
            ],
            [
                [
                    n,
                    f(s["mean_delta_psnr_y"]),
                    "n/a" if s["bd_rate_vs_compressai"] is None else f"{s['bd_rate_vs_compressai']:+.1f}%",
                    f"{s['step_time_ratio']:.2f}x" if s["step_time_ratio"] else "-",
                    f"{s['crop_to_file_rate']:.2f}x",
                ]
                for n, s in summary["models"].items()
            ],
        ),  # fmt: skip
        "",
        "Goal: gvc's small I-frame codec (gvc_small, conf/model/small.yaml) within 0.5 dB of compressai at equal "
        "bpp, with a step time no slower than 1.5x compressai's.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--lambdas", nargs="+", type=float, default=list(LAMBDAS))
    p.add_argument("--out-json", type=Path, default=None)
    args = p.parse_args()
    result = run(args.models, args.lambdas, args.steps, args.out_json)
    if "interleaved_step_s" not in result:
        result["interleaved_step_s"] = interleaved_step_times(args.models)
        if args.out_json:
            args.out_json.write_text(json.dumps(result, indent=1))
    summary = summarize(result)
    if args.json:
        print(json.dumps({**result, "summary": summary}, indent=1))
    else:
        print(section("bench_iframe_parity", markdown(result, summary)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
