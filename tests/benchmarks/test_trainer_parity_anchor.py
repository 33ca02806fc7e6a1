"""bench_trainer_parity's compressai anchor is coded through a real file: the bits it reports are the file's, and
every frame's bits are its string lengths plus 8 bytes (an untrained anchor on 3 frames of carphone)."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parity():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_trainer_parity

    return bench_trainer_parity


def test_anchor_bits_are_the_files_and_scores_its_decoded_frames(parity, tmp_path):
    from gvc.data import open_video, sample_clips
    from gvc.data.io import write_y4m
    from gvc.eval.metrics import MetricSuite

    clip = tmp_path / "three.y4m"
    with open_video(sample_clips()["carphone_pristine"]) as r:
        write_y4m(clip, r.iter_yuv(0, 3), r.fps, matrix=r.colour["matrix"], full_range=r.colour["full_range"])
    torch.manual_seed(0)
    net = parity.build_anchor().eval()
    net.update(force=True)
    model = tmp_path / "anchor.pt"
    torch.save(net.state_dict(), model)
    got = parity.measure_anchor(model, clip, tmp_path / "coded", MetricSuite(("psnr",)))
    stream = tmp_path / "coded" / "anchor.msh"
    size = stream.stat().st_size
    assert got["bpp"] == pytest.approx(8 * size / (3 * 176 * 144))
    assert sum(got["frame_bits"]) == 8 * size - 8 * parity._ANCHOR_HEAD.size
    assert sum(got["payload_bits"]) == sum(got["frame_bits"]) - 3 * 8 * parity._ANCHOR_FRAME.size
    assert all(p > 0 for p in got["payload_bits"])
    assert 5.0 < got["summary"]["psnr_y"] < 60.0
