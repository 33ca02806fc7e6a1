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
