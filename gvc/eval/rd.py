"""Rate-distortion aggregation, BD-rate tables and RD plots.

Input rows are per (video, codec, setting) points: ``{"video", "codec", "setting", "bpp", <metric columns>}``
with bpp from real files. Curves are per *series*: the row's ``curve`` where it has one (each gvc model file is
its own curve, named by the model and the frame structure it coded; a variable-rate model's curve holds its
swept quality levels and its points matched to the targets), else its codec; a curve's points are its
settings averaged over videos (bpp and metric), sorted by bpp. BD-rate uses the ``bjontegaard`` package (log-rate domain, overlap only) per video, then the mean
over videos; lower-is-better metrics (LPIPS, FID, ...) are negated first so the integral means the same thing.
Points are sorted by rate and duplicate rates dropped; where a BD-rate cannot be computed the table carries the
reason ("2 distinct points (needs 3)", "no overlap in quality ..."), never a bare "n/a".
A negative BD-rate = the test codec needs fewer bits than the anchor for the same quality.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.eval.metrics import COLUMN_LABELS, HIGHER_IS_BETTER


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def series(row: Mapping[str, Any]) -> str:
    """The curve a row belongs to: its ``curve`` (gvc: one per model file) or its codec."""
    return str(row.get("curve") or row["codec"])


def rd_curves(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """codec -> (bpp, metric) arrays sorted by bpp; each point = one setting averaged over its videos.

    Points whose metric is missing/unavailable/non-finite are dropped; a setting counts only if every video
    that has it has a finite value.
    """
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    bad: set[tuple[str, str]] = set()
    for row in rows:
        key = (series(row), str(row["setting"]))
        value = row.get(metric)
        if not _finite(value) or not _finite(row.get("bpp")):
            bad.add(key)
            continue
        groups[key].append((float(row["bpp"]), float(value)))
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (codec, _setting), pts in groups.items():
        if (codec, _setting) in bad:
            continue
        arr = np.asarray(pts)
        curves[codec].append((float(arr[:, 0].mean()), float(arr[:, 1].mean())))
    out = {}
    for codec, pts in curves.items():
        pts.sort()
        arr = np.asarray(pts)
        out[codec] = (arr[:, 0], arr[:, 1])
    return out


def prepare_curve(
    rate: Sequence[float], dist: Sequence[float], higher_is_better: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, duplicates of a rate dropped (the first kept), quality negated when lower is better.

    Two targets the encoder could not tell apart (e.g. both at its floor) give the same file, hence the same
    point twice; the interpolators need strictly increasing rates.
    """
    r, d = np.asarray(rate, float), np.asarray(dist, float)
    order = np.argsort(r, kind="stable")
    r, d = r[order], d[order]
    keep = (
        np.concatenate([[True], np.diff(r) > 1e-12 * np.maximum(1.0, np.abs(r[1:]))])
        if len(r)
        else r.astype(bool)
    )
    r, d = r[keep], d[keep]
    return r, (d if higher_is_better else -d)


def bd_rate(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    higher_is_better: bool = True,
    method: str = "akima",
    min_points: int = 3,
) -> float:
    """BD-rate in percent of the test curve against the anchor (``bjontegaard.bd_rate``, log-rate, integrated over
    the quality range both curves cover).

    Points are prepared with :func:`prepare_curve` (sorted by rate, duplicates dropped; ``higher_is_better=False``
    negates quality). Raises ValueError with the reason when it cannot be computed: fewer than ``min_points``
    distinct points on a curve ("2 distinct points"), quality not rising with rate, or no overlap in quality.
    """
    import bjontegaard

    curves = {}
    for label, rate, dist in (("anchor", rate_anchor, dist_anchor), ("test", rate_test, dist_test)):
        r, d = prepare_curve(rate, dist, higher_is_better)
        if np.any(~np.isfinite(r)) or np.any(~np.isfinite(d)) or np.any(r <= 0):
            raise ValueError(f"{label}: non-finite or non-positive values")
        if len(r) < min_points:
            raise ValueError(
                f"{label}: {len(r)} distinct point{'s' if len(r) != 1 else ''} (needs {min_points})"
            )
        if np.any(np.diff(d) <= 0):
            raise ValueError(
                f"{label}: quality does not rise strictly with rate ({_fmt_points(r, d, higher_is_better)})"
            )
        curves[label] = (r, d)
    (ra, da), (rt, dt) = curves["anchor"], curves["test"]
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if hi <= lo:
        sign = 1 if higher_is_better else -1
        raise ValueError(
            f"no overlap in quality: anchor {_span(da, sign)}, test {_span(dt, sign)} (BD-rate integrates over the "
            "quality both cover)"
        )
    try:
        value = bjontegaard.bd_rate(
            ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0.0
        )
    except Exception as err:  # the package raises plain exceptions / asserts on bad curves
        raise ValueError(f"bjontegaard.bd_rate failed: {err}") from err
    if not _finite(value):
        raise ValueError(f"BD-rate is not finite ({value})")
    return float(value)


def _span(d: np.ndarray, sign: int) -> str:
    a, b = sorted((float(sign * d.min()), float(sign * d.max())))
    return f"{a:.4g}..{b:.4g}"


def _fmt_points(r: np.ndarray, d: np.ndarray, higher: bool) -> str:
    sign = 1 if higher else -1
    return ", ".join(f"{x:.4f} bpp: {sign * y:.4g}" for x, y in zip(r, d))


def bd_rate_table(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    anchor: str = "x265",
    method: str = "akima",
    min_points: int = 3,
) -> dict[str, dict[str, dict[str, Any]]]:
    """codec -> metric -> ``{"value": mean BD-rate %, "videos": n}`` or ``{"reason": why not}``.

    Per video: the codec's points against the anchor's points on that video; then the mean over the videos where
    it could be computed (those where it could not are listed under ``"skipped"``). Every codec x metric cell
    gets a number or a reason.
    """
    by_video: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_video[str(row["video"])].append(row)
    codecs = sorted({series(r) for r in rows} - {anchor})
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for codec in codecs:
        table[codec] = {}
        for metric in metrics:
            higher = HIGHER_IS_BETTER.get(metric, True)
            values, reasons = [], []
            for video, vrows in sorted(by_video.items()):
                curves = rd_curves(vrows, metric)
                missing = [c for c in (anchor, codec) if c not in curves]
                if missing:
                    reasons.append(f"{video}: no {' or '.join(missing)} points with {metric}")
                    continue
                try:
                    values.append(bd_rate(*curves[anchor], *curves[codec], higher_is_better=higher,
                                          method=method, min_points=min_points))  # fmt: skip
                except ValueError as err:
                    reasons.append(
                        f"{video}: {str(err).replace('anchor:', anchor + ':').replace('test:', codec + ':')}"
                    )
            if values:
                table[codec][metric] = {"value": float(np.mean(values)), "videos": len(values)}
                if reasons:
                    table[codec][metric]["skipped"] = reasons
            else:
                table[codec][metric] = {"reason": "; ".join(reasons) or "no points"}
    return table


def bd_table_markdown(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], metrics: Sequence[str], anchor: str
) -> str:
    """Markdown table of :func:`bd_rate_table`: percent, or a numbered reason listed under the table."""
    lines = [f"| codec vs {anchor} | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    notes: list[str] = []
    for codec, entry in table.items():
        cells = []
        for m in metrics:
            e = entry.get(m, {})
            if "value" in e:
                cell = f"{e['value']:+.1f}%"
                if e.get("skipped"):
                    notes.append(
                        f"{codec}, {m}: mean over {e['videos']} videos; skipped {'; '.join(e['skipped'])}"
                    )
                    cell += f" ({len(notes)})"
            else:
                notes.append(f"{codec}, {m}: {e.get('reason', 'not computed')}")
                cell = f"no number ({len(notes)})"
            cells.append(cell)
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"({i}) {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def plot_rd(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    metric: str,
    path: str | Path,
    title: str = "",
    label: str | None = None,
) -> Path:
    """Write an RD plot (bpp vs ``metric``, one line per codec) as PNG with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    for codec, (bpp, value) in sorted(curves.items()):
        ax.plot(bpp, value, marker="o", label=codec)
    ax.set_xlabel("bpp (from file sizes)")
    arrow = "higher is better" if HIGHER_IS_BETTER.get(metric, True) else "lower is better"
    ax.set_ylabel(f"{label or COLUMN_LABELS.get(metric, metric)} ({arrow})")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
