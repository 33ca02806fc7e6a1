"""benchmarks/bench_operating_points.py compares only inside measured curves: no extrapolation (the earlier
version extrapolated the all-intra curve and the compressai anchor linearly outside their points)."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_operating_points as bench  # noqa: E402


def test_interpolation_inside_the_measured_points_only():
    xs, ys = [0.1, 0.2, 0.4], [20.0, 22.0, 24.0]
    assert bench.interp_log(0.2, xs, ys) == pytest.approx(22.0)
    assert bench.interp_log(2**-0.5 * 0.4, xs, ys) == pytest.approx(23.0)  # halfway in log(bpp)
    for outside in (0.064, 0.5):
        assert bench.interp_log(outside, xs, ys) is None
    assert bench.interp_log(0.2, [0.2], [22.0]) is None  # one point is no curve


def point(**kw) -> dict:
    base = {
        "name": "mse_0.13", "kind": "mse", "target_bpp": 0.13, "file_bpp": 0.5, "rel_error": 0.5 / 0.13 - 1,
        "psnr_y": 25.0, "intra_psnr_y_same_bpp": None, "oracle_psnr_y": 26.0, "flow_epe": 1.0,
        "zero_motion_epe": 3.0, "flow_epe_per_clip": {"a": 0.5, "b": 1.5},
        "zero_motion_epe_per_clip": {"a": 1.0, "b": 5.0}, "p_over_i_bits": 0.4, "drift_db": -0.5,
        "st_lpips_vgg": 0.3,
    }  # fmt: skip
    return {**base, **kw}


def test_goals_say_outside_instead_of_inventing_a_number():
    lines = bench.goals({"points": [point()], "anchor": {"gap_db": None, "points": []}})
    text = "; ".join(lines)
    assert "inter gain over all-intra: n/a (outside the measured range)" in text
    assert "MSE all-intra vs the anchor: n/a (outside the measured range)" in text
    assert "flow EPE <= 0.5x zero motion met (0.33x), never above zero motion on a clip met" in text
    inside = "; ".join(bench.goals({"points": [point(intra_psnr_y_same_bpp=24.0)]}))
    assert "inter gain >= 1.5 dB MISSED (+1.00 dB)" in inside
    above = "; ".join(bench.goals({"points": [point(flow_epe_per_clip={"a": 1.2, "b": 0.8})]}))
    assert "never above zero motion on a clip MISSED" in above


def test_rendered_commands_are_relative_to_the_repository():
    """A recorded command (this checkout's, or another machine's checkout found before its .venv/bin/python or
    outputs/) renders with repository-relative paths and a plain `python`; other absolute paths stay."""
    other = "/work/benchsnap"
    line = (f"{other}/.venv/bin/python train.py paths.output_dir={other}/outputs/bench_rd/full/runs/a/iframe "
            f"data.train_path={other}/outputs/bench_rd/full/train")  # fmt: skip
    assert bench.repo_relative(line) == (
        "python train.py paths.output_dir=outputs/bench_rd/full/runs/a/iframe "
        "data.train_path=outputs/bench_rd/full/train"
    )
    here = f"gvc encode {bench.ROOT}/outputs/e/c.y4m -o {bench.ROOT}/outputs/c/model.gvc -y"
    assert bench.repo_relative(here) == "gvc encode outputs/e/c.y4m -o outputs/c/model.gvc -y"
    assert bench.repo_relative(f"{sys.executable} train.py") == "python train.py"
    assert bench.repo_relative("ffmpeg -i /tmp/x.y4m") == "ffmpeg -i /tmp/x.y4m"
    text = bench.markdown({"points": [], "commands": [line], "quant": [{"name": "gan_0.13", "mode": "noise",
                           "file_bpp": 0.1, "psnr_y": 30.0, "st_lpips_vgg": 0.2, "gap_p": {"train_bpp_q": None,
                           "gap": None}, "gap_i": {"gap": None}}], "machine": "m", "command": "c", "wall_s": 60,
                           "steps": {"i": 1, "p": 1}})  # fmt: skip
    assert other not in text and "python train.py paths.output_dir=outputs/bench_rd" in text


def test_the_plane_mean_goal_reads_the_worst_plane_of_every_clip_and_copy():
    colour = {"bikes": {"mean_err_y": 0.5, "mean_err_u": -1.0, "mean_err_v": 0.0},
              "bikes_dark": {"mean_err_y": 1.0, "mean_err_u": 0.2, "mean_err_v": -3.0}}  # fmt: skip
    text = "; ".join(bench.goals({"points": [point(colour=colour)]}))
    assert "mse_0.13 every plane mean within 2 levels on every clip and copy MISSED (worst 3.0)" in text
    colour["bikes_dark"]["mean_err_v"] = -1.5
    text = "; ".join(bench.goals({"points": [point(colour=colour)]}))
    assert "on every clip and copy met (worst 1.5)" in text


@pytest.mark.parametrize("full_range", [False, True])
def test_the_held_out_copies_scale_about_black_and_neutral(full_range):
    import numpy as np
    from _common import DARK, SATURATION, held_out_copies

    from gvc.data.io import YUVFrame

    lo, hi = (0, 255) if full_range else (16, 239)
    y = np.array([[lo, 100], [200, 235]], dtype=np.uint8)
    u = np.array([[128]], dtype=np.uint8)
    v = np.array([[200]], dtype=np.uint8)
    out = held_out_copies(YUVFrame(y, u, v), full_range)
    assert out[""].y is y
    dark = out["_dark"]
    assert dark.y.tolist() == np.round(lo + (y.astype(float) - lo) * DARK).astype(int).tolist()
    assert dark.u.tolist() == [[128]] and dark.v.tolist() == [[round(128 + 72 * DARK)]]
    sat = out["_saturated"]
    assert sat.y.tolist() == y.tolist() and sat.u.tolist() == [[128]]
    assert sat.v.tolist() == [[min(hi, round(128 + 72 * SATURATION))]]  # clipped (limited range: to 239)


def test_the_budget_curve_converges_where_a_doubling_moves_every_clip_less_than_the_threshold():
    import bench_ip_budget as budget

    def row(b, psnr, p_bpp, crops):
        clip = {"psnr_y": psnr, "file_bpp": 0.2, "p_frame_bpp": p_bpp, "mean_err_y": 0.5, "mean_err_u": -2.5,
                "mean_err_v": 0.0}  # fmt: skip
        return {"budget": b, "per_clip": {c: dict(clip) for c in ("carphone_pristine", "bikes")},
                "train_bpp_q_p": crops}  # fmt: skip

    rows = [row(2000, 24.0, 0.13, 0.10), row(8000, 25.0, 0.13, 0.10), row(16000, 25.2, 0.13, 0.13)]
    s = budget.summarize({"budgets": rows, "clips": ["carphone_pristine", "bikes"]})
    assert [x["worst"] for x in s["steps"]] == pytest.approx([0.5, 0.2])  # 1 dB over two doublings, then 0.2
    assert s["converged_from"] == 8000
    assert s["rate_ratio"] == pytest.approx({2000: 1.3, 8000: 1.3, 16000: 1.0})
    assert s["worst_plane_error"] == {2000: 2.5, 8000: 2.5, 16000: 2.5}
    text = "; ".join(budget.goals({}, s))
    assert (
        "2000 -> 8000 steps moves PSNR-Y < 0.3 dB per doubling on every clip MISSED (worst +0.50 dB)" in text
    )
    assert "8000 -> 16000 steps moves PSNR-Y < 0.3 dB per doubling on every clip met" in text
    assert "2000 steps: every plane mean within 2 levels MISSED (worst 2.5)" in text
