"""gvc.eval.measure: one model file on one video through a real file, and the per-frame figures read from it
(drift, P/I bits)."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc.data.datasets import make_synthetic_clip
from gvc.data.io import write_y4m
from gvc.eval.measure import drift_db, drift_frames, measure_model, p_over_i_bits
from gvc.eval.metrics.fidelity import psnr_planes

CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "smoke.yaml"


def test_drift_is_frame_30_minus_frame_2_or_the_last():
    psnr = [40.0 + 0.1 * i for i in range(32)]  # frame k (1-based) has 40 + 0.1 (k - 1)
    assert drift_frames(32) == (2, 30)
    assert drift_db(psnr) == pytest.approx(psnr[29] - psnr[1]) == pytest.approx(2.8)
    assert drift_frames(5) == (2, 5) and drift_db(psnr[:5]) == pytest.approx(0.3)  # the last frame
    assert drift_db([30.0, 31.0, 29.5], later=30) == pytest.approx(-1.5)
    assert drift_frames(2) is None and drift_db([30.0, 31.0]) is None  # nothing after frame 2


def test_p_over_i_bits_is_the_ratio_of_mean_sizes():
    assert p_over_i_bits([1000, 400, 600], ["I", "P", "P"]) == pytest.approx(0.5)
    assert p_over_i_bits([1000, 500, 2000, 700], ["I", "P", "I", "P"]) == pytest.approx(600 / 1500)
    assert p_over_i_bits([1000, 900], ["I", "I"]) is None  # all intra
    with pytest.raises(ValueError, match="2 frame sizes for 3"):
        p_over_i_bits([1, 2], ["I", "P", "P"])


def test_measure_model_scores_the_file_it_writes(tmp_path):
    """A smoke I+P model codes a 4-frame clip into a real .gvc file: the per-frame packet bits and types come from
    that file (I then P), its bpp is the file size over the pixels, and the per-frame PSNR-Y is the source's luma
    against the decoded frames it returns."""
    from gvc.codec.modelfile import save_model_file
    from gvc.models.video import VideoCodec

    torch.manual_seed(0)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    video = VideoCodec(cfg["iframe"], cfg["pframe"], {**cfg["flow"], "preset": "fast"})
    video.pframe.init_from_iframe(video.iframe)
    model = tmp_path / "m.gvcm"
    save_model_file(model, video.eval())
    clip, _ = make_synthetic_clip(4, 64, 96, seed=1)
    path = tmp_path / "clip.y4m"
    write_y4m(path, list(clip))
    point = measure_model(model, path, tmp_path / "work", keep_decoded=True)
    stream = tmp_path / "work" / "m.gvc"
    assert point.frame_types == ["I", "P", "P", "P"] and point.frames == 4
    assert (point.width, point.height) == (96, 64)
    assert point.bytes == stream.stat().st_size
    assert point.bpp == pytest.approx(8 * point.bytes / (4 * 64 * 96))
    assert 0 < sum(point.frame_bits) <= 8 * point.bytes
    assert p_over_i_bits(point.frame_bits, point.frame_types) > 0
    from gvc.data.io import open_video

    with open_video(path) as r:
        src = list(r.iter_yuv())
    assert len(point.decoded) == 4
    want = [psnr_planes(a.y, b.y) for a, b in zip(src, point.decoded)]
    assert point.per_frame["psnr_y"] == pytest.approx(want)
    assert drift_db(point.per_frame["psnr_y"]) == pytest.approx(want[3] - want[1])
    assert point.encode_s > 0 and point.refine == [] and "decoded" not in point.as_dict()
