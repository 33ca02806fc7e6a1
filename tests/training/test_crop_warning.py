"""Training crops that give the hyperprior a 1x1 z map are warned about (BENCHMARKS.md, bench_crop_size)."""

import logging

from gvc.training.run import warn_small_crops


def test_crops_below_two_z_cells_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="gvc.training.run"):
        assert warn_small_crops(64, 64)
        assert "data.crop_size=64 gives the hyperprior a 1x1 z map" in caplog.text
        assert "at least 128" in caplog.text
        caplog.clear()
        assert (
            not warn_small_crops(128, 64) and not warn_small_crops(256, 64) and not warn_small_crops(None, 64)
        )
        assert caplog.text == ""
