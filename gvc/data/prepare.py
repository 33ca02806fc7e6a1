"""``gvc prepare-clips SRC_DIR OUT_DIR``: cut a video corpus into fixed uint8 clips stored as LitData shards.

Every video under SRC_DIR (recursive; .yuv/.y4m/.mp4/... and PNG folders, or a .txt list) is cut into windows of
``--frames`` frames every ``--stride`` frames; each window gives ``--crops`` random square crops of ``--size``
pixels (even offsets), converted to RGB uint8 (T, 3, S, S) with the given colour settings. Videos are processed
in groups of ``--group`` (one ``litdata.optimize`` call each, appending to OUT_DIR); after a group is written its
videos are added to OUT_DIR/gvc_manifest.json, so an interrupted run resumes by skipping finished videos.
Videos too small or too short are skipped (and recorded as skipped).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from gvc.cli_args import add_colour_arguments
from gvc.data.color import yuv420_to_rgb
from gvc.data.io import find_videos, open_video
from gvc.errors import ConfigError, GVCError, VideoFormatError

log = logging.getLogger(__name__)
MANIFEST_NAME = "gvc_manifest.json"
SETTINGS_KEYS = ("frames", "size", "stride", "crops", "max_clips_per_video", "seed", "matrix", "full_range")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``prepare-clips`` on an argparse subparsers object (top-level gvc CLI); returns the parser."""
    p = subparsers.add_parser(
        "prepare-clips", help="cut videos into uint8 clip shards for training", description=__doc__
    )
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="folder of videos (recursive) or a .txt list of paths")
    p.add_argument(
        "out", type=Path, help="output shard folder (litdata index.json + chunks + gvc_manifest.json)"
    )
    p.add_argument("--frames", type=int, default=12, help="frames per stored clip (default 12)")
    p.add_argument("--size", type=int, default=256, help="square crop side in pixels, even (default 256)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (default = --frames)")
    p.add_argument("--crops", type=int, default=1, help="random crops per temporal window (default 1)")
    p.add_argument("--max-clips-per-video", type=int, default=0, help="cap of windows per video, 0 = no cap")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop positions")
    add_colour_arguments(p)
    p.add_argument(
        "--width", type=int, default=None, help="width of raw .yuv sources without WxH in the name"
    )
    p.add_argument(
        "--height", type=int, default=None, help="height of raw .yuv sources without WxH in the name"
    )
    p.add_argument("--workers", type=int, default=1, help="litdata worker processes (default 1)")
    p.add_argument(
        "--group", type=int, default=4, help="videos per optimize call = resume granularity (default 4)"
    )
    p.add_argument("--chunk-bytes", default="64MB", help="litdata chunk size (default 64MB)")
    p.add_argument(
        "--overwrite", action="store_true", help="delete OUT's shards and manifest and start again"
    )


def clip_windows(num_frames: int, frames: int, stride: int, max_clips: int = 0) -> list[int]:
    """Start frames of the clips cut from a video of ``num_frames`` frames."""
    starts = list(range(0, num_frames - frames + 1, stride))
    return starts[:max_clips] if max_clips > 0 else starts


def _video_clips(item: dict):
    """litdata worker fn: yields dict(clip uint8 (T,3,S,S), video, start, x, y) for one video."""
    path, s = Path(item["path"]), item["settings"]
    size, t = s["size"], s["frames"]
    rng = np.random.default_rng([s["seed"], zlib.crc32(str(item["key"]).encode())])
    with open_video(
        path, width=s.get("width"), height=s.get("height"), matrix=s["matrix"], full_range=s["full_range"]
    ) as r:
        for start in clip_windows(len(r), t, s["stride"], s["max_clips_per_video"]):
            y, u, v = r.read_yuv_clip(start, t)
            for _ in range(s["crops"]):
                y0 = int(rng.integers(0, (r.height - size) // 2 + 1)) * 2
                x0 = int(rng.integers(0, (r.width - size) // 2 + 1)) * 2
                rgb = yuv420_to_rgb(
                    y[:, y0 : y0 + size, x0 : x0 + size],
                    u[:, y0 // 2 : (y0 + size) // 2, x0 // 2 : (x0 + size) // 2],
                    v[:, y0 // 2 : (y0 + size) // 2, x0 // 2 : (x0 + size) // 2],
                    r.matrix,
                    r.full_range,
                )
                clip = (rgb * 255.0).round_().to(torch.uint8).numpy()
                yield {"clip": clip, "video": item["key"], "start": start, "x": x0, "y": y0}


def _stored_clips(out: Path) -> int:
    """Number of items in a litdata shard dir's index.json (0 when absent)."""
    p = out / "index.json"
    if not p.is_file():
        return 0
    return sum(int(c.get("chunk_size", 0)) for c in json.loads(p.read_text()).get("chunks", []))


def _load_manifest(out: Path) -> dict:
    p = out / MANIFEST_NAME
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p} is corrupt ({e}); rerun with --overwrite") from e


def _save_manifest(out: Path, manifest: dict) -> None:
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST_NAME)


def prepare_clips(
    src,
    out,
    frames: int = 12,
    size: int = 256,
    stride: int | None = None,
    crops: int = 1,
    max_clips_per_video: int = 0,
    seed: int = 0,
    matrix: str | None = None,
    full_range: bool | None = None,
    width: int | None = None,
    height: int | None = None,
    workers: int = 1,
    group: int = 4,
    chunk_bytes: str = "64MB",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Cut the videos under ``src`` into shards in ``out``; returns the manifest (done, skipped, num_clips, settings).

    Resumable: videos already in the manifest are skipped; settings must match the manifest's (ConfigError if not).
    """
    import litdata
    from tqdm.auto import tqdm

    if size % 2 or size <= 0 or frames <= 0 or crops <= 0:
        raise ConfigError(
            f"need even --size > 0 and --frames, --crops > 0 (got size={size}, frames={frames})"
        )
    src, out = Path(src), Path(out)
    settings = dict(
        frames=frames,
        size=size,
        stride=stride or frames,
        crops=crops,
        max_clips_per_video=max_clips_per_video,
        seed=seed,
        matrix=matrix,
        full_range=full_range,
    )
    if overwrite and out.exists():
        for f in out.iterdir():
            if f.is_file() and (f.suffix == ".bin" or f.name in ("index.json", MANIFEST_NAME)):
                f.unlink()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; give another OUT_DIR")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the output folder ({e.strerror or e})") from e
    manifest = _load_manifest(out)
    if manifest and manifest.get("settings") != settings:
        raise ConfigError(
            f"{out} holds clips made with other settings {manifest.get('settings')}; use another OUT_DIR or --overwrite"
        )
    if not manifest and (out / "index.json").exists():
        raise ConfigError(
            f"{out} has litdata shards but no {MANIFEST_NAME}; use another OUT_DIR or --overwrite"
        )
    manifest = manifest or dict(settings=settings, done=[], skipped={}, num_clips=0)

    videos = find_videos(src)
    if not videos:
        raise VideoFormatError(f"{src}: no videos found (.yuv, .y4m, .mp4, .mkv, ... or folders of PNGs)")
    keys = {str(v.relative_to(src)) if src.is_dir() else str(v): v for v in videos}
    finished = set(manifest["done"]) | set(manifest["skipped"])
    todo = []
    colours = {}
    for key, path in keys.items():
        if key in finished:
            continue
        try:
            with open_video(path, width=width, height=height, matrix=matrix, full_range=full_range) as r:
                colours[key] = r.colour  # what the RGB clips were converted with (settings null: per file)
                n = len(clip_windows(len(r), frames, settings["stride"], max_clips_per_video))
                reason = None
                if r.width < size or r.height < size:
                    reason = f"{r.width}x{r.height} smaller than {size}"
                elif n == 0:
                    reason = f"{len(r)} frames < {frames}"
        except VideoFormatError as e:
            reason = str(e)
        if reason:
            log.warning("skipping %s: %s", path, reason)
            manifest["skipped"][key] = reason
            continue
        todo.append((key, path, n * crops))
    _save_manifest(out, manifest)

    extra = {"width": width, "height": height}
    bar = tqdm(total=sum(c for _, _, c in todo), unit="clip", desc="prepare-clips", disable=not progress)
    for g in range(0, len(todo), max(1, group)):
        batch = todo[g : g + max(1, group)]
        inputs = [{"path": str(p), "key": k, "settings": {**settings, **extra}} for k, p, _ in batch]
        mode = "append" if (out / "index.json").exists() else "overwrite"
        before = _stored_clips(out) if mode == "append" else 0
        litdata.optimize(
            fn=_video_clips,
            inputs=inputs,
            output_dir=str(out),
            chunk_bytes=chunk_bytes,
            num_workers=max(1, min(workers, len(inputs))),
            mode=mode,
            verbose=False,
            start_method="spawn",  # fork deadlocks when the parent already ran torch (OpenMP)
        )
        expected = before + sum(c for _, _, c in batch)
        if _stored_clips(out) != expected:
            raise GVCError(
                f"{out}: litdata wrote {_stored_clips(out)} clips, expected {expected}, for {[k for k, _, _ in batch]} "
                "(a worker failed, see the log above); fix the cause and rerun: finished videos are kept"
            )
        manifest["done"] += [k for k, _, _ in batch]
        manifest.setdefault("colour", {}).update({k: colours[k] for k, _, _ in batch})
        manifest["num_clips"] += sum(c for _, _, c in batch)
        _save_manifest(out, manifest)
        bar.update(sum(c for _, _, c in batch))
    bar.close()
    return manifest


def run(args: argparse.Namespace) -> int:
    """Run the command from parsed arguments; returns the exit code."""
    m = prepare_clips(
        args.src,
        args.out,
        frames=args.frames,
        size=args.size,
        stride=args.stride,
        crops=args.crops,
        max_clips_per_video=args.max_clips_per_video,
        seed=args.seed,
        matrix=args.matrix,
        full_range=args.full_range,
        width=args.width,
        height=args.height,
        workers=args.workers,
        group=args.group,
        chunk_bytes=args.chunk_bytes,
        overwrite=args.overwrite,
    )
    print(f"{args.out}: {m['num_clips']} clips from {len(m['done'])} videos ({len(m['skipped'])} skipped)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m gvc.data.prepare SRC_DIR OUT_DIR ...``."""
    p = argparse.ArgumentParser(prog="gvc prepare-clips", description=__doc__)
    _add_arguments(p)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
