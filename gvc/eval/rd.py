"""Rate-distortion aggregation, BD-rate tables and RD plots.

Input rows are per (video, codec, setting) points: ``{"video", "codec", "setting", "bpp", <metric columns>}``
with bpp from real files. Curves are per codec: points of one setting averaged over videos (bpp and metric),
sorted by bpp. BD-rate uses the ``bjontegaard`` package (log-rate domain, overlap only) per video, then the mean
over videos; lower-is-better metrics (LPIPS, FID, ...) are negated first so the integral means the same thing.
A negative BD-rate = the test codec needs fewer bits than the anchor for the same quality.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.eval.metrics import HIGHER_IS_BETTER


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def rd_curves(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """codec -> (bpp, metric) arrays sorted by bpp; each point = one setting averaged over its videos.

    Points whose metric is missing/unavailable/non-finite are dropped; a setting counts only if every video
    that has it has a finite value.
    """
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    bad: set[tuple[str, str]] = set()
    for row in rows:
        key = (str(row["codec"]), str(row["setting"]))
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


def bd_rate(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    higher_is_better: bool = True,
    method: str = "akima",
    min_overlap: float = 0.0,
) -> float:
    """BD-rate in percent of the test curve against the anchor (``bjontegaard.bd_rate``, log-rate, overlap only).

    ``higher_is_better=False`` negates both distortion axes. Raises ValueError when it cannot be computed (too few
    points, no overlap, non-monotonic curves the interpolator rejects).
    """
    import bjontegaard

    ra, da = np.asarray(rate_anchor, float), np.asarray(dist_anchor, float)
    rt, dt = np.asarray(rate_test, float), np.asarray(dist_test, float)
    if not higher_is_better:
        da, dt = -da, -dt
    if min(len(ra), len(rt)) < 2:
        raise ValueError("BD-rate needs at least 2 points per curve")
    order_a, order_t = np.argsort(da), np.argsort(dt)
    ra, da, rt, dt = ra[order_a], da[order_a], rt[order_t], dt[order_t]
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if hi <= lo:
        raise ValueError("the curves do not overlap in quality")
    try:
        value = bjontegaard.bd_rate(ra, da, rt, dt, method=method, require_matching_points=False,
                                    min_overlap=min_overlap)  # fmt: skip
    except Exception as err:  # the package raises plain exceptions / asserts on bad curves
        raise ValueError(f"bjontegaard.bd_rate failed: {err}") from err
    if not _finite(value):
        raise ValueError(f"BD-rate is not finite ({value})")
    return float(value)


def bd_rate_table(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    anchor: str = "x265",
    method: str = "akima",
) -> dict[str, dict[str, dict[str, Any]]]:
    """codec -> metric -> ``{"value": mean BD-rate %, "videos": n}`` or ``{"unavailable": reason}``.

    Per video: the codec's points against the anchor's points on that video; then the mean over videos where
    it could be computed.
    """
    by_video: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_video[str(row["video"])].append(row)
    codecs = sorted({str(r["codec"]) for r in rows} - {anchor})
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for codec in codecs:
        table[codec] = {}
        for metric in metrics:
            higher = HIGHER_IS_BETTER.get(metric, True)
            values, reasons = [], []
            for video, vrows in sorted(by_video.items()):
                curves = rd_curves(vrows, metric)
                if anchor not in curves or codec not in curves:
                    reasons.append(f"{video}: no {anchor if anchor not in curves else codec} points")
                    continue
                try:
                    values.append(
                        bd_rate(*curves[anchor], *curves[codec], higher_is_better=higher, method=method)
                    )
                except ValueError as err:
                    reasons.append(f"{video}: {err}")
            if values:
                table[codec][metric] = {"value": float(np.mean(values)), "videos": len(values)}
                if reasons:
                    table[codec][metric]["skipped"] = reasons
            else:
                table[codec][metric] = {"unavailable": "; ".join(reasons) or "no points"}
    return table


def bd_table_markdown(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], metrics: Sequence[str], anchor: str
) -> str:
    """Markdown table of :func:`bd_rate_table` (percent; n/a with footnote when unavailable)."""
    lines = [f"| codec vs {anchor} | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for codec, entry in table.items():
        cells = []
        for m in metrics:
            e = entry.get(m, {})
            cells.append(f"{e['value']:+.1f}%" if "value" in e else "n/a")
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
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
    ax.set_ylabel(f"{label or metric} ({arrow})")
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
