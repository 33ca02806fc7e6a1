"""BD-rate on synthetic curves with known answers; RD aggregation and plots."""

import numpy as np
import pytest

from gvc.eval import rd

RATE = np.array([0.05, 0.1, 0.2, 0.4])
PSNR = np.array([30.0, 33.0, 36.0, 39.0])
LPIPS = np.array([0.30, 0.25, 0.20, 0.15])


@pytest.mark.parametrize("method", ["akima", "pchip"])
def test_bd_rate_scaled_rates(method):
    assert rd.bd_rate(RATE, PSNR, RATE * 0.8, PSNR, method=method) == pytest.approx(-20.0, abs=1e-6)
    assert rd.bd_rate(RATE, PSNR, RATE * 1.25, PSNR, method=method) == pytest.approx(25.0, abs=1e-6)


def test_bd_rate_lower_is_better_is_negated():
    # same LPIPS at 80% of the rate -> the test codec saves 20%, not costs
    assert rd.bd_rate(RATE, LPIPS, RATE * 0.8, LPIPS, higher_is_better=False) == pytest.approx(
        -20.0, abs=1e-6
    )


def test_bd_rate_three_points_and_no_overlap():
    assert rd.bd_rate(RATE[:3], PSNR[:3], RATE[:3] * 0.8, PSNR[:3], method="pchip") == pytest.approx(-20.0)
    with pytest.raises(ValueError):
        rd.bd_rate(RATE, PSNR, RATE, PSNR + 20)


def _rows():
    rows = []
    for video, offset in (("a", 0.0), ("b", 1.0)):
        for i, (r, p, lp) in enumerate(zip(RATE, PSNR, LPIPS)):
            rows.append({"video": video, "codec": "x265", "setting": f"s{i}", "bpp": r, "psnr_rgb": p + offset,
                         "lpips": lp})  # fmt: skip
            rows.append({"video": video, "codec": "gvc", "setting": f"m{i}", "bpp": r * 0.8, "psnr_rgb": p + offset,
                         "lpips": float("nan") if video == "b" else lp})  # fmt: skip
    return rows


def test_rd_curves_average_videos_and_drop_missing():
    curves = rd.rd_curves(_rows(), "psnr_rgb")
    bpp, value = curves["x265"]
    assert np.allclose(bpp, RATE) and np.allclose(value, PSNR + 0.5)
    assert "gvc" not in rd.rd_curves(_rows(), "lpips")  # a setting with a NaN on one video is dropped


def test_bd_rate_table_per_video_mean(tmp_path):
    table = rd.bd_rate_table(_rows(), ["psnr_rgb", "lpips"], anchor="x265")
    assert table["gvc"]["psnr_rgb"]["value"] == pytest.approx(-20.0, abs=1e-6)
    assert table["gvc"]["psnr_rgb"]["videos"] == 2
    assert table["gvc"]["lpips"]["videos"] == 1 and "skipped" in table["gvc"]["lpips"]
    md = rd.bd_table_markdown(table, ["psnr_rgb"], "x265")
    assert "| gvc | -20.0% |" in md
    png = rd.plot_rd(rd.rd_curves(_rows(), "psnr_rgb"), "psnr_rgb", tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_duplicate_rates_are_dropped_and_points_sorted():
    r, d = rd.prepare_curve([0.2, 0.1, 0.2, 0.4], [36.0, 33.0, 36.0, 39.0])
    assert np.array_equal(r, [0.1, 0.2, 0.4]) and np.array_equal(d, [33.0, 36.0, 39.0])
    r, d = rd.prepare_curve([0.1, 0.2], [0.3, 0.2], higher_is_better=False)
    assert np.array_equal(d, [-0.3, -0.2])
    # a floor hit by two targets gives the same point twice: still a BD-rate with the remaining three
    value = rd.bd_rate(np.r_[RATE[0], RATE], np.r_[PSNR[0], PSNR], RATE * 0.8, PSNR)
    assert value == pytest.approx(-20.0, abs=1e-6)


def test_bd_rate_reasons():
    with pytest.raises(ValueError, match="test: 2 distinct points"):
        rd.bd_rate(RATE, PSNR, [0.1, 0.1, 0.2], [30.0, 30.0, 33.0])
    with pytest.raises(ValueError, match="no overlap in quality"):
        rd.bd_rate(RATE, PSNR, RATE, PSNR + 20)
    with pytest.raises(ValueError, match="does not rise"):
        rd.bd_rate(RATE, PSNR, RATE, [30.0, 29.0, 36.0, 39.0])
    with pytest.raises(ValueError, match="anchor: 3 distinct points \\(needs 4\\)"):
        rd.bd_rate(RATE[:3], PSNR[:3], RATE, PSNR, min_points=4)


def test_bd_rate_table_gives_a_number_or_a_reason_for_every_cell():
    rows = _rows()
    for video in ("a", "b"):
        rows += [{"video": video, "codec": "vvc", "setting": f"t{i}", "bpp": 0.1, "psnr_rgb": 33.0 + i}
                 for i in range(2)]  # fmt: skip
    table = rd.bd_rate_table(rows, ["psnr_rgb", "lpips"], anchor="x265")
    assert table["vvc"]["psnr_rgb"]["reason"].count("vvc: 1 distinct point (needs 3)") == 2
    assert "no vvc points with lpips" in table["vvc"]["lpips"]["reason"]
    md = rd.bd_table_markdown(table, ["psnr_rgb", "lpips"], "x265")
    assert (
        "| vvc | no number (2) | no number (3) |" in md
        and "(2) vvc, psnr_rgb: a: vvc: 1 distinct point" in md
    )
    assert "n/a" not in md
