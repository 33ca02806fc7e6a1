"""GPU learning run (issue 17, item 4): train the mid-size model's stage 1 and stage 2 on one H100/H200-class GPU
in under 8 minutes, code held-out frames through real files, and write the figures.

    python benchmarks/gpu_learn.py bundle [--out .gpu_bundle]        # here (`make gpu-bundle`): wheels + data
    python benchmarks/gpu_learn.py run [--bundle .gpu_bundle] [--out DIR] [--tiny] [--benchmarks BENCHMARKS.md]
    python benchmarks/gpu_learn.py markdown [RESULT.json] [--benchmarks BENCHMARKS.md]   # make bench runs it

The GPU machine has no package registry: Python 3.12 with torch, lightning, torchvision, opencv-headless (and the
other packages of its image) and at most 64 MiB brought along, the working tree included. `bundle` makes that
folder (git-ignored):
- whl/: cp312 manylinux x86_64 (or pure-Python) wheels of what the run imports and the machine lacks (WHEELS),
  fetched with `pip download --no-deps` for Python 3.12; antlr4-python3-runtime (an sdist only) built with
  `pip wheel`; stlpips-pytorch without its VGG weights (59 MB: the run uses the AlexNet network, as the loss).
- data.tar.xz: the clips as prepared shards and the held-out clips, xz-compressed (delta filter, then LZMA2):
  training = bike [0, 200) + bigbuckbunny [0, 100) cut by `gvc prepare-clips` into 6-frame 192x192 crops;
  held-out = carphone [0, 32) and bikes [200, 232) as Y4M. The split is bench-rd's
  (benchmarks/bench_operating_points.py: TRAIN_SPLIT, EVAL_SPLIT, write_split).

`run` unpacks the data, trains `+experiment=gpu_learn_iframe` then `+experiment=gpu_learn_pframe` (train.py, one
process each), codes every held-out clip with `gvc encode` / `gvc decode` (the command's own entry point, in this
process; real .gvc and .y4m files on disk), and writes RESULT.json and the BENCHMARKS.md section: file bpp,
PSNR-Y, ST-LPIPS (AlexNet: the only network in the bundle, the one the loss used, so not an independent metric),
P/I bits ratio, drift (PSNR-Y of frame 30 minus frame 2, 1-based; the last minus the second with fewer frames),
decoded-flow end-point error against the flow between the ORIGINAL frames beside the zero-motion EPE (the mean
magnitude of that flow), measured on the frame area (padding cropped), steps/s per stage (the fit loop's time,
from the Lightning Timer saved in last.ckpt), and the model file's size (< 16 MiB).

--tiny: the same code at toy sizes on the CPU (2 + 3 training steps of a quarter-width model, 64x64 crops, 3
held-out frames) from a bundle's data part; tests/benchmarks/test_gpu_learn.py runs it.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TITLE = "GPU learning run (gpu_learn)"
BUNDLE = ROOT / ".gpu_bundle"
DATA_FILE = "data.tar.xz"
LIMIT_MIB = 64.0  # what one device call may bring: the working tree that travels plus the bundle
MODEL_LIMIT_MIB = 16.0  # the model file's limit (also what one file from $OUT may weigh)
#: [ours] the wheel part's budget: measured 28.1 MiB (WHEELS, 2026-12), plus a margin
WHEEL_PART_MIB = 31.0
SHARD_FRAMES = 6  # [ours] stored clip length: stage 2 unrolls up to T = 6
SHARD_SIZE = 192  # [ours] stored crop side: 128 crops are drawn from it
XZ_PRESET = 6  # LZMA2 preset of the bundle (the tests use 1: faster, a larger file, so an upper bound)
PY_TAG = "3.12"  # the device's Python
PLATFORMS = (
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)

#: what the run imports that the device lacks (the device tool lists its installed packages), exact versions (those the project's
#: test suite runs with), one version each; IPython's other requirements (jedi, parso, stack-data, pexpect, ...)
#: are left out: `import IPython` does not import them (checked by importing the run's modules with only the
#: device's packages and these wheels on the path). Not here, because the device has them: torch, torchvision,
#: lightning (+ lightning-utilities), numpy, opencv-python-headless, pyyaml, tqdm, matplotlib, pandas, scipy,
#: einops, torch-geometric, requests, urllib3, python-dateutil, filelock, tifffile, pygments, typing-extensions.
WHEELS = (
    "compressai==1.2.8",  # entropy models (C++ extension: cp312 manylinux_2_34)
    "pytorch-msssim==1.0.0",  # imported by compressai
    "hydra-core==1.3.8",  # train.py
    "omegaconf==2.3.1",
    "antlr4-python3-runtime==4.9.3",  # (sdist only: built into a wheel with pip wheel)
    "litdata==0.2.76",  # the clip shards; `import litdata` imports boto3
    "boto3==1.44.8",
    "botocore==1.44.8",
    "s3transfer==0.19.3",
    "jmespath==1.1.0",
    "stlpips-pytorch==0.0.2",  # the perceptual loss and metric (AlexNet weights kept, VGG dropped)
    "torchsummary==1.5.1",  # imported by stlpips-pytorch
    "ipython==9.18.1",  # `from IPython import embed` in stlpips-pytorch; what that import itself imports:
    "prompt-toolkit==3.0.53",
    "wcwidth==0.9.4",
    "traitlets==5.16.1",
)
SDIST_ONLY = ("antlr4-python3-runtime",)
STLPIPS_DROP = ("weights/vST0.0/vgg_shift_tolerant.pth", ".DS_Store")


@dataclass(frozen=True)
class Sizes:
    """What differs between the GPU run and its tiny CPU form (train.py overrides; held-out frames coded)."""

    name: str
    device: str
    common: tuple[str, ...] = ()
    stage1: tuple[str, ...] = ()
    stage2: tuple[str, ...] = ()
    eval_frames: int | None = None  # None: every held-out frame (32)


FULL = Sizes("full", "cuda")
#: the tiny form's networks [ours]: a quarter of the mid-size widths (the mid-size model file's size is checked
#: by tests/benchmarks/test_gpu_learn.py without training it)
TINY_MODEL = ("model.iframe.channels=[16,16,16,16,16]", "model.iframe.latent_channels=16",
              "model.iframe.hyper_channels=8", "model.pframe.flow_channels=[12,12,12,12,12]",
              "model.pframe.flow_latent_channels=8", "model.pframe.flow_hyper_channels=8",
              "model.discriminator_i.widths=[8,16,16,32]", "model.discriminator_p.widths=[8,16,16,32]")  # fmt: skip
TINY = Sizes(
    "tiny",
    "cpu",
    common=(
        "trainer=cpu",
        "torch_num_threads=2",
        "data.num_workers=0",
        "data.pin_memory=false",
        "data.persistent_workers=false",
        "data.crop_size=64",
        "callbacks.checkpoint.every_n_steps=1000",
        "callbacks.timer.verbose=false",
        *TINY_MODEL,
    ),  # fmt: skip
    stage1=("stage.max_steps=2", "stage.warmup_steps=1", "data.batch_size=2"),
    stage2=(
        "stage.max_steps=3",
        "stage.unroll=[[1,2],[1000000000,3]]",
        "stage.flow_warmup_steps=1",
        "stage.warmup_steps=2",
        "stage.quantization.anneal_steps=3",
        "data.batch_size=1",
        "loss.perceptual_crop=null",
    ),  # fmt: skip
    eval_frames=3,
)


def log(msg: str) -> None:
    print(f"[gpu-learn {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# ------------------------------------------------------------------------------------------------ the bundle


def xz_filters(preset: int) -> list[dict]:
    """Delta (byte distance 1: neighbouring pixels of a plane) then LZMA2: 25% smaller than LZMA2 alone here."""
    return [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": preset}]


def build_data(out: Path, preset: int = XZ_PRESET, work: Path | None = None) -> dict:
    """The data part: shards of the training split and the held-out Y4M clips in out/data.tar.xz."""
    from bench_operating_points import EVAL_SPLIT, TRAIN_SPLIT, write_split

    from gvc.data.prepare import prepare_clips

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        train_dir, clips = write_split(tmp / "split")
        shards = tmp / "shards"
        manifest = prepare_clips(train_dir, shards, frames=SHARD_FRAMES, size=SHARD_SIZE, chunk_bytes="16MB",
                                 progress=False)  # fmt: skip
        part = out / (DATA_FILE + ".part")
        with lzma.open(part, "wb", format=lzma.FORMAT_XZ, filters=xz_filters(preset)) as f:
            with tarfile.open(fileobj=f, mode="w") as tar:
                tar.add(shards, arcname="shards")
                for path in clips.values():
                    tar.add(path, arcname=f"heldout/{path.name}")
        part.replace(out / DATA_FILE)
        raw = sum(p.stat().st_size for p in shards.iterdir()) + sum(p.stat().st_size for p in clips.values())
    return {"file": DATA_FILE, "bytes": (out / DATA_FILE).stat().st_size, "raw_bytes": raw,
            "train_clips": manifest["num_clips"], "train_split": TRAIN_SPLIT, "eval_split": EVAL_SPLIT,
            "shards": f"{SHARD_FRAMES} frames, {SHARD_SIZE}x{SHARD_SIZE}", "xz_preset": preset}  # fmt: skip


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"gpu-learn: `{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def trim_stlpips(wheel: Path) -> None:
    """Rewrite the stlpips-pytorch wheel without the VGG weights (and a stray .DS_Store), RECORD updated."""
    tmp = wheel.with_suffix(".part")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.endswith(STLPIPS_DROP):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = (
                    "\n".join(ln for ln in lines if not ln.split(",")[0].endswith(STLPIPS_DROP)) + "\n"
                ).encode()
            dst.writestr(info, data)
    tmp.replace(wheel)


def fetch_wheels(dest: Path) -> list[Path]:
    """pip download (no dependencies: WHEELS is the whole list) for the device's Python and platform."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    binary = [w for w in WHEELS if w.split("==")[0] not in SDIST_ONLY]
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    _pip("download", "--no-deps", "--only-binary=:all:", "--python-version", PY_TAG, "--implementation", "cp",
         *plat, "-d", str(dest), *binary)  # fmt: skip
    _pip("wheel", "--no-deps", "-w", str(dest), *[w for w in WHEELS if w.split("==")[0] in SDIST_ONLY])
    for w in dest.glob("stlpips_pytorch-*.whl"):
        trim_stlpips(w)
    wheels = sorted(dest.glob("*.whl"))
    check_wheels(wheels)
    return wheels


def check_wheels(wheels: list[Path]) -> None:
    """One wheel per WHEELS entry, each for any Python 3 or CPython 3.12 / abi3 on manylinux x86_64."""
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    want = {w.split("==")[0].lower().replace("_", "-") for w in WHEELS}
    if names != want or len(wheels) != len(WHEELS):
        raise SystemExit(f"gpu-learn: wheels {sorted(names)} do not match WHEELS {sorted(want)}")
    for w in wheels:
        py, abi, plat = w.stem.split("-")[-3:]
        ok = plat == "any" or (("cp312" in py or abi == "abi3") and "manylinux" in plat and "x86_64" in plat)
        if not ok:
            raise SystemExit(f"gpu-learn: {w.name} is not for CPython 3.12 on manylinux x86_64")


def tree_bytes() -> int:
    """What a device call sends besides the carried bundle: tracked files plus untracked files git does not
    ignore (the working tree as it is now)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout  # fmt: skip
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return sum(p.stat().st_size for p in paths if p.is_file())


def bundle_sizes(bundle: Path) -> dict:
    wheels = sum(p.stat().st_size for p in (bundle / "whl").glob("*.whl"))
    data = (bundle / DATA_FILE).stat().st_size
    tree = tree_bytes()
    return {"wheels_mib": mib(wheels), "data_mib": mib(data), "tree_mib": mib(tree),
            "total_mib": mib(wheels + data + tree), "limit_mib": LIMIT_MIB}  # fmt: skip


DEVICE_PREFIX = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
                 "--target /tmp/site .gpu_bundle/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD")  # fmt: skip
DEVICE_COMMAND = f"{DEVICE_PREFIX} && bash benchmarks/gpu_learn.sh"


def cmd_bundle(args) -> int:
    out = args.out
    t0 = time.perf_counter()
    log(f"wheels -> {out / 'whl'}")
    fetch_wheels(out / "whl")
    log(f"data -> {out / DATA_FILE} (xz preset {args.preset})")
    data = build_data(out, preset=args.preset)
    sizes = bundle_sizes(out)
    (out / "MANIFEST.json").write_text(json.dumps({"wheels": sorted(p.name for p in (out / "whl").glob("*.whl")),
                                                   "data": data, "sizes": sizes}, indent=1))  # fmt: skip
    print(f"gpu bundle {out}: wheels {sizes['wheels_mib']:.1f} MiB + data {sizes['data_mib']:.1f} MiB + working "
          f"tree {sizes['tree_mib']:.1f} MiB = {sizes['total_mib']:.1f} MiB of {LIMIT_MIB:.0f} MiB "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print('device run (tool `run`, carry [".gpu_bundle"], timeout_s 560):')
    print(f"  {DEVICE_COMMAND}")
    if sizes["total_mib"] > LIMIT_MIB:
        print(f"error: {sizes['total_mib']:.1f} MiB is over the {LIMIT_MIB:.0f} MiB a device call may bring")
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ the run


def unpack(bundle: Path, work: Path) -> Path:
    """Extract the bundle's data part into work/data (once); returns that folder."""
    data = work / "data"
    if not (data / "shards" / "index.json").is_file():
        if data.exists():
            shutil.rmtree(data)
        tmp = work / "data.part"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(bundle / DATA_FILE, "r:xz") as tar:
            tar.extractall(tmp, filter="data")
        tmp.replace(data)
    return data


def train(stage: str, s: Sizes, work: Path, data: Path, extra: list[str]) -> dict:
    """One training stage in its own process (train.py); its steps, fit-loop seconds and steps/s."""
    from gvc.codec.modelfile import read_model_file

    out = work / stage
    cmd = [sys.executable, "train.py", f"+experiment=gpu_learn_{stage}", f"paths.output_dir={out}",
           f"data.train_path={data / 'shards'}", *extra, *s.common,
           *(s.stage1 if stage == "iframe" else s.stage2)]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    log_file = work / f"{stage}.log"
    with open(log_file, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"gpu-learn: {stage} failed (exit {proc.returncode}):\n{log_file.read_text()[-3000:]}"
        )
    model = out / "model.gvcm"
    steps = int(read_model_file(model)["training"]["step"])
    fit_s = fit_seconds(out / "checkpoints" / "last.ckpt")
    log(f"{stage}: {steps} steps in {wall:.0f} s (fit loop {fit_s:.0f} s)")
    return {"command": " ".join(cmd[1:]), "steps": steps, "wall_s": wall, "fit_s": fit_s,
            "steps_per_s": steps / fit_s if fit_s else None, "model": str(model)}  # fmt: skip


def fit_seconds(ckpt: Path) -> float | None:
    """Seconds of the fit loop, from the Lightning Timer's state in the checkpoint written when training ended."""
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False).get("callbacks", {})
    timer = next((v for k, v in state.items() if "Timer" in k), None)
    return None if timer is None else float(timer["time_elapsed"]["train"])


def code_clip(model: Path, clip: Path, out: Path, s: Sizes, suite) -> dict:
    """Code a held-out clip through a real .gvc file and decode it (gvc.eval.measure.measure_model: the coder
    `gvc encode` / `gvc decode` run, in this process) into out/<clip stem>/; per-frame PSNR-Y, ST-LPIPS
    (``suite``: the metric suite with psnr and st_lpips, built once), packet bits and types, drift, P/I bits."""
    from gvc.eval.measure import drift_db, drift_frames, measure_model, p_over_i_bits

    t0 = time.perf_counter()
    point = measure_model(model, clip, out / clip.stem, frames=s.eval_frames, suite=suite, device=s.device)
    seconds = time.perf_counter() - t0
    psnrs = point.per_frame["psnr_y"]
    pair = drift_frames(len(psnrs))
    return {
        "frames": point.frames,
        "size": f"{point.width}x{point.height}",
        "file_bytes": point.bytes,
        "file_bpp": point.bpp,
        "psnr_y": float(sum(psnrs) / len(psnrs)),
        "psnr_y_per_frame": psnrs,
        "st_lpips": point.summary.get("st_lpips"),
        "p_over_i_bits": p_over_i_bits(point.frame_bits, point.frame_types),
        "drift_db": drift_db(psnrs),
        "drift_frames": list(pair) if pair else None,
        "types": "".join(point.frame_types),
        "bits_per_frame": point.frame_bits,
        "code_s": seconds,
    }


def flow_figures(model: Path, clip: Path, s: Sizes) -> dict:
    """Decoded-flow EPE against the flow between the ORIGINAL frames and the zero-motion EPE over the clip's
    P-frames, frame area only (gvc.eval.motion; no oracle stream here)."""
    from gvc.eval.motion import measure_motion

    m = measure_motion(model, clip, frames=s.eval_frames, device=s.device, oracle=False).summary()
    return {k: m[k] for k in ("flow_epe", "zero_motion_epe", "flow_epe_ratio")}


def run(s: Sizes, bundle: Path, work: Path) -> dict:
    import torch
    from _common import machine_line

    from gvc.eval.metrics import MetricSuite

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    data = unpack(bundle, work)
    log(f"data in {data} ({time.perf_counter() - t0:.0f} s)")
    stage1 = train("iframe", s, work, data, [])
    stage2 = train("pframe", s, work, data, [f"stage.iframe_ckpt={stage1['model']}"])
    model = Path(stage2["model"])
    suite = MetricSuite(("psnr", "st_lpips"), {"st_lpips": {"device": s.device}})
    clips = {}
    for clip in sorted((data / "heldout").glob("*.y4m")):
        c = code_clip(model, clip, work / "code", s, suite)
        c.update(flow_figures(model, clip, s))
        log(f"{clip.name}: {c['file_bpp']:.4f} bpp, {c['psnr_y']:.2f} dB, drift {c['drift_db']:+.2f} dB, "
            f"P/I {c['p_over_i_bits']:.3f}, flow EPE {c['flow_epe']:.2f} px (zero motion {c['zero_motion_epe']:.2f})")  # fmt: skip
        clips[clip.stem] = c

    def mean(key):
        vals = [c[key] for c in clips.values() if c[key] is not None]
        return float(sum(vals) / len(vals)) if vals else None

    device = torch.device(s.device)
    return {
        "sizes": s.name,
        "device": s.device,
        "machine": machine_line(device),
        "stage1": stage1,
        "stage2": stage2,
        "model_file_mib": mib(model.stat().st_size),
        "model_file": str(model),
        "file_bpp": mean("file_bpp"),
        "psnr_y": mean("psnr_y"),
        "st_lpips": mean("st_lpips"),
        "st_lpips_net": "alex (the training loss' network: not independent)",
        "p_over_i_bits": mean("p_over_i_bits"),
        "drift_db": mean("drift_db"),
        "flow_epe": mean("flow_epe"),
        "zero_motion_epe": mean("zero_motion_epe"),
        "steps_per_s": {"iframe": stage1["steps_per_s"], "pframe": stage2["steps_per_s"]},
        "clips": clips,
        "wall_s": time.perf_counter() - t0,
    }


def fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(res: dict) -> str:
    from _common import table

    head = ["clip", "frames", "file bpp", "PSNR-Y dB", "ST-LPIPS (alex)", "P/I bits", "drift dB", "flow EPE px",
            "zero-motion EPE px"]  # fmt: skip
    rows = [[name, c["frames"], fmt(c["file_bpp"], ".4f"), fmt(c["psnr_y"], ".2f"), fmt(c["st_lpips"], ".4f"),
             fmt(c["p_over_i_bits"], ".3f"), fmt(c["drift_db"], "+.2f"), fmt(c["flow_epe"], ".2f"),
             fmt(c["zero_motion_epe"], ".2f")] for name, c in res["clips"].items()]  # fmt: skip
    rows.append(["mean", "", fmt(res["file_bpp"], ".4f"), fmt(res["psnr_y"], ".2f"), fmt(res["st_lpips"], ".4f"),
                 fmt(res["p_over_i_bits"], ".3f"), fmt(res["drift_db"], "+.2f"), fmt(res["flow_epe"], ".2f"),
                 fmt(res["zero_motion_epe"], ".2f")])  # fmt: skip
    s1, s2 = res["stage1"], res["stage2"]
    later = max(c["drift_frames"][1] for c in res["clips"].values())  # 30, or the last frame coded
    lines = [
        f"## {TITLE}",
        "",
        "```",
        'bash benchmarks/gpu_learn.sh   # on the GPU machine, from the bundle: see README "GPU learning run"',
        "```",
        "",
        f"- Machine: {res['machine']}; whole run {res['wall_s'] / 60:.1f} min ({res['sizes']} sizes).",
        f"- Stage 1 `+experiment=gpu_learn_iframe`: {s1['steps']} steps, {fmt(s1['steps_per_s'], '.2f')} steps/s "
        f"(fit loop {fmt(s1['fit_s'], '.0f')} s); stage 2 `+experiment=gpu_learn_pframe`: {s2['steps']} steps, "
        f"{fmt(s2['steps_per_s'], '.2f')} steps/s (fit loop {fmt(s2['fit_s'], '.0f')} s).",
        f"- Model file (I + P): {res['model_file_mib']:.2f} MiB (limit {MODEL_LIMIT_MIB:.0f} MiB).",
        "- Held-out: carphone [0,32) (a clip never trained on) and bikes [200,232) (frames never trained on), one "
        "I-frame then P-frames, through `gvc encode` / `gvc decode`; bpp = file size. ST-LPIPS uses AlexNet, the "
        f"loss' network (the VGG weights do not fit the bundle). Drift = PSNR-Y of frame {later} minus frame 2. Flow EPE: "
        "decoded flow against the flow between the original frames, frame area only; zero-motion EPE = that "
        "flow's mean magnitude (issue 17's goal: EPE <= 0.5x it).",
        "",
        table(head, rows),
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Put `text` (this benchmark's "## TITLE" section) into the markdown file `path` (render.write)."""
    from render import write

    write("gpu_learn", text, path)


def cmd_run(args) -> int:
    s = TINY if args.tiny else FULL
    if s.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "error: no CUDA device: run this on the GPU machine, or use --tiny on the CPU",
                file=sys.stderr,
            )
            return 2
    out = args.out
    # the working files stay out of $OUT (only a few files come back from a device call)
    work = args.work or (
        Path(tempfile.gettempdir()) / "gpu_learn_work" if os.environ.get("OUT") else out / "work"
    )
    res = run(s, args.bundle, work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(res["model_file"], out / "model.gvcm")
    for stage in ("iframe", "pframe"):
        shutil.copy2(work / f"{stage}.log", out / f"{stage}.log")
    (out / "result.json").write_text(json.dumps(res, indent=1))
    (out / "section.txt").write_text(markdown(res))
    if args.benchmarks is not None:
        write_section(args.benchmarks, markdown(res))
    print(markdown(res))
    return 0


RESULT = (
    HERE / "results" / "gpu_learn.json"
)  # where a device run's result.json is kept (make bench renders it)


def markdown_pending() -> str:
    """The section while no GPU run has been recorded (RESULT absent)."""
    return "\n".join([
        f"## {TITLE}",
        "",
        "```",
        "make gpu-bundle   # here; then on the GPU machine, from the bundle: bash benchmarks/gpu_learn.sh",
        "```",
        "",
        "**Not run on a GPU yet** (prepared without a device). On one H100/H200-class GPU, from the self-contained "
        "bundle (README \"GPU learning run\"), it trains the mid-size model (`+experiment=gpu_learn_iframe`, then "
        "`+experiment=gpu_learn_pframe`) on the bundled clips' shards within 8 minutes and codes carphone [0,32) "
        "and bikes [200,232) through real files: file bpp, PSNR-Y, ST-LPIPS (AlexNet), P/I bits, drift, decoded "
        "flow EPE beside the zero-motion EPE, steps/s per stage, model file size. Only its tiny CPU form has run "
        "(tests/benchmarks/test_gpu_learn.py: 2 + 3 steps of a quarter-width model; its figures show that every "
        "figure is produced, not what the codec learns). Record a device run with "
        "`cp $OUT/result.json benchmarks/results/gpu_learn.json` and `make bench` (or `python "
        "benchmarks/gpu_learn.py markdown benchmarks/results/gpu_learn.json --benchmarks BENCHMARKS.md`).",
        "",
    ])  # fmt: skip


def cmd_markdown(args) -> int:
    text = markdown(json.loads(args.result.read_text())) if args.result.is_file() else markdown_pending()
    if args.benchmarks is not None:
        write_section(args.benchmarks, text)
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="build the self-contained bundle (wheels + data) here")
    b.add_argument("--out", type=Path, default=BUNDLE)
    b.add_argument("--preset", type=int, default=XZ_PRESET, help="xz preset of the data part (default 6)")
    r = sub.add_parser("run", help="train both stages, code the held-out clips, write the figures")
    r.add_argument("--bundle", type=Path, default=BUNDLE)
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "outputs" / "gpu_learn"),
                   help="result.json, section.txt, model.gvcm (default $OUT, else outputs/gpu_learn)")  # fmt: skip
    r.add_argument("--work", type=Path, default=None,
                   help="working folder (default OUT/work; with $OUT set, a temporary folder)")  # fmt: skip
    r.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (the test suite's form)")
    r.add_argument("--benchmarks", type=Path, default=None, help="also write the section into this file")
    m = sub.add_parser("markdown", help="the BENCHMARKS.md section of a result.json (absent: 'not run yet')")
    m.add_argument("result", type=Path, nargs="?", default=RESULT)
    m.add_argument("--benchmarks", type=Path, default=None)
    args = p.parse_args(argv)
    return {"bundle": cmd_bundle, "run": cmd_run, "markdown": cmd_markdown}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
