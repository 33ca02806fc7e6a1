"""Can the small flow codec code motion at all? The flow codec of conf/model/small.yaml (E_flow, G_flow, its
hyperprior) trained alone, as a flow autoencoder, on DIS flow between consecutive original frames, and
measured on held-out frame pairs: decoded-flow end-point error against DIS, beside the zero-motion EPE, and the
flow bits (`python benchmarks/bench_flow_codec.py --markdown`).

Why: in stage 2 the decoded flow ends no better than zero motion (BENCHMARKS.md, operating points). Whether that
is the codec (it cannot learn to code DIS's flow at these sizes) or the training signal (once the residual codec
is on, nothing asks the flow to follow the motion) decides what to change. This trains the flow codec in
isolation with loss = w * Charbonnier(flow_hat - flow_ref) [pixels] + flow bpp (noisy rate), Adam 1e-3, clip 1,
aux step, the "noise" training mode, 128x128 crops of 2-frame clips (batch 4) of the training clips (bikes
[0, 200), bigbuckbunny [0, 100)), one seed. Held out: consecutive pairs of carphone [0, 32) (never trained on)
and bikes [200, 232), whole frames padded to 64; flow bits from the rounded latents' likelihoods
("round" mode: the coder's code length up to its per-string flush). EPE over the frame area, in pixels.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import CONF, HELD_OUT, TRAIN, base_parser, machine_line, table  # noqa: E402
from render import section  # noqa: E402

CROP, BATCH = 128, 4
FLOW_WEIGHTS = (3.0, 30.0)  # [ours] w of the flow term (bits per pixel per pixel of error); 0.3 codes ~0 bits
BUDGETS = (1000, 3000)


def load_frames(spans: dict) -> dict:
    from gvc.data import open_video, sample_clips

    out = {}
    for name, (a, b) in spans.items():
        with open_video(sample_clips()[name]) as r:
            out[name] = r.read_clip(a, b - a)
    return out


def pairs_batch(train: dict, gen, flow_model):
    """BATCH random (ref, target, DIS flow ref->target) crops of consecutive training frames."""
    import torch

    refs, tgts = [], []
    names = list(train)
    for _ in range(BATCH):
        frames = train[names[int(torch.randint(len(names), (1,), generator=gen))]]
        t = int(torch.randint(frames.shape[0] - 1, (1,), generator=gen))
        y = int(torch.randint(frames.shape[-2] - CROP + 1, (1,), generator=gen))
        x = int(torch.randint(frames.shape[-1] - CROP + 1, (1,), generator=gen))
        refs.append(frames[t, :, y : y + CROP, x : x + CROP])
        tgts.append(frames[t + 1, :, y : y + CROP, x : x + CROP])
    ref, tgt = torch.stack(refs), torch.stack(tgts)
    return ref, tgt, flow_model(ref, tgt)


def build(flow_normalizer: float | None = None):
    """conf/model/small.yaml's P-frame codec; flow_normalizer (pixels) overrides the config's when given."""
    from omegaconf import OmegaConf

    from gvc.models.pframe import PFrameCodec

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "small.yaml"), resolve=True)
    kw = {k: v for k, v in cfg["pframe"].items() if k != "_target_"}
    if flow_normalizer is not None:
        kw["flow_normalizer"] = float(flow_normalizer)
    return PFrameCodec(**kw)


def flow_parts(codec):
    return [codec.flow_encoder, codec.flow_generator, codec.flow_bottleneck]


def step_fn(codec, weight: float):
    import torch

    from gvc import losses
    from gvc.models.latents import TrainLatents

    params = [p for m in flow_parts(codec) for n, p in m.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in codec.flow_bottleneck.named_parameters() if n.endswith("quantiles")]
    opt, opt_aux = torch.optim.Adam(params, lr=1e-3), torch.optim.Adam(aux, lr=1e-3)

    def step(ref, tgt, flow_ref):
        out = codec.code(tgt, ref, TrainLatents("noise"), flow_ref=flow_ref, residual=False)
        bpp = losses.bpp(out.likelihoods, tgt.shape[-2] * tgt.shape[-1]).mean()
        loss = weight * losses.flow_loss(out.flow_hat, flow_ref) + bpp
        opt.zero_grad(set_to_none=True)
        opt_aux.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        codec.flow_bottleneck.aux_loss().backward()
        opt_aux.step()
        return float(bpp.detach())

    return step


def evaluate(codec, held: dict, flow_model) -> dict:
    """Per clip, over consecutive pairs: decoded-flow EPE, zero-motion EPE, the EPE of the reference flow's
    block means at the flow latent's resolution (gvc.eval.motion.block_mean_flow: the motion finer than the
    latent grid, what even a perfect coder of the latent would miss) and the flow bpp (rounded latents)."""
    import torch

    from gvc import losses
    from gvc.eval.motion import block_mean_flow, end_point_error
    from gvc.models.latents import TrainLatents
    from gvc.training.base import pad_to_multiple

    block = codec.flow_encoder.downsampling
    out = {}
    codec.eval()
    with torch.no_grad():
        for name, frames in held.items():
            epe, zero, coarse, bpp = [], [], [], []
            h, w = frames.shape[-2:]
            for t in range(frames.shape[0] - 1):
                ref, tgt = frames[t : t + 1], frames[t + 1 : t + 2]
                flow_ref = flow_model(ref, tgt)
                pr, pt, pf = (pad_to_multiple(v, 64) for v in (ref, tgt, flow_ref))
                o = codec.code(pt, pr, TrainLatents("round"), flow_ref=pf, residual=False)
                epe.append(end_point_error(o.flow_hat[..., :h, :w], flow_ref))
                zero.append(end_point_error(torch.zeros_like(flow_ref), flow_ref))
                coarse.append(end_point_error(block_mean_flow(flow_ref, block), flow_ref))
                bpp.append(float(losses.bpp(o.likelihoods_q, h * w).mean()))
            out[name] = {"epe": float(np.mean(epe)), "zero_motion_epe": float(np.mean(zero)),
                         "block_mean_epe": float(np.mean(coarse)), "flow_bpp": float(np.mean(bpp))}  # fmt: skip
    codec.train()
    return out


def run(budgets, weights, seed: int = 0, flow_normalizer: float | None = None) -> dict:
    import torch
    from omegaconf import OmegaConf

    from gvc.models.flow import build_flow_estimator

    torch.set_num_threads(1)
    flow_model = build_flow_estimator(
        OmegaConf.to_container(OmegaConf.load(CONF / "model" / "small.yaml").flow)
    )
    train, held = load_frames(TRAIN), load_frames(HELD_OUT)
    result = {"machine": machine_line(torch.device("cpu")), "runs": {}, "budgets": list(budgets)}
    for weight in weights:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        codec = build(flow_normalizer)
        norm = codec.config["flow_normalizer"]
        step = step_fn(codec, weight)
        t0, bpps, done = time.time(), [], 0
        for b in sorted(budgets):
            while done < b:
                bpps.append(step(*pairs_batch(train, gen, flow_model)))
                done += 1
            result["runs"][f"w{weight}/n{norm:g}@{b}"] = {
                "weight": weight, "flow_normalizer": norm, "steps": b, "train_s": time.time() - t0,
                "train_bpp_noisy": float(np.mean(bpps[-100:])), "clips": evaluate(codec, held, flow_model),
            }  # fmt: skip
            print(f"[flow-codec] w{weight}/n{norm:g}@{b} done", file=sys.stderr, flush=True)
    return result


def markdown(result: dict) -> str:
    rows = []
    for r in result["runs"].values():
        for clip, m in r["clips"].items():
            rows.append([
                f"{r['weight']:g}", f"{r.get('flow_normalizer', 16):g}", f"{r['steps']:,}", clip, f"{m['flow_bpp']:.4f}", f"{m['epe']:.2f}",
                f"{m['zero_motion_epe']:.2f}", f"{m['epe'] / max(m['zero_motion_epe'], 1e-9):.2f}x",
                "-" if "block_mean_epe" not in m else f"{m['block_mean_epe']:.2f}",
            ])  # fmt: skip
    return "\n".join([
        "## The flow codec alone (bench_flow_codec)",
        "",
        f"Machine: {result['machine']}. conf/model/small.yaml's flow codec trained alone on DIS flow (128x128 "
        "crops, batch 4): loss = w * Charbonnier(flow_hat - flow_ref) + flow bpp. Held out: consecutive pairs of "
        "carphone [0, 32) and bikes [200, 232), whole frames; flow bpp of the rounded latents; EPE in pixels.",
        "",
        "    python benchmarks/bench_flow_codec.py --markdown --out-json benchmarks/results/bench_flow_codec.json",
        "",
        table(["w", "flow_normalizer [px]", "steps", "clip", "flow bpp", "decoded-flow EPE", "zero-motion EPE", "EPE / zero motion",
               "block-mean EPE (latent grid)"], rows),  # fmt: skip
        "",
        "Goal (stage 2): decoded-flow EPE <= 0.5x the zero-motion EPE on every held-out clip.",
    ]) + "\n"  # fmt: skip


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    p.add_argument("--weights", nargs="+", type=float, default=list(FLOW_WEIGHTS))
    p.add_argument("--flow-normalizer", type=float, default=None, help="override the model's (pixels)")
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None)
    args = p.parse_args()
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        result = run(args.budgets, args.weights, flow_normalizer=args.flow_normalizer)
        if args.out_json and args.out_json.exists():  # keep the runs of other settings
            result["runs"] = {**json.loads(args.out_json.read_text()).get("runs", {}), **result["runs"]}
        if args.out_json:
            args.out_json.write_text(json.dumps(result, indent=1))
    print(
        json.dumps(result, indent=1) if args.json else section("bench_flow_codec", markdown(result)), end=""
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
