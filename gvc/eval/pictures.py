"""Pictures of one clip that a reader looks at before any table: quality per frame, the temporal metrics per frame
and crops of one frame side by side, each for a *comparison group* (one gvc point and, per baseline, its point
nearest in bpp; without gvc, every codec's point nearest one target). Written with matplotlib (Agg) as PNG.

- ``frames_<video>_<group>.png``: PSNR-Y and ST-LPIPS against the frame index, one line per codec: drift over a
  GOP, intra refreshes, frames that break.
- ``temporal_<video>_<group>.png``: the temporal metrics (warping error vs the source, tLP) against the frame
  index: flicker shows as a high, jagged line; 0 = as consistent as the source.
- ``crops_<video>_<group>.png``: the same crop of one frame (the last: in low delay the furthest from its I-frame)
  from the source and each codec, side by side, titled with codec, setting and bpp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gvc.eval.metrics import COLUMN_LABELS, HIGHER_IS_BETTER

FRAME_COLUMNS = ("psnr_y", "st_lpips")
TEMPORAL_COLUMNS = ("warp_error", "tlp")


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(label))


def point_label(p: Mapping[str, Any]) -> str:
    return f"{p.get('curve') or p['codec']} {p['setting']} ({p['bpp']:.3f} bpp)"


def comparison_groups(
    points: Sequence[Mapping[str, Any]], targets: Sequence[float]
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """(group name, members) of one video's points: per gvc point, that point and each other codec's point
    nearest it in log-bpp; without gvc points, each codec's point nearest the middle target."""
    refs = [p for p in points if p["codec"] == "gvc"]
    codecs = list(dict.fromkeys(p["codec"] for p in points if p["codec"] != "gvc"))
    groups = []
    if refs:
        anchors = [(f"gvc_{r['setting']}", r["bpp"], [r]) for r in refs]
    elif targets and points:
        mid = sorted(targets)[len(targets) // 2]
        anchors = [(f"{mid:g}bpp", mid, [])]
    else:
        anchors = []
    for name, bpp, members in anchors:
        members = list(members)
        for codec in codecs:
            own = [p for p in points if p["codec"] == codec and p["bpp"] > 0]
            if own:
                members.append(min(own, key=lambda p: abs(math.log(p["bpp"] / bpp))))
        groups.append((name, members))
    return groups


def _lines(ax, members, column: str) -> bool:
    drawn = False
    for p in members:
        values = p.get("per_frame", {}).get(column)
        if not values:
            continue
        y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        if np.all(np.isnan(y)):
            continue
        ax.plot(np.arange(len(y)), y, marker=".", label=point_label(p))
        drawn = True
    arrow = "higher is better" if HIGHER_IS_BETTER.get(column, True) else "lower is better"
    ax.set_ylabel(f"{COLUMN_LABELS.get(column, column)}\n({arrow})", fontsize=8)
    ax.grid(True, alpha=0.3)
    return drawn


def plot_per_frame(
    members: Sequence[Mapping[str, Any]], columns: Sequence[str], path: Path, title: str
) -> bool:
    """One panel per column with values, metric against the frame index, one line per point; False (and no
    file) when no column has values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = [c for c in columns if any(p.get("per_frame", {}).get(c) for p in members)]
    if not have:
        return False
    fig, axes = plt.subplots(
        len(have), 1, figsize=(7.0, 2.6 * len(have) + 0.8), dpi=110, sharex=True, squeeze=False
    )
    for ax, column in zip(axes[:, 0], have):
        _lines(ax, members, column)
    axes[-1, 0].set_xlabel("frame index")
    axes[0, 0].set_title(title, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def crop_box(width: int, height: int, size: int = 192) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a centred crop of at most ``size`` x ``size`` pixels."""
    h, w = min(size, height), min(size, width)
    return (height - h) // 2, (width - w) // 2, h, w


def crops_png(images: Sequence[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    """Side-by-side crops: ``images`` = (caption, (h, w, 3) uint8) in order; written as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = images[0][1].shape[:2]
    scale = max(1.0, 160 / max(h, w))
    fig, axes = plt.subplots(1, len(images), figsize=(len(images) * w * scale / 80 + 0.2, h * scale / 80 + 0.7),
                             dpi=80 * 1.25, squeeze=False)  # fmt: skip
    for ax, (caption, img) in zip(axes[0], images):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_group_pictures(
    src, name: str, members: Sequence[Mapping[str, Any]], decode, out_dir: Path
) -> dict[str, str]:
    """The three pictures of one comparison group of ``src`` (a SourceVideo); ``decode(point)`` returns that
    point's decoded YUV frames. Returns kind -> path of what was written."""
    written: dict[str, str] = {}
    stem = f"{_safe(src.name)}_{_safe(name)}"
    title = f"{src.name}, {src.count} frames {src.width}x{src.height}"
    frames_png = out_dir / f"frames_{stem}.png"
    if plot_per_frame(members, FRAME_COLUMNS, frames_png, f"{title}: quality per frame"):
        written["frames"] = str(frames_png)
    temporal_png = out_dir / f"temporal_{stem}.png"
    if plot_per_frame(members, TEMPORAL_COLUMNS, temporal_png, f"{title}: temporal consistency per frame (0 = as "
                      "the source)"):  # fmt: skip
        written["temporal"] = str(temporal_png)
    index = src.count - 1
    top, left, h, w = crop_box(src.width, src.height)

    def rgb(frame) -> np.ndarray:
        t = src.to_frame(frame).rgb[0, :, top : top + h, left : left + w]
        return (t.permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

    images = [("source", rgb(src.frames[index]))]
    for p in members:
        images.append(
            (f"{p.get('curve') or p['codec']}\n{p['setting']}, {p['bpp']:.3f} bpp", rgb(decode(p)[index]))
        )
    crops = out_dir / f"crops_{stem}.png"
    crops_png(images, crops, f"{title}: frame {index}, crop {w}x{h} at ({left}, {top})")
    written["crops"] = str(crops)
    return written
