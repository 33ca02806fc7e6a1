"""One variable-rate model against fixed-rate models at three points (`make bench-vr`; issue: one model for every
rate, and the bitrate a user asks for).

Trained by `train.py`, MSE-only, the small I-frame codec (conf/model/small.yaml), the same data, seed, steps and
controller law for every model (smoke_iframe's fast proportional controller: k_p 0.1, lambda_init 8, EMA 0.9):
- three fixed-rate models, `rate.target_bpp` 0.064 / 0.13 / 0.22 (the paper's points, on training crops);
- one variable-rate model, `rate=multi` (eight levels, targets 0.02 .. 0.40 bpp including the three points),
  each batch item at a random level: it sees each level 1/8 as often as a fixed model sees its one rate.
Training data: bikes [0, 200) and bigbuckbunny [0, 100) (bench_trainer_parity's clips).

Measured on held-out clips through real files, all intra (gvc.eval.measure): every 4th frame of carphone
[0, 32) and of bikes [200, 232) (bench_trainer_parity's held-out set; never trained on):
- the variable-rate model's curve at q = 0, 1, ..., 7 (its trained levels) beside the fixed models' points:
  PSNR-Y at each fixed model's file bpp, read off the variable-rate curve (log-bpp interpolation between the two
  measured q that bracket it; never extrapolated);
- BD-rate (gvc.eval.rd.bd_rate) on PSNR-Y and on ST-LPIPS-VGG of the variable-rate curve against the three fixed
  points and against x265 (gvc.eval.codecs, HEVC all-intra, CRFs spanning the same rates);
- `gvc encode --bpp` (gvc.codec.target_rate.encode_at_bpp) at 0.064 / 0.13 / 0.22 on each clip: the file's
  bpp against the target, and the time against one encode at a fixed q.

    python benchmarks/bench_variable_rate.py --markdown --out-json benchmarks/results/bench_variable_rate.json
    python benchmarks/bench_variable_rate.py --steps 2000 ...   # the quick variant: NOT converged
"""

from __future__ import annotations

import functools
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import base_parser, machine_line, table  # noqa: E402
from render import NOTES_AT, section  # noqa: E402

#: the fixed-rate models' targets: the paper's three operating points [paper]
POINTS = (0.064, 0.13, 0.22)
STEPS = 10000  # [ours] every model; bench_trainer_parity: held-out PSNR still moves 1-2 dB per doubling here
SEED = 1234
#: train.py overrides shared by every model: MSE-only, smoke_iframe's stage and controller, the small codec
OVERRIDES = (
    "+experiment=smoke_iframe",
    "model=small",
    "loss=mse",
    "loss.w_lpips=0",
    "stage.warmup_steps=0",
    "data.kind=folder",
)
HELD_OUT = ("carphone_pristine", "bikes")
X265_CRFS = (26, 30, 34, 38, 42, 46, 51)  # [ours] spans the small model's rates and qualities on these clips


def model_runs(steps: int) -> dict[str, list[str]]:
    """name -> the overrides that make it: fixed_<target> and multi."""
    runs = {f"fixed_{t:g}": [f"rate.target_bpp={t}"] for t in POINTS}
    runs["multi"] = ["rate=multi"]
    return runs


def train(name: str, extra: list[str], train_dir: Path, work: Path, steps: int, python: str) -> Path:
    """train.py for one model (skipped when its model file exists; resumes its own checkpoint); its .gvcm."""
    model = work / f"{name}_{steps}.gvcm"
    if model.exists():
        return model
    out_dir = work / name
    cmd = [
        python,
        str(ROOT / "train.py"),
        *OVERRIDES,
        *extra,
        f"data.train_path={train_dir}",
        f"seed={SEED}",
        f"stage.max_steps={steps}",
        f"paths.output_dir={out_dir}",
    ]
    print(f"[bench-vr] {shlex.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"train.py failed ({done.returncode}): {done.stderr[-2000:]}")
    (out_dir / "model.gvcm").replace(model)
    (work / f"{name}_{steps}.seconds").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return model


# ------------------------------------------------------------------------------------------------ measuring
METRICS = ("psnr", "st_lpips_vgg")
GOAL_DB, GOAL_RATE, GOAL_TIME = 0.3, 0.03, 3.0  # the goals: dB at the points, --bpp error, time ratio


@functools.cache
def _suite():
    from gvc.eval.metrics import MetricSuite

    return MetricSuite(METRICS)


def _cached(path: Path, key: dict, make) -> dict | list:
    """make()'s result, kept in `path` (JSON) with `key` (what it was made from): a rerun with the same key
    reads it instead of measuring again."""
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            return kept["value"]
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "value": value}))
    return value


def gvc_point(model: Path, clip: Path, out_dir: Path, quality: float | None = None) -> dict:
    """gvc.eval.measure of one model (at quality level q for the variable-rate one) on one clip, all intra
    (kept in out_dir/point.json for the model file's size and time, the clip and q)."""
    from gvc.eval.measure import measure_model

    def make() -> dict:
        p = measure_model(model, clip, out_dir, gop=1, suite=_suite(), quality=quality)
        return {"q": quality, "bpp": p.bpp, "psnr_y": p.summary["psnr_y"],
                "st_lpips_vgg": p.summary["st_lpips_vgg"], "encode_s": p.encode_s}  # fmt: skip

    stat = model.stat()
    key = {"model": str(model), "size": stat.st_size, "mtime": stat.st_mtime, "clip": str(clip), "q": quality}
    return _cached(out_dir / "point.json", key, make)


def x265_points(clip: Path, work: Path) -> list[dict]:
    """x265 (gvc.eval.codecs, medium zerolatency) all intra at X265_CRFS on the same frames."""
    from gvc.eval.codecs.ffmpeg import build_ffmpeg_codec
    from gvc.eval.source import SourceVideo

    def make() -> list[dict]:
        work.mkdir(parents=True, exist_ok=True)
        src = SourceVideo(clip, None, {}, work)
        codec = build_ffmpeg_codec("x265", None, gop=1)
        rows = []
        for crf in X265_CRFS:
            enc = codec.encode(src, crf, work / f"crf{crf}.hevc")
            scores = _suite().evaluate(src.pairs(codec.decode(enc.path, src)), src.width, src.height, src.fps,
                                       features=False)  # fmt: skip
            rows.append({"crf": crf, "bpp": enc.bpp, "psnr_y": scores.summary["psnr_y"],
                         "st_lpips_vgg": scores.summary["st_lpips_vgg"], "command": enc.command})  # fmt: skip
        return rows

    return _cached(work / "points.json", {"clip": str(clip), "crfs": list(X265_CRFS)}, make)


def rate_requests(model: Path, clip: Path, work: Path) -> list[dict]:
    """`gvc encode --bpp` (encode_at_bpp) at each of POINTS on one clip: file bpp, error, probes, encodes and the
    time against one encode of the same clip at the q it found."""
    from gvc.codec.coder import encode_video
    from gvc.codec.modelfile import load_model_file
    from gvc.codec.target_rate import encode_at_bpp

    net = load_model_file(model)
    targets = ((net.gvc_training or {}).get("objective") or {}).get("targets")
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in POINTS:
        row = {"target": target}
        try:
            r = encode_at_bpp(clip, net, work / f"bpp{target:g}.gvc", target, targets=targets)
        except Exception as err:  # noqa: BLE001 - an unreachable target is a result, reported as such
            row["error"] = str(err)
            rows.append(row)
            continue
        fixed = encode_video(clip, net, work / f"fixed{target:g}.gvc", quality=r.quality)
        row.update(r.to_dict())
        row.update(fixed_q_seconds=fixed.seconds, time_ratio=r.seconds / max(fixed.seconds, 1e-9))
        rows.append(row)
    return rows


def run(args) -> dict:
    from bench_trainer_parity import write_clips

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    train_dir, held = write_clips(ROOT / "outputs" / "bench_trainer_parity")
    multi_steps = args.multi_steps or args.steps
    models = {name: train(name, extra, train_dir, work, multi_steps if name == "multi" else args.steps,
                          sys.executable) for name, extra in model_runs(args.steps).items()}  # fmt: skip
    result = {"steps": args.steps, "multi_steps": multi_steps, "seed": SEED, "overrides": list(OVERRIDES), "points": list(POINTS),
              "machine": machine_line(torch.device("cpu")), "command": " ".join(sys.argv), "models": {}, "clips": {}}  # fmt: skip
    for name, model in models.items():
        seconds = work / f"{name}_{args.steps}.seconds"
        result["models"][name] = {
            "file": str(model),
            "train_s": float(seconds.read_text()) if seconds.exists() else None,
        }
    multi = models.pop("multi")
    from gvc.codec.coder import rate_levels
    from gvc.codec.modelfile import load_model_file

    multi_net = load_model_file(multi)
    levels = rate_levels(multi_net)
    result["levels"] = training_levels(multi_net)
    for clip_name in HELD_OUT:
        clip = held[clip_name]
        out = work / "coded" / clip_name
        t0 = time.perf_counter()
        per = {
            "multi": [gvc_point(multi, clip, out / f"multi_q{q}", float(q)) for q in range(levels)],
            "fixed": {n: gvc_point(m, clip, out / n) for n, m in models.items()},
            "x265": x265_points(clip, out / "x265"),
            "bpp_requests": rate_requests(multi, clip, out / "bpp"),
        }
        print(
            f"[bench-vr] {clip_name}: measured in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        result["clips"][clip_name] = per
    result["summary"] = summarize(result)
    return result


def training_levels(net) -> list[dict]:
    """Per level of a variable-rate model file: its target on the training crops, the bpp its controller reached
    there (EMA of the rounded-latent bpp) and its final lambda_R (from the model file's training record)."""
    objective = (net.gvc_training or {}).get("objective") or {}
    state = objective.get("rate_controller") or {}
    return [{"target": t, "reached": lv["bpp_ema"], "lambda_r": lv["lambda_r"]}
            for t, lv in zip(objective.get("targets") or [], state.get("levels") or [])]  # fmt: skip


def _at_rate(curve: list[dict], bpp: float, key: str) -> float | None:
    """`key` of the curve at `bpp`: linear in log bpp between the two measured points around it, else None."""
    pts = sorted((c["bpp"], c[key]) for c in curve)
    for (r0, d0), (r1, d1) in zip(pts, pts[1:]):
        if r0 <= bpp <= r1 and r1 > r0:
            t = (math.log(bpp) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return d0 + t * (d1 - d0)
    return None


def _bd(anchor: list[dict], test: list[dict], key: str, higher: bool) -> float | str:
    from gvc.eval.rd import bd_rate

    try:
        return bd_rate([a["bpp"] for a in anchor], [a[key] for a in anchor], [t["bpp"] for t in test],
                       [t[key] for t in test], higher_is_better=higher)  # fmt: skip
    except ValueError as err:
        return f"n/a ({err})"


def summarize(result: dict) -> dict:
    """Per clip: the variable-rate curve at the fixed models' rates (dB), BD-rates, rate monotonicity and the
    --bpp figures, with the goals met or missed."""
    out = {}
    for clip, per in result["clips"].items():
        curve, fixed = per["multi"], per["fixed"]
        deltas = {}
        for name, f in fixed.items():
            at = _at_rate(curve, f["bpp"], "psnr_y")
            deltas[name] = None if at is None else at - f["psnr_y"]
        rates = [c["bpp"] for c in curve]
        requests = per["bpp_requests"]
        out[clip] = {
            "delta_psnr_y": deltas,
            "monotone": all(b > a for a, b in zip(rates, rates[1:])),
            "bd_psnr_vs_fixed": _bd(list(fixed.values()), curve, "psnr_y", True),
            "bd_stlpips_vs_fixed": _bd(list(fixed.values()), curve, "st_lpips_vgg", False),
            "bd_psnr_vs_x265": _bd(per["x265"], curve, "psnr_y", True),
            "bd_stlpips_vs_x265": _bd(per["x265"], curve, "st_lpips_vgg", False),
            "bpp_errors": {r["target"]: r.get("relative_error") for r in requests},
            "time_ratios": {r["target"]: r.get("time_ratio") for r in requests},
        }
    return out


# ------------------------------------------------------------------------------------------------ report
def _f(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else (x if isinstance(x, str) else fmt.format(x))


def markdown(result: dict) -> str:
    summary = result.get("summary") or summarize(result)
    lines = [
        f"## {TITLE}",
        "",
        f"`{result['command']}`; {result['machine']}. Every model: `train.py {' '.join(result['overrides'])}`, "
        f"{result['steps']} steps (the variable-rate model {result.get('multi_steps', result['steps'])}), seed "
        f"{result['seed']}; fixed-rate models with `rate.target_bpp` "
        f"{' / '.join(f'{t:g}' for t in result['points'])}, the variable-rate model with `rate=multi` (8 levels, "
        "targets 0.02 .. 0.40 bpp). Held-out clips, all intra, real files; ST-LPIPS-VGG lower is better.",
        "",
    ]
    if result.get("levels"):
        rows = [[str(k), f"{lv['target']:g}", _f(lv["reached"], "{:.4f}"), _f(lv["lambda_r"], "{:.3g}")]
                for k, lv in enumerate(result["levels"])]  # fmt: skip
        lines += ["The variable-rate model's levels on the training crops (its controllers at the last step):", "",
                  table(["q", "target bpp", "reached bpp", "lambda_R"], rows), ""]  # fmt: skip
    for clip, per in result["clips"].items():
        s = summary[clip]
        rows = [[f"q {c['q']:g}", _f(c["bpp"], "{:.4f}"), _f(c["psnr_y"], "{:.2f}"), _f(c["st_lpips_vgg"], "{:.4f}")]
                for c in per["multi"]]  # fmt: skip
        for name, f in per["fixed"].items():
            d = s["delta_psnr_y"][name]
            rows.append([f"{name}", _f(f["bpp"], "{:.4f}"), _f(f["psnr_y"], "{:.2f}"), _f(f["st_lpips_vgg"], "{:.4f}")
                         + (f" (variable-rate at this bpp: {d:+.2f} dB)" if d is not None else " (outside the curve)")])  # fmt: skip
        for x in per["x265"]:
            rows.append([f"x265 CRF {x['crf']}", _f(x["bpp"], "{:.4f}"), _f(x["psnr_y"], "{:.2f}"),
                         _f(x["st_lpips_vgg"], "{:.4f}")])  # fmt: skip
        lines += [f"**{clip}** (rate strictly rising in q: {'yes' if s['monotone'] else 'NO'})", "",
                  table(["model", "bpp", "PSNR-Y", "ST-LPIPS-VGG"], rows), ""]  # fmt: skip
        lines += [
            f"BD-rate of the variable-rate curve: against the fixed models {_f(s['bd_psnr_vs_fixed'], '{:+.1f}%')} "
            f"(PSNR-Y), {_f(s['bd_stlpips_vs_fixed'], '{:+.1f}%')} (ST-LPIPS-VGG); against x265 "
            f"{_f(s['bd_psnr_vs_x265'], '{:+.1f}%')} (PSNR-Y), {_f(s['bd_stlpips_vs_x265'], '{:+.1f}%')} "
            "(ST-LPIPS-VGG).",
            "",
        ]
        req = [[f"{r['target']:g}", _f(r.get("file_bpp"), "{:.4f}"), _f(r.get("relative_error"), "{:+.1%}"),
                _f(r.get("quality"), "{:.3f}"), str(len(r.get("probes", []))), str(len(r.get("encodes", []))),
                _f(r.get("time_ratio"), "{:.1f}x"), r.get("error", "")[:90]] for r in per["bpp_requests"]]  # fmt: skip
        lines += [table(["--bpp", "file bpp", "error", "q", "probes", "encodes", "time / fixed-q encode", "note"],
                        req), ""]  # fmt: skip
    lines.append(NOTES_AT)
    return "\n".join(lines) + "\n"


TITLE = "One model for every rate (bench_variable_rate)"


def markdown_pending() -> str:
    """The section while no run has been recorded (benchmarks/results/bench_variable_rate.json absent)."""
    return "\n".join([
        f"## {TITLE}",
        "",
        "```",
        "make bench-vr",
        "```",
        "",
        "**Not recorded yet.** Trains three fixed-rate small I-frame codecs (0.064 / 0.13 / 0.22 bpp) and one "
        "variable-rate codec (`rate=multi`) for the same steps, and measures the variable-rate curve beside the "
        "fixed points, BD-rates against them and x265, and `gvc encode --bpp` on held-out clips.",
        "",
    ])  # fmt: skip


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument(
        "--steps", type=int, default=STEPS, help=f"training steps of every model (default {STEPS})"
    )
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_variable_rate")
    p.add_argument("--train-only", action="store_true", help="train the models and stop")
    p.add_argument(
        "--multi-steps",
        type=int,
        default=None,
        help="steps of the variable-rate model (default --steps; 3 x --steps: the three fixed models' total)",
    )
    p.add_argument("--out-json", type=Path, default=None, help="write the result here")
    p.add_argument("--from-json", type=Path, default=None, help="render a recorded result")
    args = p.parse_args()
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        if args.train_only:
            from bench_trainer_parity import write_clips

            train_dir, _ = write_clips(ROOT / "outputs" / "bench_trainer_parity")
            for name, extra in model_runs(args.steps).items():
                steps = (args.multi_steps or args.steps) if name == "multi" else args.steps
                train(name, extra, train_dir, args.work, steps, sys.executable)
            return 0
        result = run(args)
        if args.out_json is not None:
            args.out_json.parent.mkdir(parents=True, exist_ok=True)
            args.out_json.write_text(json.dumps(result, indent=1))
    print(section("bench_variable_rate", markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
