"""Evaluation runner: for each video and each codec setting, encode -> decode -> metrics; then the report.

Called by ``evaluate.py`` (Hydra) with a plain mapping, or directly: ``evaluate({"videos": [...], ...})``.
Every key, its default and its documentation are in conf/evaluate.yaml, the one source of the defaults:
:class:`EvalConfig` reads them from there (:func:`default_config`) and checks the keys a caller gives.

The runner is thin: codecs implement :class:`gvc.eval.codecs.Codec` (gvc through its public coder API, ffmpeg
encoders, external commands), :class:`gvc.eval.ratematch.BitrateMatcher` matches tunable codecs to the target
bpps, :class:`gvc.eval.store.ResultStore` keeps each point on disk (a re-run skips what is done) and
:class:`gvc.eval.report.ReportWriter` writes the tables, plots and report.md. Progress and the summary go to
``output_dir/evaluate.log``.

Outputs under ``output_dir``: ``points/`` (cache), ``bitstreams/<video>/<codec>/<setting>.<ext>`` (every
chosen real file), ``sources/`` (raw I420 copies the encoders read), ``per_frame.csv``, ``per_video.csv``,
``fid_kid.csv``, ``results.json``, ``plots/rd_<metric>.png``, ``plots/{frames,temporal,crops}_<video>_<group>.png``
(``pictures``), ``report.md``, ``evaluate.log`` and, when enabled,
``export/`` (MCL-JCV-named reconstructions, side-by-side mp4s).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from gvc.data.io import YUVFrame
from gvc.errors import ConfigError, VideoFormatError
from gvc.eval.codecs import GVCCodec, TunableCodec, build_codec, gop_mismatch, gop_structure, model_settings
from gvc.eval.defaults import default_config
from gvc.eval.export import export_name, export_reconstruction, side_by_side
from gvc.eval.metrics import SET_METRICS, MetricSuite, fid_kid, metric_columns
from gvc.eval.pictures import comparison_groups, write_group_pictures
from gvc.eval.ratematch import BitrateMatcher
from gvc.eval.report import ReportWriter, finite, summary_table, video_rows
from gvc.eval.source import SourceVideo, resolve_dataset, stable_hash
from gvc.eval.store import ResultStore
from gvc.eval.tools import ffmpeg_exe, ffmpeg_version, gvc_version

__all__ = ["EvalConfig", "Evaluator", "default_config", "evaluate", "model_settings", "resolve_dataset"]

log = logging.getLogger("gvc.eval")

# keys whose null is a value (all frames, imageio-ffmpeg's binary, no dataset); a null elsewhere: the default
_NULLABLE = ("frames", "ffmpeg", "dataset", "preset")
# groups of fixed keys: a caller's keys go on top of conf/evaluate.yaml's one by one (as `export.png=true` does
# on the command line), so every key of the group has its value from the yaml and is read without a default
_GROUPS = ("colour", "export", "fid_kid", "gvc")
#: the keys a dataset (conf/eval_data/*.yaml, or a caller's ``dataset``) must give (resolve_dataset reads them)
DATASET_KEYS = ("root", "pattern", "sequences")


@dataclass
class EvalConfig:
    """Evaluation settings, a structured config: the fields give the types (OmegaConf converts and checks the
    values, and names a missing key), conf/evaluate.yaml every value, where each key is documented
    (:func:`default_config`); :meth:`from_mapping` puts the caller's keys on top and checks them.

    videos: source files (any gvc.data.io format); empty + no dataset -> the bundled sample clips.
    dataset: optional ``{"root", "sequences", "width", "height", "pattern"}`` (MCL-JCV, conf/eval_data).
    models: gvc model files (.gvcm), one per rate point, or variable-rate ones (one model, every rate).
    gvc: variable-rate models: ``qualities`` (q values swept, None = every integer level), ``match_targets``
    (also rate-match each to ``target_bpps`` by bisection over q).
    frames: frames per video (None = all). gop: I-frame period of every codec (<= 0: first frame only).
    target_bpps: rate-matching targets of the baselines. sweep: codec -> extra fixed q values for fuller curves.
    baselines: name -> spec (defaults: conf/evaluate.yaml, `gvc.eval.defaults.default_codecs`; ``command`` for an external encoder);
    an empty spec uses the default of that name. metrics / metric_options: names and constructor kwargs.
    colour: matrix, full_range (None: what the container states; raw .yuv: BT.709 full range), chroma_upsample.
    anchor / bd_method / bd_min_points: BD-rate anchor codec, interpolation ("akima" | "pchip"), points needed.
    match_gvc: also match every baseline to the rate each gvc model reached on each video.
    pictures: per-clip plots of quality and temporal metrics per frame and side-by-side crops.
    preset: the named test conditions in force (``{"name", "about"}``, set by conf/eval_preset/*.yaml) or None.
    """

    videos: list[str]
    models: list[str]
    output_dir: str
    dataset: dict[str, Any] | None
    frames: int | None
    gop: int
    target_bpps: list[float]
    sweep: dict[str, list[Any]]  # q values (OmegaConf does not convert ints in a list inside a dict to float)
    baselines: dict[str, dict[str, Any]]
    tolerance: float
    refine_steps: int
    ffmpeg: str | None
    metrics: list[str]
    metric_options: dict[str, dict[str, Any]]
    fid_kid: dict[str, int]
    colour: dict[str, Any]
    anchor: str
    bd_method: str
    bd_min_points: int
    plot_metrics: list[str]
    device: str
    export: dict[str, Any]
    progress: bool
    match_gvc: bool
    pictures: bool
    preset: dict[str, Any] | None
    gvc: dict[str, Any]

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | EvalConfig) -> EvalConfig:
        """conf/evaluate.yaml's values with the keys of ``cfg`` on top (a key given replaces the default whole,
        except the fixed-key groups ``colour``, ``export`` and ``fid_kid``, which take the given keys one by one;
        None for a key that cannot be null means the default), checked: ConfigError names the bad key."""
        if isinstance(cfg, EvalConfig):
            return cfg
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(cfg) - set(names)
        if unknown:
            raise ConfigError(f"unknown evaluation keys {sorted(unknown)}; known: {sorted(names)}")
        merged = default_config()
        extra = set(merged) - set(names)
        if extra:
            raise ConfigError(f"conf/evaluate.yaml has keys EvalConfig does not know: {sorted(extra)}")
        given = {k: v for k, v in cfg.items() if v is not None or k in _NULLABLE}
        for group in _GROUPS:
            if isinstance(given.get(group), Mapping) and isinstance(merged.get(group), Mapping):
                unknown_keys = sorted(set(given[group]) - set(merged[group]))
                if unknown_keys:
                    raise ConfigError(
                        f"unknown {group} keys {unknown_keys}; known (conf/evaluate.yaml): {sorted(merged[group])}"
                    )
                given[group] = {**merged[group], **given[group]}
        merged.update(given)
        out = _typed(merged)
        if out.dataset is not None:
            lacking = [k for k in DATASET_KEYS if k not in out.dataset]
            if lacking:
                raise ConfigError(
                    f"dataset keys {lacking} are missing: a dataset gives {list(DATASET_KEYS)} "
                    "(see conf/eval_data/mcl_jcv.yaml)"
                )
        out.baselines = {k: dict(v or {}) for k, v in (out.baselines or {}).items()}
        out.sweep = {k: list(v or []) for k, v in (out.sweep or {}).items()}
        if out.frames is not None and int(out.frames) <= 0:
            raise ConfigError(f"frames must be a positive number of frames or null (all), got {out.frames}")
        if not 0 < float(out.tolerance) < 1:
            raise ConfigError(f"tolerance must be a fraction in (0, 1), got {out.tolerance}")
        if any(not isinstance(t, int | float) or t <= 0 for t in out.target_bpps):
            raise ConfigError(f"target_bpps must be positive numbers, got {out.target_bpps}")
        if out.bd_method not in ("akima", "pchip"):
            raise ConfigError(f"bd_method must be akima or pchip, got {out.bd_method!r}")
        if int(out.bd_min_points) < 2:
            raise ConfigError(f"bd_min_points must be at least 2, got {out.bd_min_points}")
        if out.anchor and out.baselines and out.anchor not in out.baselines:
            raise ConfigError(
                f"BD-rate anchor {out.anchor!r} is not among the baselines {list(out.baselines)}"
            )
        qualities = out.gvc["qualities"]
        if qualities is not None and (
            not isinstance(qualities, list | tuple)
            or not qualities
            or any(isinstance(q, bool) or not isinstance(q, int | float) or q < 0 for q in qualities)
        ):
            raise ConfigError(
                f"gvc.qualities must be null (every integer level) or a list of quality levels >= 0, got {qualities!r}"
            )
        if not isinstance(out.gvc["match_targets"], bool):
            raise ConfigError(f"gvc.match_targets must be true or false, got {out.gvc['match_targets']!r}")
        unknown_sweep = set(out.sweep) - set(out.baselines)
        if unknown_sweep:
            raise ConfigError(f"sweep names codecs that are not baselines: {sorted(unknown_sweep)}")
        return out


def _typed(merged: Mapping[str, Any]) -> EvalConfig:
    """``merged`` as an EvalConfig, typed by OmegaConf from the dataclass (EvalConfig as a structured config):
    ConfigError names a value of the wrong type or a key that is missing."""
    conf = OmegaConf.structured(EvalConfig)
    for key, value in merged.items():  # key by key, so that an error names its key
        try:
            conf[key] = value
        except OmegaConfBaseException as err:
            where = getattr(err, "full_key", None) or key
            problem = " ".join(str(err).split("\n", 1)[0].split())
            raise ConfigError(
                f"{where}={value!r}: {problem}" if where == key else f"{where}: {problem}"
            ) from None
    missing = sorted(OmegaConf.missing_keys(conf))
    if missing:
        raise ConfigError(f"evaluation keys {missing} are missing: conf/evaluate.yaml sets every key")
    return OmegaConf.to_object(conf)


class Evaluator:
    """Runs one evaluation (see module docstring). ``run()`` returns the results dict written to results.json."""

    def __init__(self, cfg: Mapping[str, Any] | EvalConfig, command_line: str | None = None):
        """``command_line``: the command that started the run (evaluate.py passes its own), for report.md."""
        self.command_line = command_line
        self.cfg = EvalConfig.from_mapping(cfg)
        self.video_paths = self.videos()  # missing videos are reported before any work
        # model files and codec specs are checked before any work, so a typo costs nothing
        self.gvc = (
            GVCCodec(self.cfg.models, self.cfg.gop, self.cfg.device, qualities=self.cfg.gvc["qualities"])
            if self.cfg.models
            else None
        )
        self.baselines: dict[str, TunableCodec] = {
            name: build_codec(name, spec, self.cfg.gop, self.cfg.ffmpeg)
            for name, spec in self.cfg.baselines.items()
        }
        self.out = Path(self.cfg.output_dir)
        self.store = ResultStore(self.out)
        self.suite = MetricSuite(self.cfg.metrics, self._metric_options())
        self.metric_key = stable_hash(
            {"metrics": sorted(self.cfg.metrics), "options": self.cfg.metric_options}
        )
        self.notes: list[str] = []

    def _metric_options(self) -> dict[str, dict[str, Any]]:
        options = {k: dict(v or {}) for k, v in self.cfg.metric_options.items()}
        for name in ("lpips", "st_lpips", "st_lpips_vgg", "pim", "fid"):
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
        names = [p.stem for p in paths]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(
                f"videos with the same name {dupes}: their results would collide; rename or copy them"
            )
        return paths

    def _base_identity(self, src: SourceVideo) -> dict[str, Any]:
        return {"video": src.identity(), "gop": self.cfg.gop, "metrics": self.metric_key}

    # ----------------------------------------------------------------------------------------- one point
    def _finish_point(self, src: SourceVideo, codec, setting_label: str, key: str, final: Path, encoded,
                      extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        decoded = codec.decode(final, src)
        records = codec.frame_records(final, src)
        size = final.stat().st_size
        point: dict[str, Any] = {
            "video": src.name,
            "video_path": str(src.path),
            "codec": codec.name,
            "setting": setting_label,
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "frames": src.count,
            "gop": self.cfg.gop,
            "colour": src.colour,
            "bitstream": str(final),
            "bytes": size,
            "bpp": 8.0 * size / src.pixels,
            "command": encoded.command.replace(str(encoded.path), str(final)),
            "encode_s": encoded.encode_s,
            "codec_settings": codec.settings()
            if not isinstance(codec, GVCCodec)
            else codec.setting_identity(setting_label),
            "frame_records": [dataclasses.asdict(r) for r in records],
            **encoded.extra,
            **extra,
        }
        mismatch = gop_mismatch(records, self.cfg.gop)
        if len(records) != src.count:
            mismatch = f"{len(records)} packets for {src.count} frames"
        point["gop_check"] = mismatch or "ok"
        scores = self.suite.evaluate(src.pairs(decoded), src.width, src.height, src.fps)
        point["summary"] = scores.summary
        point["per_frame"] = scores.per_frame
        point["unavailable"] = scores.unavailable
        self.store.save(key, point, scores.features)
        return point

    def _log_point(self, point: dict[str, Any], cached: bool, done: int, total: int) -> None:
        s = point["summary"]
        target = (
            f" target {point['target_bpp']:g} ({point['rel_error']:+.1%})"
            if finite(point.get("target_bpp"))
            else ""
        )
        metrics = ", ".join(f"{m} {s[m]:.4g}" for m in ("psnr_yuv", "ms_ssim", "vmaf", "st_lpips") if m in s)
        log.info(f"[{done}/{total}] {point['video']} {point['codec']} {point['setting']}: {point['bpp']:.4f} bpp"
                 f"{target}; {metrics}{' (cached)' if cached else ''}")  # fmt: skip

    # ----------------------------------------------------------------------------------------- codecs
    def _gvc_targets(self) -> list[str]:
        """The variable-rate models rate-matched to the targets (``gvc.match_targets``)."""
        return self.gvc.variable_rate if self.gvc and self.cfg.gvc["match_targets"] else []

    def _gvc_points(self, src: SourceVideo, progress) -> list[dict[str, Any]]:
        """gvc's settings (each single-rate model; each variable-rate model at each swept q), then each
        variable-rate model matched to each target (:meth:`_gvc_matched_points`)."""
        points = []
        for label in self.gvc.labels:
            key = self.store.key(
                src.name, "gvc", label, {**self._base_identity(src), **self.gvc.setting_identity(label)}
            )
            point = self.store.load(key)
            cached = point is not None
            if point is None:
                final = self.out / "bitstreams" / src.name / "gvc" / f"{label}.gvc"
                final.parent.mkdir(parents=True, exist_ok=True)
                encoded = self.gvc.encode(src, label, final)
                point = self._finish_point(
                    src, self.gvc, label, key, final, encoded, {"target_bpp": None, "rel_error": None}
                )
            points.append(point)
            progress(point, cached)
        for model_label in self._gvc_targets():
            points += self._gvc_matched_points(src, model_label, progress)
        return points

    def _gvc_matched_points(self, src: SourceVideo, model_label: str, progress) -> list[dict[str, Any]]:
        """One variable-rate model matched to each target bpp: :class:`BitrateMatcher`, the bisection the
        baselines' CRF gets, over the model's quality level (:meth:`GVCCodec.quality_codec`).

        Why this and not :func:`gvc.codec.target_rate.encode_at_bpp` (`gvc encode --bpp`): one search for every
        codec of a report, so gvc's matched points mean what the baselines' do: the same ``tolerance`` and
        ``refine_steps``, every step a real encode of the whole clip, encodes shared between the targets of a
        video, the same floor / ceiling reasons for a target the model cannot reach (a point flagged "not met",
        never a refused run), and a chosen setting that is a plain q, whose `gvc encode --q` command in the report
        rewrites the file byte for byte. encode_at_bpp is what a user runs (its accuracy is a bench's question);
        here the evaluation picks the setting, as it does for x265."""
        codec = self.gvc.quality_codec(model_label)
        work = self.out / "bitstreams" / src.name / "gvc"
        search = work / "search" / model_label
        matcher = BitrateMatcher(codec, src, search, self.cfg.tolerance, self.cfg.refine_steps)
        points = []
        for target in self.cfg.target_bpps:
            label = self.gvc.target_label(model_label, target)
            ident = {**self._base_identity(src), **self.gvc.setting_identity(label), "target": float(target),
                     "tolerance": self.cfg.tolerance, "refine_steps": self.cfg.refine_steps}  # fmt: skip
            key = self.store.key(src.name, "gvc", label, ident)
            point = self.store.load(key)
            cached = point is not None
            if point is None:
                match = matcher.match(float(target))
                if not match.within_tolerance:
                    log.info(f"{src.name} gvc {model_label}: target {target:g} bpp not met: {match.reason}")
                final = work / f"{label}.gvc"
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(match.chosen.path, final)
                encoded = dataclasses.replace(
                    match.chosen,
                    path=final,
                    command=self.gvc.cli_commands(src, model_label, final, match.chosen.setting),
                )
                extra = {**match.as_dict(), "bpp_tried": match.tried}
                point = self._finish_point(src, self.gvc, label, key, final, encoded, extra)
            points.append(point)
            progress(point, cached)
        matcher.cleanup()
        for folder in (search, search.parent):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return points

    def _baseline_points(
        self, src: SourceVideo, progress, unavailable: dict[str, str], matched: list[tuple[str, float]] = ()
    ) -> list[dict[str, Any]]:
        """Each baseline at the targets, at the rate of each gvc point in ``matched`` ((gvc setting, bpp)) and at
        its sweep values."""
        points = []
        for name, codec in self.baselines.items():
            jobs = [("target", float(t), None) for t in self.cfg.target_bpps]
            jobs += [("target", float(b), g) for g, b in matched]
            jobs += [("q", float(q), None) for q in self.cfg.sweep.get(name, [])]
            reason = codec.unavailable_reason()
            if reason:
                unavailable[name] = reason
                log.info(f"{name}: unavailable ({reason})")
                for _ in jobs:
                    progress(None, False)
                continue
            work = self.out / "bitstreams" / src.name / name
            matcher = BitrateMatcher(codec, src, work / "search", self.cfg.tolerance, self.cfg.refine_steps)
            for kind, value, gvc_setting in jobs:
                label = f"{value:g}bpp" if kind == "target" else f"q{codec.format_q(value)}"
                if gvc_setting is not None:
                    label = f"at_gvc_{gvc_setting}"
                ident = {**self._base_identity(src), "codec": codec.settings(), kind: value}
                if kind == "target":
                    ident["tolerance"] = self.cfg.tolerance
                key = self.store.key(src.name, name, label, ident)
                point = self.store.load(key)
                cached = point is not None
                if point is None:
                    if kind == "target":
                        match = matcher.match(value)
                        encoded, extra = match.chosen, {**match.as_dict(), "bpp_tried": match.tried}
                        if not match.within_tolerance:
                            log.info(f"{src.name} {name}: target {value:g} bpp not met: {match.reason}")
                    else:
                        encoded = matcher.encode(value)
                        extra = {"q": encoded.setting, "target_bpp": None, "rel_error": None}
                    final = work / f"{label}.{codec.ext}"
                    shutil.copyfile(encoded.path, final)
                    if gvc_setting is not None:
                        extra["matched_to"] = f"gvc {gvc_setting}"
                    point = self._finish_point(src, codec, label, key, final, encoded, extra)
                points.append(point)
                progress(point, cached)
            matcher.cleanup()
            if (work / "search").is_dir() and not any((work / "search").iterdir()):
                (work / "search").rmdir()
        return points

    # ----------------------------------------------------------------------------------------- main
    def run(self) -> dict[str, Any]:
        videos = self.video_paths
        self.out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.out / "evaluate.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        old_level, old_propagate = log.level, log.propagate
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            return self._run(videos)
        finally:
            log.removeHandler(handler)
            handler.close()
            log.setLevel(old_level)
            log.propagate = old_propagate

    def _run(self, videos: list[Path]) -> dict[str, Any]:
        cfg = self.cfg
        n_gvc = len(self.gvc.labels) if self.gvc else 0  # the points the baselines are matched to
        per_video = (
            n_gvc
            + len(self._gvc_targets()) * len(cfg.target_bpps)
            + sum(
                len(cfg.target_bpps) + len(cfg.sweep.get(n, [])) + (n_gvc if cfg.match_gvc else 0)
                for n in self.baselines
            )
        )
        total = len(videos) * per_video
        log.info(f"evaluate: {len(videos)} videos x {per_video} points into {self.out} "
                 f"(frames {cfg.frames or 'all'}, GOP {cfg.gop}, {ffmpeg_version(cfg.ffmpeg)})")  # fmt: skip
        for name, m in self.suite.unavailable.items():
            log.info(f"metric {name} unavailable: {m.reason}")
        bar = tqdm(total=total, desc="evaluate", unit="point", disable=not cfg.progress)
        done = [0]

        def progress(point: dict[str, Any] | None, cached: bool) -> None:
            done[0] += 1
            bar.update(1)
            if point is not None:
                bar.set_postfix_str(f"{point['video']} {point['codec']} {point['setting']}")
                self._log_point(point, cached, done[0], total)

        points: list[dict[str, Any]] = []
        curve_names: dict[str, str] = {}
        pictures: dict[str, list[dict[str, Any]]] = {}
        unavailable_codecs: dict[str, str] = {}
        source_features: dict[str, np.ndarray] = {}
        for path in videos:
            src = SourceVideo(path, cfg.frames, cfg.colour, self.out / "sources")
            log.info(
                f"{src.name}: {src.count} frames {src.width}x{src.height} at {src.fps:g} fps, colour {src.colour}"
            )
            vpoints = self._gvc_points(src, progress) if self.gvc else []
            for p in vpoints:  # one curve per model file, named by the model and the structure it coded
                structure = gop_structure([r["type"] for r in p["frame_records"]])
                model_label = self.gvc.model_label(p["setting"])
                p["structure"] = structure
                p["curve"] = curve_names.setdefault(model_label, f"gvc {model_label} ({structure})")
            # the baselines' neighbours of gvc's own settings (a point matched to a target has the baselines'
            # points at that target)
            matched = (
                [(p["setting"], p["bpp"]) for p in vpoints if not finite(p.get("target_bpp"))]
                if cfg.match_gvc
                else []
            )
            vpoints += self._baseline_points(src, progress, unavailable_codecs, matched)
            for p in vpoints:
                if p.get("gop_check", "ok") != "ok":
                    self.notes.append(f"{p['video']} {p['codec']} {p['setting']}: frame types differ from the GOP: "
                                      f"{p['gop_check']}")  # fmt: skip
            points += vpoints
            feats = self._source_features(src)
            if feats is not None:
                source_features[src.name] = feats
            if cfg.export["enabled"]:
                self._export(src, vpoints)
            if cfg.pictures:
                pictures[src.name] = self._pictures(src, vpoints)
        bar.close()
        set_rows, set_unavailable = self._set_rows(points, source_features)
        columns = [c for m in cfg.metrics if m not in SET_METRICS for c in metric_columns(m)]
        unavailable = {name: m.reason for name, m in self.suite.unavailable.items()}
        for p in points:
            for name, reason in p.get("unavailable", {}).items():
                unavailable.setdefault(name, reason)
        codecs = {}
        models = {}
        if self.gvc:
            codecs["gvc"] = self.gvc.settings()
            models = {label: {"file": str(path), "curve": curve_names.get(label),
                              "training": self.gvc.training_record(label)}
                      for label, path in self.gvc.by_label.items()}  # fmt: skip
            for label in self.gvc.variable_rate:
                models[label]["rate_levels"] = self.gvc.levels[label]
                models[label]["qualities"] = self.gvc.settings()["qualities"][label]
                models[label]["matched_to_targets"] = label in self._gvc_targets()
        codecs.update({n: c.settings() for n, c in self.baselines.items()})
        meta = {
            "config": dataclasses.asdict(cfg),
            "tools": {"ffmpeg": ffmpeg_version(cfg.ffmpeg), "ffmpeg_path": cfg.ffmpeg or ffmpeg_exe()},
            "colour": {
                "per_video": {p["video"]: p["colour"] for p in points},
                "note": "sources and every codec output are 8-bit 4:2:0; RGB metrics convert both with the "
                "convention the source was read with",
            },
            "metric_info": self.suite.info(),
            "unavailable_metrics": unavailable,
            "unavailable_codecs": unavailable_codecs,
            "codecs": codecs,
            "fid_kid_unavailable": set_unavailable,
            "notes": self.notes,
            "command_line": self.command_line,
            "gvc": gvc_version(),
            "preset": cfg.preset,
            "models": models,
            "pictures": pictures,
        }
        writer = ReportWriter(self.out, cfg, columns, [m for m in SET_METRICS if m in cfg.metrics])
        results = writer.write(points, set_rows, meta)
        log.info("summary (per video):\n" + summary_table(video_rows(points, columns)))
        for codec, entry in results["bd_rate"]["table"].items():
            cells = [
                f"{m} {e['value']:+.1f}%" if "value" in e else f"{m}: {e['reason']}" for m, e in entry.items()
            ]
            log.info(f"BD-rate {codec} vs {cfg.anchor}: " + "; ".join(cells))
        log.info(f"wrote {self.out / 'report.md'}")
        return results

    def _source_features(self, src: SourceVideo) -> np.ndarray | None:
        if self.suite.features is None:
            return None
        key = self.store.key(src.name, "source", "features", self._base_identity(src))
        feats = self.store.load_array(key)
        if feats is None:
            feats = np.concatenate([self.suite.features(src.to_frame(f).rgb) for f in src.frames])
            self.store.save_array(key, feats)
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
            fake = [self.store.features(p) for p in pts if p.get("features")]
            real = [source_features[p["video"]] for p in pts if p["video"] in source_features]
            try:
                values = fid_kid(np.concatenate(real), np.concatenate(fake), **self.cfg.fid_kid)
            except ValueError as err:  # e.g. frames smaller than one 256x256 patch
                unavailable[f"{codec} {setting}"] = str(err)
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

    # ----------------------------------------------------------------------------------------- pictures
    def _pictures(self, src: SourceVideo, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per comparison group of this clip: per-frame quality and temporal plots and side-by-side crops."""
        out = []
        for name, members in comparison_groups(points, self.cfg.target_bpps):
            files = write_group_pictures(src, name, members,
                                         lambda p: self._codec(p["codec"]).decode(Path(p["bitstream"]), src),
                                         self.out / "plots")  # fmt: skip
            rel = {k: str(Path(v).relative_to(self.out)) for k, v in files.items()}
            out.append({"group": name, "members": [f"{p['codec']} {p['setting']}" for p in members], **rel})
        return out

    # ----------------------------------------------------------------------------------------- export
    def _codec(self, name: str):
        return self.gvc if name == "gvc" else self.baselines[name]

    def _export(self, src: SourceVideo, points: list[dict[str, Any]]) -> None:
        opts = self.cfg.export
        root = self.out / "export"
        name = export_name(src.path, src.width, src.height, src.fps)
        decoded: dict[str, list[YUVFrame]] = {}
        for p in points:
            frames = self._codec(p["codec"]).decode(Path(p["bitstream"]), src)
            decoded[p["key"]] = frames
            export_reconstruction(frames, root / f"{p['codec']}_{p['setting']}", name, src.fps,
                                  png=bool(opts["png"]), matrix=src.colour["matrix"],
                                  full_range=src.colour["full_range"])  # fmt: skip
        if not opts["side_by_side"]:
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
            side_by_side([src.frames, decoded[p["key"]], decoded[closest["key"]]], out, src.fps,
                         crf=int(opts["side_by_side_crf"]))  # fmt: skip


def evaluate(cfg: Mapping[str, Any] | EvalConfig, command_line: str | None = None) -> dict[str, Any]:
    """Run an evaluation from a plain mapping (or EvalConfig); returns the results.json content."""
    return Evaluator(cfg, command_line).run()
