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

`--loss gan`: the same comparison with GAN models (bench_trainer_parity's GAN twin: HiFiC's loss with ST-LPIPS
AlexNet as the perceptual term, an MSE+LPIPS warm-up over the first GAN_WARMUP_FRACTION of each model's steps,
then G and D), at equal TOTAL steps: the fixed models GAN_STEPS each, the variable-rate model three times that
(default). Its own models, caches and JSON (outputs/bench_variable_rate_gan,
benchmarks/results/bench_variable_rate_gan.json); the measurements add the HF ratio (gvc.eval's detail metric),
and the fixed points are also read on the curve's ST-LPIPS-VGG. Recorded, its figures are a subsection of this
bench's BENCHMARKS.md section.

    python benchmarks/bench_variable_rate.py --loss gan --jobs 2 --out-json benchmarks/results/bench_variable_rate_gan.json
"""

from __future__ import annotations

import functools
import json
import math
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import COPIES, base_parser, machine_line, table  # noqa: E402
from render import NOTES_AT, repo_relative, section  # noqa: E402

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
#: the GAN twin's steps per fixed model (the variable-rate one: 3x) [ours]: sized for ~75 min of wall time on 2
#: cores shared with ~8 other processes, two trainings at once (--jobs 2); NOT converged
GAN_STEPS = 1500
GAN_WARMUP_FRACTION = 0.2  # [ours] bench_trainer_parity's GAN twin: a 1000-step warm-up before its 5k budget
HELD_OUT = ("carphone_pristine", "bikes")
X265_CRFS = (26, 30, 34, 38, 42, 46, 51)  # [ours] spans the small model's rates and qualities on these clips


def model_runs(steps: int) -> dict[str, list[str]]:
    """name -> the overrides that make it: fixed_<target> and multi."""
    runs = {f"fixed_{t:g}": [f"rate.target_bpp={t}"] for t in POINTS}
    runs["multi"] = ["rate=multi"]
    return runs


def gan_overrides() -> list[str]:
    """OVERRIDES with the MSE-only loss settings replaced by bench_trainer_parity's GAN twin (GAN_OVERRIDES), its
    warm-up left to each model (train's `warmup`)."""
    from bench_trainer_parity import GAN_OVERRIDES

    base = [o for o in OVERRIDES if not o.startswith(("loss", "stage.warmup"))]
    return [*base, *(o for o in GAN_OVERRIDES if not o.startswith("stage.warmup"))]


def train(
    name: str,
    extra: list[str],
    train_dir: Path,
    work: Path,
    steps: int,
    python: str,
    base: list[str] | tuple[str, ...] = OVERRIDES,
) -> Path:
    """train.py for one model (skipped when its model file exists; resumes its own checkpoint); its .gvcm.
    base: the overrides every model shares (OVERRIDES, or gan_overrides() with a warm-up in `extra`)."""
    model = work / f"{name}_{steps}.gvcm"
    if model.exists():
        return model
    out_dir = work / name
    cmd = [
        python,
        str(ROOT / "train.py"),
        *base,
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
#: the colour pass: every model on the held-out clips and their darkened / saturated copies, without the perceptual
#: metric (cheap)
COLOUR_METRICS = ("psnr", "plane_mean")
COLOUR_COLUMNS = ("psnr_u", "psnr_v", "psnr_yuv", "mean_err_y", "mean_err_u", "mean_err_v")
PLANE_LEVELS = 2.0  # colour-true: every plane's mean within this many 8-bit levels of the source
GAN_METRICS = (*METRICS, "detail")  # the GAN twin adds the HF ratio (decoded / source high-frequency energy)
GOAL_DB, GOAL_RATE, GOAL_TIME = 0.3, 0.03, 3.0  # the goals: dB at the points, --bpp error, time ratio


@functools.cache
def _suite(metrics: tuple[str, ...] = METRICS):
    from gvc.eval.metrics import MetricSuite

    return MetricSuite(metrics)


def _scores(summary: dict, metrics: tuple[str, ...]) -> dict:
    """The recorded scores of a summary: PSNR-Y, and of `metrics` ST-LPIPS-VGG, the HF ratio (detail) and the colour
    columns (plane_mean: PSNR-U/V, YUV 6:1:1 and each plane's mean error)."""
    out = {"psnr_y": summary["psnr_y"]}
    if "st_lpips_vgg" in metrics:
        out["st_lpips_vgg"] = summary["st_lpips_vgg"]
    if "detail" in metrics:
        out["hf_ratio"] = summary["hf_ratio"]
    if "plane_mean" in metrics:
        out.update({k: summary[k] for k in COLOUR_COLUMNS})
    return out


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


def gvc_point(
    model: Path, clip: Path, out_dir: Path, quality: float | None = None, metrics: tuple[str, ...] = METRICS
) -> dict:
    """gvc.eval.measure of one model (at quality level q for the variable-rate one) on one clip, all intra
    (kept in out_dir/point.json for the model file's size and time, the clip and q)."""
    from gvc.eval.measure import measure_model

    def make() -> dict:
        p = measure_model(model, clip, out_dir, gop=1, suite=_suite(metrics), quality=quality)
        return {"q": quality, "bpp": p.bpp, **_scores(p.summary, metrics), "encode_s": p.encode_s}

    stat = model.stat()
    key = {"model": str(model), "size": stat.st_size, "mtime": stat.st_mtime, "clip": str(clip), "q": quality}
    if metrics != METRICS:
        key["metrics"] = list(metrics)
    return _cached(out_dir / "point.json", key, make)


def x265_points(clip: Path, work: Path, metrics: tuple[str, ...] = METRICS) -> list[dict]:
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
            scores = _suite(metrics).evaluate(src.pairs(codec.decode(enc.path, src)), src.width, src.height,
                                              src.fps, features=False)  # fmt: skip
            rows.append(
                {"crf": crf, "bpp": enc.bpp, **_scores(scores.summary, metrics), "command": enc.command}
            )
        return rows

    key = {"clip": str(clip), "crfs": list(X265_CRFS)}
    if metrics != METRICS:
        key["metrics"] = list(metrics)
    return _cached(work / "points.json", key, make)


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
    models = train_all(args, train_dir)
    gan = args.loss == "gan"
    base, metrics = (gan_overrides(), GAN_METRICS) if gan else (list(OVERRIDES), METRICS)
    result = {"steps": args.steps, "multi_steps": args.multi_steps, "seed": SEED, "overrides": base, "points": list(POINTS),
              "machine": machine_line(torch.device("cpu")), "command": " ".join(sys.argv), "models": {}, "clips": {}}  # fmt: skip
    if gan:
        result.update(loss="gan", warmup_fraction=GAN_WARMUP_FRACTION)
    for name, model in models.items():
        seconds = work / f"{name}_{model_steps(args, name)}.seconds"
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
            "multi": [gvc_point(multi, clip, out / f"multi_q{q}", float(q), metrics) for q in range(levels)],
            "fixed": {n: gvc_point(m, clip, out / n, metrics=metrics) for n, m in models.items()},
            "x265": x265_points(clip, out / "x265", metrics),
            "bpp_requests": rate_requests(multi, clip, out / "bpp"),
        }
        print(
            f"[bench-vr] {clip_name}: measured in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        result["clips"][clip_name] = per
    result["colour"] = {}
    for clip_name in (f"{n}{suffix}" for n in HELD_OUT for suffix in COPIES):
        out = work / "coded" / "colour" / clip_name
        result["colour"][clip_name] = {
            **{f"q {q}": gvc_point(multi, held[clip_name], out / f"multi_q{q}", float(q), COLOUR_METRICS)
               for q in range(levels)},
            **{n: gvc_point(m, held[clip_name], out / n, metrics=COLOUR_METRICS) for n, m in models.items()},
        }  # fmt: skip
    result["summary"] = summarize(result)
    return result


def model_steps(args, name: str) -> int:
    """Training steps of model `name`: --multi-steps for the variable-rate one, else --steps."""
    return args.multi_steps if name == "multi" else args.steps


def train_all(args, train_dir: Path) -> dict[str, Path]:
    """Every model of the comparison (train), --jobs at a time (the variable-rate one first: the longest);
    the GAN twin's with gan_overrides() and a warm-up of GAN_WARMUP_FRACTION of each model's steps."""
    runs = model_runs(args.steps)
    if args.loss == "gan":
        warm = {n: f"stage.warmup_steps={round(GAN_WARMUP_FRACTION * model_steps(args, n))}" for n in runs}
        runs = {n: [*extra, warm[n]] for n, extra in runs.items()}
    base = gan_overrides() if args.loss == "gan" else OVERRIDES
    order = sorted(runs, key=lambda n: n != "multi") if args.jobs > 1 else list(runs)

    def one(name: str) -> Path:
        return train(name, runs[name], train_dir, args.work, model_steps(args, name), sys.executable, base)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(zip(order, pool.map(one, order)))
    return {name: done[name] for name in runs}


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
        deltas, lpips_deltas = {}, {}
        for name, f in fixed.items():
            at = _at_rate(curve, f["bpp"], "psnr_y")
            deltas[name] = None if at is None else at - f["psnr_y"]
            at = _at_rate(curve, f["bpp"], "st_lpips_vgg")
            lpips_deltas[name] = None if at is None else at - f["st_lpips_vgg"]
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
        if (
            result.get("loss") == "gan"
        ):  # the GAN twin: also the ST-LPIPS gap and the fixed models against x265
            out[clip].update(
                delta_st_lpips_vgg=lpips_deltas,
                bd_psnr_fixed_vs_x265=_bd(per["x265"], list(fixed.values()), "psnr_y", True),
                bd_stlpips_fixed_vs_x265=_bd(per["x265"], list(fixed.values()), "st_lpips_vgg", False),
            )
    return out


# ------------------------------------------------------------------------------------------------ report
def _f(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else (x if isinstance(x, str) else fmt.format(x))


def _clip_lines(result: dict, summary: dict) -> list[str]:
    """The levels table and, per clip, the curve beside the fixed points and x265, the BD-rates and the --bpp
    requests (an HF ratio column and the ST-LPIPS-VGG gap at the fixed points when the result has them)."""
    lines = []
    if result.get("levels"):
        rows = [[str(k), f"{lv['target']:g}", _f(lv["reached"], "{:.4f}"), _f(lv["lambda_r"], "{:.3g}")]
                for k, lv in enumerate(result["levels"])]  # fmt: skip
        lines += ["The variable-rate model's levels on the training crops (its controllers at the last step):", "",
                  table(["q", "target bpp", "reached bpp", "lambda_R"], rows), ""]  # fmt: skip
    for clip, per in result["clips"].items():
        s = summary[clip]
        hf = "hf_ratio" in per["multi"][0]
        extra = (lambda c: [_f(c.get("hf_ratio"), "{:.3f}")]) if hf else (lambda c: [])  # noqa: E731
        rows = [[f"q {c['q']:g}", _f(c["bpp"], "{:.4f}"), _f(c["psnr_y"], "{:.2f}"), _f(c["st_lpips_vgg"], "{:.4f}")]
                + extra(c) for c in per["multi"]]  # fmt: skip
        for name, f in per["fixed"].items():
            d, dl = s["delta_psnr_y"][name], (s.get("delta_st_lpips_vgg") or {}).get(name)
            at = f" (variable-rate at this bpp: {d:+.2f} dB" if d is not None else " (outside the curve"
            at += f", {dl:+.4f} ST-LPIPS)" if dl is not None else ")"
            rows.append([f"{name}", _f(f["bpp"], "{:.4f}"), _f(f["psnr_y"], "{:.2f}"), _f(f["st_lpips_vgg"], "{:.4f}")
                         + at] + extra(f))  # fmt: skip
        for x in per["x265"]:
            rows.append([f"x265 CRF {x['crf']}", _f(x["bpp"], "{:.4f}"), _f(x["psnr_y"], "{:.2f}"),
                         _f(x["st_lpips_vgg"], "{:.4f}")] + extra(x))  # fmt: skip
        lines += [f"**{clip}** (rate strictly rising in q: {'yes' if s['monotone'] else 'NO'})", "",
                  table(["model", "bpp", "PSNR-Y", "ST-LPIPS-VGG"] + (["HF ratio"] if hf else []), rows), ""]  # fmt: skip
        lines += [
            f"BD-rate of the variable-rate curve: against the fixed models {_f(s['bd_psnr_vs_fixed'], '{:+.1f}%')} "
            f"(PSNR-Y), {_f(s['bd_stlpips_vs_fixed'], '{:+.1f}%')} (ST-LPIPS-VGG); against x265 "
            f"{_f(s['bd_psnr_vs_x265'], '{:+.1f}%')} (PSNR-Y), {_f(s['bd_stlpips_vs_x265'], '{:+.1f}%')} "
            "(ST-LPIPS-VGG)."
            + (
                f" The fixed models' three points against x265: {_f(s['bd_psnr_fixed_vs_x265'], '{:+.1f}%')} "
                f"(PSNR-Y), {_f(s['bd_stlpips_fixed_vs_x265'], '{:+.1f}%')} (ST-LPIPS-VGG)."
                if "bd_psnr_fixed_vs_x265" in s
                else ""
            ),
            "",
        ]
        req = [[f"{r['target']:g}", _f(r.get("file_bpp"), "{:.4f}"), _f(r.get("relative_error"), "{:+.1%}"),
                _f(r.get("quality"), "{:.3f}"), str(len(r.get("probes", []))), str(len(r.get("encodes", []))),
                _f(r.get("time_ratio"), "{:.1f}x"), r.get("error", "")[:90]] for r in per["bpp_requests"]]  # fmt: skip
        lines += [table(["--bpp", "file bpp", "error", "q", "probes", "encodes", "time / fixed-q encode", "note"],
                        req), ""]  # fmt: skip
    return lines


def _colour_lines(result: dict) -> list[str]:
    """The colour pass (when the result has it): each plane's mean error and PSNR-U / V of every model on the
    held-out clips and their copies, and the plane-mean goal."""
    colour = result.get("colour")
    if not colour:
        return []
    clips = list(colour)
    models = list(colour[clips[0]])
    errs = [
        [m, *(" / ".join(f"{colour[c][m][f'mean_err_{x}']:+.1f}" for x in "yuv") for c in clips)]
        for m in models
    ]
    psnr = [
        [m, *(f"{colour[c][m]['psnr_u']:.2f} / {colour[c][m]['psnr_v']:.2f}" for c in clips)] for m in models
    ]
    worst = {c: max(abs(v[f"mean_err_{x}"]) for v in colour[c].values() for x in "yuv") for c in clips}
    goal = "; ".join(f"{c} {'met' if w <= PLANE_LEVELS else 'MISSED'} ({w:.1f})" for c, w in worst.items())
    return [
        "Colour: every model on the held-out clips and their darkened (x0.35) and saturated (chroma x1.8) copies, "
        "all intra, real files. Mean error Y / U / V (decoded minus source plane mean, 8-bit levels):",
        "",
        table(["model", *clips], errs),
        "",
        "PSNR-U / V (dB):",
        "",
        table(["model", *clips], psnr),
        "",
        f"Goal check (every plane's mean within {PLANE_LEVELS:g} levels for every model; worst): {goal}",
        "",
    ]


def _gan_lines(result: dict) -> list[str]:
    """The GAN twin's figures (a recorded `--loss gan` result): its setup, then _clip_lines."""
    summary = result.get("summary") or summarize(result)
    steps, multi = result["steps"], result["multi_steps"]
    warm = result["warmup_fraction"]
    return [
        f"`{result['command']}`; {result['machine']}. Every model: `train.py {' '.join(result['overrides'])}` "
        f"(bench_trainer_parity's GAN twin: ST-LPIPS AlexNet as the perceptual term), an MSE+LPIPS warm-up of "
        f"{warm:.0%} of its steps, then G and D, seed {result['seed']}; equal total steps: the fixed-rate models "
        f"(`rate.target_bpp` {' / '.join(f'{t:g}' for t in result['points'])}) {steps} each (warm-up "
        f"{round(warm * steps)}), the variable-rate model (`rate=multi`, 8 levels, targets 0.02 .. 0.40 bpp) "
        f"{multi} (warm-up {round(warm * multi)}). **NOT converged**: a budget sized to fit about 75 minutes of a "
        "shared 2-core machine. Held-out clips, all intra, real files; ST-LPIPS-VGG lower is better; HF ratio: "
        "decoded over source high-frequency energy of Y (1 = the source's detail, gvc.eval's detail metric).",
        "",
        *_clip_lines(result, summary),
    ]


def markdown(result: dict, gan: dict | None | str = "recorded") -> str:
    """The section's figures: an MSE-only result, then the GAN twin's (`gan`: a `--loss gan` result, None for
    none, "recorded": GAN_RESULT when it exists), then NOTES_AT. A GAN result alone: its own heading."""
    if result.get("loss") == "gan":
        return "\n".join([f"## {GAN_TITLE}", "", *_gan_lines(result)]) + "\n"
    if gan == "recorded":
        gan = json.loads(GAN_RESULT.read_text()) if GAN_RESULT.is_file() else None
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
        *_clip_lines(result, summary),
        *_colour_lines(result),
    ]
    if gan is not None:
        lines += [f"### {GAN_TITLE}", "", *_gan_lines(gan)]
    lines.append(NOTES_AT)
    return "\n".join(lines) + "\n"


TITLE = "One model for every rate (bench_variable_rate)"
GAN_TITLE = "The GAN twin (bench_variable_rate --loss gan)"
#: the GAN twin's recorded result: a subsection of this bench's section of BENCHMARKS.md
GAN_RESULT = HERE / "results" / "bench_variable_rate_gan.json"


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
    p.add_argument("--loss", choices=("mse", "gan"), default="mse", help="MSE-only models or the GAN twin")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps of every model (default {STEPS}; --loss gan: {GAN_STEPS})",
    )
    p.add_argument("--work", type=Path, default=None, help="default outputs/bench_variable_rate[_gan]")
    p.add_argument("--train-only", action="store_true", help="train the models and stop")
    p.add_argument(
        "--multi-steps",
        type=int,
        default=None,
        help="steps of the variable-rate model (default --steps, --loss gan: 3 x --steps; 3 x --steps: the "
        "three fixed models' total)",
    )
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    p.add_argument("--out-json", type=Path, default=None, help="write the result here")
    p.add_argument("--from-json", type=Path, default=None, help="render a recorded result")
    args = p.parse_args()
    gan = args.loss == "gan"
    args.steps = args.steps or (GAN_STEPS if gan else STEPS)
    args.multi_steps = args.multi_steps or (3 * args.steps if gan else args.steps)
    args.work = args.work or ROOT / "outputs" / ("bench_variable_rate_gan" if gan else "bench_variable_rate")
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        if args.train_only:
            from bench_trainer_parity import write_clips

            train_dir, _ = write_clips(ROOT / "outputs" / "bench_trainer_parity")
            train_all(args, train_dir)
            return 0
        result = run(args)
        if args.out_json is not None:
            args.out_json.parent.mkdir(parents=True, exist_ok=True)
            args.out_json.write_text(json.dumps(result, indent=1))
    if result.get("loss") == "gan":  # the GAN twin's figures alone (rendered into the section once recorded)
        print(repo_relative(markdown(result)))
        return 0
    figures = markdown(result, gan=None) if args.from_json is not None else markdown(result)
    print(section("bench_variable_rate", figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
