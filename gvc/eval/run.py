"""Evaluation runner: for each video, each gvc model file and each baseline: encode -> decode -> metrics.

Called by ``evaluate.py`` (Hydra) with a plain mapping, or directly: ``evaluate({"videos": [...], ...})``.
Keys (defaults in :class:`EvalConfig`, values in conf/evaluate.yaml) are documented there.

Outputs under ``output_dir``:
- ``points/<key>.json`` (+ ``.npy`` patch features): one cached result per (video, codec, setting); a re-run
  with the same inputs and settings skips it. The key hashes the video identity (path, size, mtime), frame count,
  GOP, colour convention, metric configuration and the codec setting (model file sha256 / baseline spec + target).
- ``bitstreams/<video>/``: every chosen bitstream (real files: bpp = 8 * bytes / (frames * W * H)).
- ``per_frame.csv``, ``per_video.csv``, ``results.json`` (colour convention, PSNR weighting, metric info,
  unavailable metrics with reasons, BD-rates), ``plots/rd_<metric>.png``, ``report.md``.
- ``export/`` when enabled: MCL-JCV-named raw reconstructions (+ PNG) and side-by-side mp4s.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb
from gvc.data.io import YUVFrame, open_video
from gvc.errors import ConfigError, VideoFormatError
from gvc.eval import rd
from gvc.eval.baselines import BitrateMatcher, FFmpegBaseline, write_raw_video
from gvc.eval.export import export_name, export_reconstruction, side_by_side
from gvc.eval.metrics import (
    HIGHER_IS_BETTER,
    PSNR_YUV_WEIGHTING,
    SET_METRICS,
    Frame,
    MetricSuite,
    fid_kid,
    metric_columns,
)

RESULTS_VERSION = 1
PLOT_LABELS = {
    "st_lpips": "ST-LPIPS (not LPIPS)",
    "psnr_rgb": "PSNR RGB [dB]",
    "psnr_yuv": "PSNR YUV 6:1:1 [dB]",
}


@dataclass
class EvalConfig:
    """Evaluation settings (all documented in conf/evaluate.yaml).

    videos: source files (any gvc.data.io format); empty + no dataset -> the bundled sample clips.
    dataset: optional ``{"root", "sequences", "width", "height", "pattern"}`` (MCL-JCV, conf/eval_data).
    models: gvc model files (.gvcm), one per rate point.
    frames: frames per video (None = all). gop: I-frame period (<= 0: first frame only).
    target_bpps: baseline bitrate-matching targets. sweep: codec -> extra quality values for fuller curves.
    baselines: name -> spec (see gvc.eval.baselines.DEFAULT_BASELINES); an empty spec uses the default.
    metrics / metric_options: names and constructor kwargs. colour: matrix, full_range, chroma_upsample.
    anchor / bd_method: BD-rate anchor codec and interpolation ("akima" | "pchip").
    """

    videos: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    output_dir: str = "outputs/evaluate"
    dataset: dict[str, Any] | None = None
    frames: int | None = 8
    gop: int = -1
    target_bpps: list[float] = field(default_factory=lambda: [0.064, 0.13, 0.22])
    sweep: dict[str, list[float]] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=lambda: {"x265": {}})
    tolerance: float = 0.05
    refine_steps: int = 4
    ffmpeg: str | None = None
    metrics: list[str] = field(
        default_factory=lambda: ["psnr", "ms_ssim", "lpips", "st_lpips", "vmaf", "fid", "kid"]
    )
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    fid_kid: dict[str, int] = field(default_factory=lambda: {"kid_subsets": 100, "kid_subset_size": 1000})
    colour: dict[str, Any] = field(
        default_factory=lambda: {"matrix": "bt709", "full_range": True, "chroma_upsample": "nearest"}
    )
    anchor: str = "x265"
    bd_method: str = "akima"
    plot_metrics: list[str] = field(
        default_factory=lambda: [
            "lpips",
            "st_lpips",
            "fid",
            "kid",
            "psnr_rgb",
            "psnr_yuv",
            "ms_ssim",
            "vmaf",
            "pim",
        ]
    )
    device: str = "cpu"
    export: dict[str, Any] = field(
        default_factory=lambda: {
            "enabled": False,
            "png": False,
            "side_by_side": False,
            "side_by_side_crf": 10,
        }
    )
    progress: bool = True

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | EvalConfig) -> EvalConfig:
        if isinstance(cfg, EvalConfig):
            return cfg
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(cfg) - names
        if unknown:
            raise ConfigError(f"unknown evaluation keys {sorted(unknown)}; known: {sorted(names)}")
        out = cls(**{k: v for k, v in cfg.items() if v is not None or k in ("frames", "ffmpeg", "dataset")})
        out.baselines = {k: dict(v or {}) for k, v in (out.baselines or {}).items()}
        if out.anchor and out.baselines and out.anchor not in out.baselines:
            raise ConfigError(
                f"BD-rate anchor {out.anchor!r} is not among the baselines {list(out.baselines)}"
            )
        return out


# --------------------------------------------------------------------------------------------- helpers
def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _video_id(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def resolve_dataset(dataset: Mapping[str, Any]) -> list[Path]:
    """Source files of a dataset config (MCL-JCV: ``root``, ``sequences`` [1..30], ``pattern`` with ``{index}``
    and a glob for the fps, e.g. ``videoSRC{index:02d}_1920x1080_*.yuv``). Missing files raise VideoFormatError."""
    root = Path(str(dataset["root"])).expanduser()
    if not root.is_dir():
        raise VideoFormatError(f"dataset root {root} does not exist; set eval_data.root (e.g. MCL_JCV_ROOT)")
    out, missing = [], []
    for index in dataset.get("sequences", []):
        pattern = str(dataset["pattern"]).format(index=int(index))
        found = sorted(root.glob(pattern))
        if len(found) != 1:
            missing.append(f"{pattern} ({len(found)} matches)")
        else:
            out.append(found[0])
    if missing:
        raise VideoFormatError(f"dataset {root}: missing or ambiguous sequences: {', '.join(missing)}")
    return out


def _as_yuv_frames(decoded: Any, colour: Mapping[str, Any]) -> list[YUVFrame]:
    """Decoder output (YUVFrames, RGB (T, 3, H, W) tensor or list of (3, H, W) tensors in [0, 1]) -> YUVFrames.

    RGB is converted to 4:2:0 with the run's colour convention, as the codec's output file would be.
    """
    if isinstance(decoded, Mapping) and "frames" in decoded:
        decoded = decoded["frames"]
    items = (
        list(decoded)
        if not isinstance(decoded, torch.Tensor)
        else list(decoded.reshape(-1, *decoded.shape[-3:]))
    )
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 3:
            out.append(YUVFrame(*(np.asarray(p, dtype=np.uint8) for p in item)))
        elif isinstance(item, torch.Tensor) and item.dim() in (3, 4):
            rgb = item.detach().cpu().float().reshape(3, *item.shape[-2:]).clamp(0, 1)
            y, u, v = rgb_to_yuv420(rgb, colour["matrix"], colour["full_range"])
            out.append(YUVFrame(y.numpy(), u.numpy(), v.numpy()))
        else:
            raise VideoFormatError(f"cannot read decoded frame of type {type(item).__name__}")
    return out


class SourceVideo:
    """The first ``frames`` frames of a source as YUVFrames, plus a raw I420 copy for ffmpeg tools."""

    def __init__(self, path: Path, frames: int | None, colour: Mapping[str, Any], work_dir: Path):
        self.path = path
        reader = open_video(path, **colour)
        with reader:
            count = len(reader) if frames is None else min(int(frames), len(reader))
            self.frames = [YUVFrame(*(np.array(p) for p in f)) for f in reader.iter_yuv(0, count)]  # writable
            self.width, self.height, self.fps = reader.width, reader.height, float(reader.fps)
        if not self.frames:
            raise VideoFormatError(f"{path}: no frames")
        self.colour = dict(colour)
        self.name = path.stem
        work_dir.mkdir(parents=True, exist_ok=True)
        self.raw = write_raw_video(
            self.frames, work_dir / f"{self.name}.yuv", self.width, self.height, self.fps
        )

    @property
    def count(self) -> int:
        return len(self.frames)

    def to_frame(self, f: YUVFrame) -> Frame:
        rgb = yuv420_to_rgb(f.y, f.u, f.v, self.colour["matrix"], self.colour["full_range"],
                            self.colour.get("chroma_upsample", "nearest"))  # fmt: skip
        return Frame(f.y, f.u, f.v, rgb[None])

    def pairs(self, decoded: Sequence[YUVFrame]) -> Iterator[tuple[Frame, Frame]]:
        if len(decoded) != self.count:
            raise VideoFormatError(f"{self.path}: decoded {len(decoded)} frames, expected {self.count}")
        for ref, dist in zip(self.frames, decoded):
            if dist.y.shape != ref.y.shape:
                raise VideoFormatError(f"decoded frame is {dist.y.shape[::-1]}, source {ref.y.shape[::-1]}")
            yield self.to_frame(ref), self.to_frame(dist)


# --------------------------------------------------------------------------------------------- runner
def model_settings(paths: Sequence[Path]) -> list[str]:
    """A unique, readable label per model file: its stem, or `<parent>_<stem>` (then `_<i>`) where stems collide
    (e.g. two runs' `model.gvcm`), so their bitstreams and cached points never overwrite each other."""
    stems = [p.stem for p in paths]
    labels = [s if stems.count(s) == 1 else f"{p.parent.name}_{s}" for p, s in zip(paths, stems)]
    return [s if labels.count(s) == 1 else f"{s}_{i}" for i, s in enumerate(labels)]


class Evaluator:
    """Runs one evaluation (see module docstring). ``run()`` returns the results dict written to results.json."""

    def __init__(self, cfg: Mapping[str, Any] | EvalConfig):
        self.cfg = EvalConfig.from_mapping(cfg)
        missing = [str(m) for m in self.cfg.models if not Path(str(m)).expanduser().is_file()]
        if missing:  # checked before any baseline runs, so a typo costs nothing
            raise ConfigError(
                f"model files not found: {missing}; give .gvcm files written by training (paths.output_dir/"
                "model.gvcm) or by `gvc export CKPT -o MODEL.gvcm`"
            )
        self.out = Path(self.cfg.output_dir)
        self.points_dir = self.out / "points"
        self.suite = MetricSuite(self.cfg.metrics, self._metric_options())
        self.metric_key = _hash({"metrics": sorted(self.cfg.metrics), "options": self.cfg.metric_options})
        self.log: list[str] = []

    def _metric_options(self) -> dict[str, dict[str, Any]]:
        options = {k: dict(v or {}) for k, v in self.cfg.metric_options.items()}
        for name in ("lpips", "st_lpips", "pim", "fid"):
            if name in self.cfg.metrics or (name == "fid" and "kid" in self.cfg.metrics):
                options.setdefault(name, {}).setdefault("device", self.cfg.device)
        if self.cfg.ffmpeg and "vmaf" in self.cfg.metrics:
            options.setdefault("vmaf", {}).setdefault("ffmpeg", self.cfg.ffmpeg)
        return options

    # ----------------------------------------------------------------------------------------- inputs
    def videos(self) -> list[Path]:
        if self.cfg.videos:
            paths = [Path(str(v)).expanduser() for v in self.cfg.videos]
        elif self.cfg.dataset:
            paths = resolve_dataset(self.cfg.dataset)
        else:
            from gvc.data import sample_clips

            paths = list(sample_clips().values())
        for p in paths:
            if not p.exists():
                raise VideoFormatError(f"{p}: no such video (check `videos=`)")
        return paths

    def _point_base(self, src: SourceVideo) -> dict[str, Any]:
        return {
            "video_id": _video_id(src.path),
            "frames": src.count,
            "gop": self.cfg.gop,
            "colour": self.cfg.colour,
            "metrics": self.metric_key,
        }

    def _load_point(self, key: str) -> dict[str, Any] | None:
        path = self.points_dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            point = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        return point if point.get("version") == RESULTS_VERSION else None

    def _save_point(self, key: str, point: dict[str, Any], features: np.ndarray | None) -> None:
        self.points_dir.mkdir(parents=True, exist_ok=True)
        if features is not None:
            np.save(self.points_dir / f"{key}.npy", features)
            point["features"] = f"{key}.npy"
        tmp = self.points_dir / f"{key}.json.tmp"
        tmp.write_text(json.dumps(point, indent=1, default=_json_default))
        tmp.replace(self.points_dir / f"{key}.json")

    def _score(
        self, src: SourceVideo, decoded: Sequence[YUVFrame], point: dict[str, Any]
    ) -> np.ndarray | None:
        scores = self.suite.evaluate(src.pairs(decoded), src.width, src.height, src.fps)
        point["summary"] = scores.summary
        point["per_frame"] = scores.per_frame
        point["unavailable"] = scores.unavailable
        return scores.features

    # ----------------------------------------------------------------------------------------- codecs
    def _gvc_points(self, src: SourceVideo, bar: tqdm) -> list[dict[str, Any]]:
        points = []
        paths = [Path(str(p)).expanduser() for p in self.cfg.models]
        for model_path, setting in zip(paths, model_settings(paths)):
            ident = {**self._point_base(src), "codec": "gvc", "model_sha256": file_sha256(model_path)}
            key = f"{src.name}__gvc__{setting}__{_hash(ident)}"
            bar.set_postfix_str(f"{src.name} gvc {setting}")
            point = self._load_point(key)
            if point is None:
                point = self._run_gvc(src, model_path, setting, key)
            points.append(point)
            bar.update(1)
        return points

    def _run_gvc(self, src: SourceVideo, model_path: Path, setting: str, key: str) -> dict[str, Any]:
        from gvc.codec.coder import decode_video, encode_video
        from gvc.codec.modelfile import load_model_file

        model = load_model_file(model_path)
        if hasattr(model, "to"):
            model = model.to(self.cfg.device)
        bitstream = self.out / "bitstreams" / src.name / f"gvc_{setting}.gvc"
        bitstream.parent.mkdir(parents=True, exist_ok=True)
        reader = open_video(src.path, **self.cfg.colour)
        t0 = time.perf_counter()
        with reader, torch.no_grad():
            encode_video(reader, model, bitstream, gop=self.cfg.gop, frames=src.count)
        t1 = time.perf_counter()
        with torch.no_grad():
            decoded = _as_yuv_frames(decode_video(bitstream, model), self.cfg.colour)
        t2 = time.perf_counter()
        size = bitstream.stat().st_size
        point = self._new_point(src, "gvc", setting, key, bitstream, size)
        point.update({"model": str(model_path), "encode_s": t1 - t0, "decode_s": t2 - t1})
        features = self._score(src, decoded, point)
        self._save_point(key, point, features)
        return point

    def _new_point(self, src: SourceVideo, codec: str, setting: str, key: str, path: Path, size: int) -> dict:
        return {
            "version": RESULTS_VERSION,
            "key": key,
            "video": src.name,
            "video_path": str(src.path),
            "codec": codec,
            "setting": setting,
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "frames": src.count,
            "gop": self.cfg.gop,
            "bitstream": str(path),
            "bytes": size,
            "bpp": 8.0 * size / (src.count * src.width * src.height),
        }

    def _baseline_points(self, src: SourceVideo, bar: tqdm) -> tuple[list[dict], dict[str, str]]:
        points, unavailable = [], {}
        for name, spec in self.cfg.baselines.items():
            baseline = FFmpegBaseline.from_config(name, spec or None, ffmpeg=self.cfg.ffmpeg)
            reason = baseline.unavailable_reason()
            jobs = [("target", t) for t in self.cfg.target_bpps] + [
                ("q", q) for q in self.cfg.sweep.get(name, [])
            ]
            if reason:
                unavailable[name] = reason
                bar.update(len(jobs))
                continue
            work = self.out / "bitstreams" / src.name / name
            matcher = BitrateMatcher(
                baseline, src.raw, self.cfg.gop, work, self.cfg.tolerance, self.cfg.refine_steps
            )
            for kind, value in jobs:
                setting = f"{value:g}bpp" if kind == "target" else f"q{value:g}"
                ident = {**self._point_base(src), "codec": name, "spec": baseline.info(), kind: value,
                         "tolerance": self.cfg.tolerance}  # fmt: skip
                key = f"{src.name}__{name}__{setting}__{_hash(ident)}"
                bar.set_postfix_str(f"{src.name} {name} {setting}")
                point = self._load_point(key)
                if point is None:
                    point = self._run_baseline(src, baseline, matcher, kind, value, setting, key)
                points.append(point)
                bar.update(1)
            matcher.cleanup()  # the search's encodes; chosen points were copied to <setting>.<ext>
        return points, unavailable

    def _run_baseline(self, src, baseline, matcher, kind, value, setting, key) -> dict[str, Any]:
        t0 = time.perf_counter()
        if kind == "target":
            match = matcher.match(float(value))
            enc, extra = match.chosen, match.as_dict()
            if not match.within_tolerance:
                self.log.append(
                    f"{src.name} {baseline.name}: target {value} bpp not reached within {self.cfg.tolerance:.0%} "
                    f"(closest {enc.bpp:.4f} bpp at q={enc.q:g})"
                )
        else:
            enc = matcher._encode(float(value))
            extra = {"q": enc.q}
        t1 = time.perf_counter()
        final = matcher.work_dir / f"{setting}.{baseline.ext}"
        final.write_bytes(enc.path.read_bytes())
        decoded = [YUVFrame(*f) for f in baseline.decode(final, src.width, src.height)]
        t2 = time.perf_counter()
        point = self._new_point(src, baseline.name, setting, key, final, final.stat().st_size)
        point.update(extra)
        point.update({"encode_s": t1 - t0, "decode_s": t2 - t1, "spec": baseline.info()})
        features = self._score(src, decoded, point)
        self._save_point(key, point, features)
        return point

    # ----------------------------------------------------------------------------------------- main
    def run(self) -> dict[str, Any]:
        videos = self.videos()
        self.out.mkdir(parents=True, exist_ok=True)
        per_video_jobs = len(self.cfg.models) + sum(
            len(self.cfg.target_bpps) + len(self.cfg.sweep.get(n, [])) for n in self.cfg.baselines
        )
        points: list[dict[str, Any]] = []
        baseline_unavailable: dict[str, str] = {}
        source_features: dict[str, np.ndarray] = {}
        bar = tqdm(
            total=len(videos) * per_video_jobs, desc="evaluate", unit="point", disable=not self.cfg.progress
        )
        for path in videos:
            src = SourceVideo(path, self.cfg.frames, self.cfg.colour, self.out / "sources")
            points += self._gvc_points(src, bar)
            base_points, unavailable = self._baseline_points(src, bar)
            points += base_points
            baseline_unavailable.update(unavailable)
            feats = self._source_features(src)
            if feats is not None:
                source_features[src.name] = feats
            if self.cfg.export.get("enabled"):
                self._export(src, [p for p in points if p["video"] == src.name])
        bar.close()
        return self._write_outputs(points, baseline_unavailable, source_features)

    def _source_features(self, src: SourceVideo) -> np.ndarray | None:
        if self.suite.features is None:
            return None
        key = f"{src.name}__source__{_hash({**self._point_base(src), 'codec': 'source'})}"
        path = self.points_dir / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        feats = np.concatenate([self.suite.features(src.to_frame(f).rgb) for f in src.frames])
        self.points_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, feats)
        return feats

    def _set_rows(
        self, points: list[dict], source_features: Mapping[str, np.ndarray]
    ) -> tuple[list[dict], dict]:
        """FID/KID per (codec, setting) over all videos' patches (HiFiC); one row per setting, video 'all'."""
        wanted = [m for m in SET_METRICS if m in self.cfg.metrics]
        if not wanted:
            return [], {}
        if self.suite.features is None:
            return [], {m: self.suite.unavailable[m].reason for m in wanted}
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for p in points:
            groups[(p["codec"], p["setting"])].append(p)
        rows, unavailable = [], {}
        for (codec, setting), pts in sorted(groups.items()):
            fake = [np.load(self.points_dir / p["features"]) for p in pts if p.get("features")]
            real = [source_features[p["video"]] for p in pts if p["video"] in source_features]
            try:
                values = fid_kid(np.concatenate(real), np.concatenate(fake), **self.cfg.fid_kid)
            except ValueError as err:  # e.g. frames smaller than one 256x256 patch
                unavailable[f"fid/kid {codec} {setting}"] = str(err)
                continue
            row = {
                "video": "all",
                "codec": codec,
                "setting": setting,
                "bpp": float(np.mean([p["bpp"] for p in pts])),
            }
            row.update({k: v for k, v in values.items() if k in wanted or k in ("kid_std", "patches")})
            rows.append(row)
        return rows, unavailable

    def _write_outputs(self, points, baseline_unavailable, source_features) -> dict[str, Any]:
        columns = [c for m in self.cfg.metrics if m not in SET_METRICS for c in metric_columns(m)]
        video_rows = []
        for p in points:
            row = {k: p.get(k) for k in ("video", "codec", "setting", "bpp", "bytes", "frames", "width", "height",
                                         "q", "target_bpp", "rel_error", "encode_s", "decode_s")}  # fmt: skip
            row.update({c: p["summary"].get(c) for c in columns})
            video_rows.append(row)
        set_rows, set_unavailable = self._set_rows(points, source_features)
        _write_csv(self.out / "per_video.csv", video_rows)
        frame_rows = []
        for p in points:
            n = max((len(v) for v in p["per_frame"].values()), default=0)
            for i in range(n):
                row = {
                    "video": p["video"],
                    "codec": p["codec"],
                    "setting": p["setting"],
                    "frame": i,
                    "bpp": p["bpp"],
                }
                row.update({c: p["per_frame"][c][i] for c in columns if c in p["per_frame"]})
                frame_rows.append(row)
        _write_csv(self.out / "per_frame.csv", frame_rows)
        if set_rows:
            _write_csv(self.out / "fid_kid.csv", set_rows)

        all_rows = video_rows + set_rows
        present = [m for m in self.cfg.plot_metrics if any(_finite(r.get(m)) for r in all_rows)]
        bd_metrics = [
            c
            for c in dict.fromkeys(columns + [m for m in SET_METRICS if m in self.cfg.metrics])
            if c in present
        ]
        anchor_ok = any(r["codec"] == self.cfg.anchor for r in video_rows)
        bd = rd.bd_rate_table(all_rows, bd_metrics, self.cfg.anchor, self.cfg.bd_method) if anchor_ok else {}
        plots, notes = {}, []
        for metric in self.cfg.plot_metrics:
            curves = rd.rd_curves(all_rows, metric)
            if not curves:
                notes.append(f"no plot for {metric}: {self._why_missing(metric, points)}")
                continue
            title = f"{len({r['video'] for r in video_rows})} videos, {self.cfg.frames or 'all'} frames, GOP {self.cfg.gop}"
            plots[metric] = str(rd.plot_rd(curves, metric, self.out / "plots" / f"rd_{metric}.png", title,
                                           PLOT_LABELS.get(metric)))  # fmt: skip
        unavailable = {name: m.reason for name, m in self.suite.unavailable.items()}
        for p in points:
            for name, reason in p.get("unavailable", {}).items():
                unavailable.setdefault(name, reason)
        results = {
            "version": RESULTS_VERSION,
            "config": dataclasses.asdict(self.cfg),
            "colour": {
                **self.cfg.colour,
                "note": "sources and every codec output are 8-bit 4:2:0; RGB metrics "
                "convert both with this convention",
            },  # fmt: skip
            "psnr_yuv_weighting": PSNR_YUV_WEIGHTING,
            "rate": "bpp = 8 * bytes of the real output file / (frames * width * height), unpadded source size",
            "metric_info": self.suite.info(),
            "higher_is_better": HIGHER_IS_BETTER,
            "unavailable_metrics": unavailable,
            "unavailable_baselines": baseline_unavailable,
            "fid_kid_unavailable": set_unavailable,
            "points": [{k: v for k, v in p.items() if k != "per_frame"} for p in points],
            "fid_kid": set_rows,
            "bd_rate": {"anchor": self.cfg.anchor, "method": self.cfg.bd_method, "table": bd},
            "plots": plots,
            "notes": notes + self.log,
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default))
        (self.out / "report.md").write_text(self._report(results, video_rows, bd_metrics))
        return results

    def _why_missing(self, metric: str, points: list[dict]) -> str:
        for name in self.cfg.metrics:
            if metric in metric_columns(name) and name in self.suite.unavailable:
                return f"unavailable ({self.suite.unavailable[name].reason})"
        if not any(metric in metric_columns(n) for n in self.cfg.metrics):
            return "not in the metric list"
        return "no finite values"

    def _report(self, results: dict[str, Any], video_rows: list[dict], bd_metrics: list[str]) -> str:
        cfg = self.cfg
        lines = ["# gvc evaluation report", ""]
        lines += [
            f"- videos: {', '.join(sorted({r['video'] for r in video_rows}))}",
            f"- frames per video: {cfg.frames or 'all'}; GOP: {cfg.gop if cfg.gop > 0 else 'first frame only'} "
            "(low delay: I then P)",
            f"- colour: {cfg.colour['matrix']}, {'full' if cfg.colour['full_range'] else 'limited'} range; "
            f"PSNR-YUV = {PSNR_YUV_WEIGHTING}",
            f"- {results['rate']}",
            f"- baselines matched to {cfg.target_bpps} bpp within {cfg.tolerance:.0%} where reachable",
            "",
            "## Mean over videos per codec setting",
            "",
        ]
        cols = [c for c in ("bpp", "psnr_rgb", "psnr_yuv", "ms_ssim", "lpips", "st_lpips", "pim", "vmaf")
                if any(_finite(r.get(c)) for r in video_rows)]  # fmt: skip
        lines.append("| codec | setting | " + " | ".join(cols) + " |")
        lines.append("|---" * (len(cols) + 2) + "|")
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in video_rows:
            groups[(r["codec"], r["setting"])].append(r)
        for (codec, setting), rows in sorted(groups.items()):
            cells = []
            for c in cols:
                vals = [r[c] for r in rows if _finite(r.get(c))]
                cells.append(f"{np.mean(vals):.4g}" if vals else "n/a")
            lines.append(f"| {codec} | {setting} | " + " | ".join(cells) + " |")
        if results["fid_kid"]:
            lines += ["", "## FID / KID (HiFiC 256x256 patches, all videos)", "", "| codec | setting | bpp | fid | kid |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for r in results["fid_kid"]:
                lines.append(f"| {r['codec']} | {r['setting']} | {r['bpp']:.4f} | {r.get('fid', float('nan')):.2f} | "
                             f"{r.get('kid', float('nan')):.4f} |")  # fmt: skip
        lines += [
            "",
            f"## BD-rate vs {cfg.anchor} ({cfg.bd_method}, log-rate, overlap only; negative = fewer bits)",
            "",
        ]
        if results["bd_rate"]["table"]:
            lines.append(rd.bd_table_markdown(results["bd_rate"]["table"], bd_metrics, cfg.anchor))
        else:
            lines.append(f"not computed: no {cfg.anchor} points")
        lines += ["", "## RD plots", ""]
        for metric, path in results["plots"].items():
            lines.append(f"![{metric}]({Path(path).relative_to(self.out)})")
        if results["unavailable_metrics"] or results["unavailable_baselines"] or results["notes"]:
            lines += ["", "## Notes", ""]
            for name, reason in results["unavailable_metrics"].items():
                lines.append(f"- metric **{name}** unavailable: {reason}")
            for name, reason in results["unavailable_baselines"].items():
                lines.append(f"- baseline **{name}** unavailable: {reason}")
            lines += [f"- {n}" for n in results["notes"]]
        if "st_lpips" in cfg.metrics:
            lines += [
                "",
                "ST-LPIPS is shift-tolerant LPIPS (AlexNet, stlpips-pytorch): not comparable with LPIPS.",
            ]
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------------------------------- export
    def _export(self, src: SourceVideo, points: list[dict[str, Any]]) -> None:
        opts = self.cfg.export
        root = self.out / "export"
        name = export_name(src.path, src.width, src.height, src.fps)
        decoded_cache: dict[str, list[YUVFrame]] = {}
        for p in points:
            frames = self._decode_point(p)
            decoded_cache[p["key"]] = frames
            export_reconstruction(frames, root / f"{p['codec']}_{p['setting']}", name, src.fps,
                                  png=bool(opts.get("png")), matrix=self.cfg.colour["matrix"],
                                  full_range=self.cfg.colour["full_range"])  # fmt: skip
        if not opts.get("side_by_side"):
            return
        anchors = [p for p in points if p["codec"] == self.cfg.anchor]
        for p in points:
            if p["codec"] != "gvc" or not anchors:
                continue
            closest = min(anchors, key=lambda a: abs(math.log(a["bpp"] / p["bpp"])))
            out = (
                root
                / "side_by_side"
                / f"{src.name}__gvc_{p['setting']}__vs__{closest['codec']}_{closest['setting']}.mp4"
            )
            side_by_side([src.frames, decoded_cache[p["key"]], decoded_cache[closest["key"]]], out, src.fps,
                         crf=int(opts.get("side_by_side_crf", 10)))  # fmt: skip

    def _decode_point(self, p: dict[str, Any]) -> list[YUVFrame]:
        if p["codec"] == "gvc":
            from gvc.codec.coder import decode_video
            from gvc.codec.modelfile import load_model_file

            with torch.no_grad():
                return _as_yuv_frames(
                    decode_video(p["bitstream"], load_model_file(p["model"])), self.cfg.colour
                )
        baseline = FFmpegBaseline.from_config(p["codec"], self.cfg.baselines.get(p["codec"]) or None,
                                              ffmpeg=self.cfg.ffmpeg)  # fmt: skip
        return [YUVFrame(*f) for f in baseline.decode(p["bitstream"], p["width"], p["height"])]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def evaluate(cfg: Mapping[str, Any] | EvalConfig) -> dict[str, Any]:
    """Run an evaluation from a plain mapping (or EvalConfig); returns the results.json content."""
    return Evaluator(cfg).run()
