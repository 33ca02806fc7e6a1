"""Everything an evaluation writes from its points: CSV tables, results.json, RD plots and report.md.

- ``per_video.csv``: one row per (video, codec, setting): video, codec, setting, target_bpp, bpp, rel_error, one
  column per metric, plus bytes, frames, size, q, within_tolerance, encode/decode seconds.
- ``per_frame.csv``: one row per frame: its type and its own bits (from its packet in the file) and bpp
  (bits / (W x H)), plus the per-frame metrics.
- ``fid_kid.csv`` (when FID/KID ran), ``results.json`` (configuration, colour convention, PSNR weighting, metric
  info, unavailable metrics and codecs with reasons, every point without per-frame lists, BD-rates),
  ``plots/rd_<metric>.png`` (one per metric with numbers, all codecs on one plot) and ``report.md``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.eval import rd
from gvc.eval.metrics import COLUMN_LABELS, HIGHER_IS_BETTER, PSNR_YUV_WEIGHTING
from gvc.eval.store import _finite_json, json_default

VIDEO_COLUMNS = ("video", "codec", "setting", "target_bpp", "bpp", "rel_error")
EXTRA_COLUMNS = ("bytes", "frames", "width", "height", "q", "within_tolerance", "encode_s", "decode_s", "curve",
                 "matched_to")  # fmt: skip
#: a VMAF at or under this is the floor of the vmaf_v0.6.1 model (it clips its prediction to [0, 100])
VMAF_FLOOR = 0.5
#: metrics of the per-video table in report.md (when they have numbers), in this order
TABLE_METRICS = (
    "psnr_yuv",
    "psnr_rgb",
    "ms_ssim",
    "vmaf",
    "st_lpips",
    "st_lpips_vgg",
    "lpips",
    "pim",
    "warp_error",
    "tlp",
)


def gop_words(gop: int) -> str:
    return f"low delay, I every {gop}" if gop > 0 else "low delay, one I-frame"


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> None:
    keys: list[str] = list(first)
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def video_rows(points: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        row = {k: p.get(k) for k in VIDEO_COLUMNS + EXTRA_COLUMNS}
        row.update({c: p.get("summary", {}).get(c) for c in columns})
        rows.append(row)
    return rows


def frame_rows(points: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        pixels = p["width"] * p["height"]
        for rec in p.get("frame_records", []):
            i = rec["index"]
            row = {"video": p["video"], "codec": p["codec"], "setting": p["setting"], "frame": i,
                   "type": rec["type"], "bits": rec["bits"], "bpp": rec["bits"] / pixels}  # fmt: skip
            row.update({c: p["per_frame"][c][i] for c in columns if c in p.get("per_frame", {})})
            rows.append(row)
    return rows


def summary_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown per-video table: bpp against the target and the relative error, then the metrics with numbers."""
    cols = [m for m in metrics if any(finite(r.get(m)) for r in rows)]
    head = ["video", "codec", "setting", "target bpp", "bpp", "rel. error"] + [
        COLUMN_LABELS.get(c, c) for c in cols
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        target = f"{r['target_bpp']:g}" if finite(r.get("target_bpp")) else "-"
        err = f"{r['rel_error']:+.1%}" if finite(r.get("rel_error")) else "-"
        if r.get("within_tolerance") is False:
            err += " (not met)"
        cells = [
            str(r["video"]),
            str(r.get("curve") or r["codec"]),
            str(r["setting"]),
            target,
            f"{r['bpp']:.4f}",
            err,
        ]
        cells += [f"{r[c]:.4g}" if finite(r.get(c)) else "-" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def vmaf_floor_notes(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note for the points whose VMAF is at the model's floor (0): why it reads 0 and what to compare instead."""
    floor = [f"{p['video']} {p['codec']} {p['setting']}" for p in points
             if finite(p.get("summary", {}).get("vmaf")) and p["summary"]["vmaf"] <= VMAF_FLOOR]  # fmt: skip
    if not floor:
        return []
    return [
        f"VMAF 0 ({', '.join(floor)}): the floor of the VMAF model, not a failed measurement. vmaf_v0.6.1 clips "
        "its prediction to [0, 100], and quality well below what it was trained on reads 0 (on carphone a "
        "Gaussian blur reads about 27 at 26.7 dB PSNR-Y and 0 at 23.0 dB). VMAF cannot rank these points: "
        "compare them by PSNR, MS-SSIM and ST-LPIPS."
    ]


def _neighbours(points: Sequence[Mapping[str, Any]], g: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The baseline points beside gvc point ``g``: those matched to its rate, or, for a gvc point matched to a
    target bpp (a variable-rate model), the baselines' own points at that target."""
    same = [p for p in points if p["video"] == g["video"] and p["codec"] != "gvc"]
    if finite(g.get("target_bpp")):
        return [p for p in same if not p.get("matched_to") and p.get("target_bpp") == g["target_bpp"]]
    return [p for p in same if p.get("matched_to") == f"gvc {g['setting']}"]


def matched_table(points: Sequence[Mapping[str, Any]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown: per video and gvc point, that point and every baseline point at its rate (matched to the rate it
    reached, or at the same target bpp)."""
    rows = []
    for g in (p for p in points if p["codec"] == "gvc"):
        rows.append(g)
        rows += _neighbours(points, g)
    cols = [m for m in metrics if any(finite(r.get("summary", {}).get(m)) for r in rows)]
    head = ["video", "codec", "bpp", "vs gvc bpp"] + [COLUMN_LABELS.get(c, c) for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    ref = None
    for r in rows:
        if r["codec"] == "gvc":
            ref = r
            name, rel = r.get("curve") or r["setting"], "-"
            if r.get("q") is not None:  # a variable-rate model: which of its settings
                name = f"{name} {r['setting']}"
        else:
            name, rel = r["codec"], f"{r['bpp'] / ref['bpp'] - 1:+.1%}"
            if r.get("within_tolerance") is False:
                rel += " (not met)"
        cells = [str(r["video"]), str(name), f"{r['bpp']:.4f}", rel]
        cells += [f"{r['summary'][c]:.4g}" if finite(r.get("summary", {}).get(c)) else "-" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class ReportWriter:
    """Writes the tables, plots, results.json and report.md of one run into ``out``."""

    def __init__(self, out: Path, cfg: Any, columns: Sequence[str], set_metrics: Sequence[str]):
        self.out = Path(out)
        self.cfg = cfg
        self.columns = list(columns)
        self.set_metrics = list(set_metrics)

    def write(
        self,
        points: list[dict[str, Any]],
        set_rows: list[dict[str, Any]],
        meta: dict[str, Any],
    ) -> dict[str, Any]:
        """``meta``: config, colour, metric_info, unavailable_metrics, unavailable_codecs, codecs (settings per
        codec), fid_kid_unavailable, notes, tools. Returns the results.json content."""
        cfg = self.cfg
        vrows = video_rows(points, self.columns)
        write_csv(self.out / "per_video.csv", vrows, VIDEO_COLUMNS)
        write_csv(self.out / "per_frame.csv", frame_rows(points, self.columns),
                  ("video", "codec", "setting", "frame", "type", "bits", "bpp"))  # fmt: skip
        if set_rows:
            write_csv(self.out / "fid_kid.csv", set_rows)
        all_rows = vrows + set_rows
        with_numbers = [m for m in dict.fromkeys(list(cfg.plot_metrics) + self.columns + self.set_metrics)
                        if any(finite(r.get(m)) for r in all_rows)]  # fmt: skip
        anchor_ok = any(r["codec"] == cfg.anchor for r in vrows)
        bd = (rd.bd_rate_table(all_rows, with_numbers, cfg.anchor, cfg.bd_method, cfg.bd_min_points)
              if anchor_ok else {})  # fmt: skip
        plots = {}
        n_videos = len({r["video"] for r in vrows})
        title = (f"{n_videos} video{'s' if n_videos != 1 else ''}, {cfg.frames or 'all'} frames; baselines: "
                 f"{gop_words(cfg.gop)}")  # fmt: skip
        for metric in with_numbers:
            curves = rd.rd_curves(all_rows, metric)
            if curves:
                path = rd.plot_rd(curves, metric, self.out / "plots" / f"rd_{metric}.png", title)
                plots[metric] = str(path.relative_to(self.out))
        results = {
            **meta,
            "rate": "bpp = 8 * bytes of the real output file / (frames * width * height), unpadded source size",
            "psnr_yuv_weighting": PSNR_YUV_WEIGHTING,
            "higher_is_better": HIGHER_IS_BETTER,
            "points": [{k: v for k, v in p.items() if k != "per_frame"} for p in points],
            "fid_kid": set_rows,
            "bd_rate": {
                "anchor": cfg.anchor,
                "method": cfg.bd_method,
                "min_points": cfg.bd_min_points,
                "table": bd,
                "anchor_missing": not anchor_ok,
            },  # fmt: skip
            "plots": plots,
        }
        (self.out / "results.json").write_text(
            json.dumps(_finite_json(results), indent=1, default=json_default)
        )
        (self.out / "report.md").write_text(self.markdown(results, vrows, with_numbers))
        return results

    def markdown(self, results: dict[str, Any], vrows: list[dict[str, Any]], bd_metrics: list[str]) -> str:
        cfg = self.cfg
        colours = sorted({json.dumps(p.get("colour", {}), sort_keys=True) for p in results["points"]})
        lines = ["# gvc evaluation report", ""]
        preset = results.get("preset")
        version = results.get("gvc") or {}
        commit = version.get("commit") or "not a git checkout"
        if version.get("uncommitted_changes"):
            commit += " (with uncommitted changes)"
        lines += [
            f"- command: `{results.get('command_line') or 'gvc.eval.run.evaluate(...) (Python API; the configuration is in config.yaml / results.json)'}`",
            f"- gvc {version.get('version', '?')}, commit {commit}",
            "- test conditions: "
            + (
                f"**eval_preset={preset['name']}** (conf/eval_preset/{preset['name']}.yaml: {preset.get('about', '')})"
                if preset
                else "no named preset (conf/evaluate.yaml with the overrides in the command)"
            ),
            f"- videos: {', '.join(sorted({r['video'] for r in vrows})) or 'none'}",
            f"- frames per video: {cfg.frames or 'all'}; baselines: {gop_words(cfg.gop)} (the GOP every codec is "
            "asked for; each gvc model's own structure is in its curve's name)",
            f"- colour (as read from each source): {'; '.join(colours) or 'n/a'}; PSNR-YUV = {PSNR_YUV_WEIGHTING}",
            f"- {results['rate']}",
            f"- baselines matched to {list(cfg.target_bpps)} bpp"
            + (" and to the rate each gvc model reached" if cfg.match_gvc and results.get("models") else "")
            + f" within {cfg.tolerance:.0%}, by bisection over their quality value or through their own rate control "
            "(a target that is not met says why below)",
            f"- tools: {results.get('tools', {}).get('ffmpeg', 'ffmpeg')}",
            "",
            "## Per video",
            "",
            summary_table(vrows),
        ]
        missed = [p for p in results["points"] if p.get("within_tolerance") is False]
        if missed:
            lines += ["", "### Targets not met within the tolerance", ""]
            lines += [f"- {p['video']} {p['codec']} {p['setting']}: {p.get('bpp', 0):.4f} bpp "
                      f"({p.get('rel_error', 0):+.1%}): {p.get('match_reason')}" for p in missed]  # fmt: skip
        models = results.get("models") or {}
        if models:
            lines += ["", "## gvc models", ""]
            for label, m in models.items():
                training = json.dumps(m.get("training") or {}, sort_keys=True)
                levels = (f"variable rate, {m['rate_levels']} levels, swept at q {m['qualities']}"
                          + (", matched to each target by bisection over q" if m.get("matched_to_targets") else "")
                          + "; " if m.get("rate_levels") else "")  # fmt: skip
                lines.append(f"- **{m.get('curve') or label}**: `{m['file']}`; {levels}training record: "
                             + (f"`{training}`" if m.get("training") else "none (the file was written without one)"))  # fmt: skip
        matched = [p for p in results["points"] if p["codec"] == "gvc" and _neighbours(results["points"], p)]
        if matched:
            lines += ["", "## Each gvc point beside the baselines at its rate", ""]
            lines.append(matched_table(results["points"]))
        lines += ["", "## Mean over videos per codec setting", ""]
        cols = [c for c in ("bpp",) + TABLE_METRICS if any(finite(r.get(c)) for r in vrows)]
        lines.append("| codec | setting | " + " | ".join(COLUMN_LABELS.get(c, c) for c in cols) + " |")
        lines.append("|---" * (len(cols) + 2) + "|")
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in vrows:
            groups[(r["codec"], r["setting"])].append(r)
        for (codec, setting), rows in sorted(groups.items()):
            cells = []
            for c in cols:
                vals = [r[c] for r in rows if finite(r.get(c))]
                cells.append(f"{np.mean(vals):.4g}" if vals else "-")
            lines.append(f"| {codec} | {setting} | " + " | ".join(cells) + " |")
        if results["fid_kid"]:
            lines += ["", "## FID / KID (HiFiC 256x256 patches, all videos)", "", "| codec | setting | bpp | FID | KID |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for r in results["fid_kid"]:
                lines.append(f"| {r['codec']} | {r['setting']} | {r['bpp']:.4f} | {r.get('fid', float('nan')):.2f} | "
                             f"{r.get('kid', float('nan')):.4f} |")  # fmt: skip
        lines += ["", f"## BD-rate vs {cfg.anchor} ({cfg.bd_method}, log-rate, overlap only; negative = fewer bits; "
                  f"curves need {cfg.bd_min_points} distinct points)", ""]  # fmt: skip
        if results["bd_rate"]["table"]:
            lines.append(rd.bd_table_markdown(results["bd_rate"]["table"], bd_metrics, cfg.anchor))
        elif results["bd_rate"]["anchor_missing"]:
            lines.append(
                f"not computed: the anchor {cfg.anchor} has no points (unavailable or not configured)"
            )
        else:
            lines.append("not computed: no codec besides the anchor")
        lines += ["", "## RD plots", ""]
        lines += [f"![{m}]({path})" for m, path in results["plots"].items()] or ["no metric has numbers"]
        for video, groups in (results.get("pictures") or {}).items():
            lines += ["", f"## {video}: per frame and side by side", ""]
            for g in groups:
                lines.append(f"{g['group']}: {', '.join(g['members'])}")
                lines.append("")
                lines += [f"![{kind} {video} {g['group']}]({g[kind]})" for kind in ("frames", "temporal", "crops")
                          if kind in g]  # fmt: skip
                lines.append("")
        lines += ["", "## Codecs and the exact command of every row", ""]
        for name, settings in results.get("codecs", {}).items():
            lines.append(f"- **{name}**: `{json.dumps(settings)}`")
        lines.append("")
        for p in results["points"]:
            lines.append(f"- {p['video']} {p['codec']} {p['setting']}: `{p.get('command', '')}`")
        notes = []
        notes += [
            f"metric **{n}** unavailable: {r}" for n, r in results.get("unavailable_metrics", {}).items()
        ]
        notes += [f"codec **{n}** unavailable: {r}" for n, r in results.get("unavailable_codecs", {}).items()]
        notes += [f"FID/KID {n}: {r}" for n, r in results.get("fid_kid_unavailable", {}).items()
                  if n not in results.get("unavailable_metrics", {})]  # fmt: skip
        notes += list(results.get("notes", []))
        notes += vmaf_floor_notes(results["points"])
        if notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
        lines += [
            "",
            "ST-LPIPS is shift-tolerant LPIPS (stlpips-pytorch, AlexNet and VGG): not comparable with LPIPS.",
        ]
        return "\n".join(lines) + "\n"
