"""Colour conventions of real files: what the container or header states is used; the default (BT.709 full
range) only where a file states nothing; tags survive a write; raw outputs carry their size in the name."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
import torch

from gvc.data import sample_clips
from gvc.data.color import rgb_to_yuv420
from gvc.data.io import (
    YUVFrame,
    ffmpeg_exe,
    open_video,
    open_writer,
    parse_yuv_name,
    probe,
    raw_yuv_name,
    write_mp4,
    write_y4m,
    write_yuv,
)
from gvc.errors import VideoFormatError

pytestmark = pytest.mark.ffmpeg


def _smooth_rgb8(h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    """8-bit-exact smooth RGB (3, H, W) in [0, 1], constant over 2x2 blocks (4:2:0 loses nothing)."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(1, 3, h // 8, w // 8, generator=g) * 0.8 + 0.1
    half = torch.nn.functional.interpolate(lo, size=(h // 2, w // 2), mode="bilinear", align_corners=False)[0]
    rgb = half.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return (rgb * 255).round() / 255


def _ffmpeg_clip(tmp_path, rgb: torch.Tensor, name: str, out_range: str, space: str, tag_args: list[str]):
    """RGB -> PNG -> ffmpeg's own RGB -> YUV conversion (swscale, ``out_range``/``space``) -> lossless x264."""
    png = tmp_path / "src.png"
    img = (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    cv2.imwrite(str(png), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / name
    vf = f"scale=out_color_matrix={space}:out_range={out_range}:flags=area+accurate_rnd,format=yuv420p"
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(png), "-vf", vf, "-c:v", "libx264", "-qp", "0"]
    subprocess.run([*cmd, *tag_args, str(out)], check=True)
    return out


def test_limited_range_clip_made_by_ffmpeg_decodes_to_its_source_rgb_and_back(tmp_path):
    rgb = _smooth_rgb8()
    tags = ["-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    clip = _ffmpeg_clip(tmp_path, rgb, "limited.mp4", "tv", "bt709", tags)
    with open_video(clip) as r:
        assert (r.matrix, r.full_range, r.colour_source) == ("bt709", False, "file")
        yuv = r.read_yuv(0)
        assert 16 <= yuv.y.min() and yuv.y.max() <= 235  # really limited range
        got = r.read_rgb(0)
        # decode -> RGB gives the source RGB within ffmpeg's and our rounding
        assert (got - rgb).abs().max() * 255 < 2.5
        # ... and RGB -> 4:2:0 with the same convention gives the decoded planes back
        back = rgb_to_yuv420(got, r.matrix, r.full_range)
        for a, b in zip(yuv, back):
            assert (torch.from_numpy(a).int() - b.int()).abs().max() <= 1
    with open_video(clip, full_range=True) as wrong:  # what the old full-range default produced
        assert wrong.colour_source == "file+user"
        assert (wrong.read_rgb(0) - rgb).abs().max() * 255 > 8


def test_bt601_full_range_tags_are_read(tmp_path):
    rgb = _smooth_rgb8(seed=1)
    tags = ["-color_range", "pc", "-colorspace", "smpte170m"]
    clip = _ffmpeg_clip(tmp_path, rgb, "full601.mkv", "pc", "bt601", tags)
    with open_video(clip) as r:
        assert (r.matrix, r.full_range) == ("bt601", True)
        assert (r.read_rgb(0) - rgb).abs().max() * 255 < 2.5


def test_h264_without_range_tag_is_limited_as_its_spec_says():
    info = probe(sample_clips()["bikes"])
    assert info["color_range"] is None and info["codec"] == "h264"
    with open_video(sample_clips()["bikes"]) as r:
        assert (r.matrix, r.full_range) == ("bt709", False)
        assert r.colour_source == "default+file"  # matrix unstated: default; range: H.264's default


def test_raw_yuv_states_nothing_so_the_default_applies_and_user_values_win(tmp_path):
    p = tmp_path / "a_16x16_30.yuv"
    write_yuv(p, [YUVFrame(np.zeros((16, 16), np.uint8), *(np.zeros((8, 8), np.uint8),) * 2)])
    with open_video(p) as r:
        assert (r.matrix, r.full_range, r.colour_source) == ("bt709", True, "default")
    with open_video(p, matrix="bt601", full_range=False) as r:
        assert (r.matrix, r.full_range, r.colour_source) == ("bt601", False, "user")


def test_unsupported_matrix_is_an_error_unless_the_user_names_one(tmp_path):
    rgb = _smooth_rgb8(seed=2)
    clip = _ffmpeg_clip(
        tmp_path, rgb, "b2020.mp4", "tv", "bt2020", ["-color_range", "tv", "-colorspace", "bt2020nc"]
    )
    with pytest.raises(VideoFormatError, match=r"BT\.2020.*--matrix"):
        open_video(clip)
    with open_video(clip, matrix="bt709") as r:
        assert (r.matrix, r.full_range) == ("bt709", False)


def test_y4m_keeps_its_chroma_tag_and_range(tmp_path):
    frames = [YUVFrame(np.full((8, 16), 100, np.uint8), *(np.full((4, 8), 128, np.uint8),) * 2)]
    src = tmp_path / "src.y4m"
    src.write_bytes(
        b"YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420mpeg2 XCOLORRANGE=LIMITED\nFRAME\n"
        + b"".join(p.tobytes() for p in frames[0])
    )
    with open_video(src) as r:
        assert (r.chroma_tag, r.full_range, r.colour_source) == ("420mpeg2", False, "default+file")
        out = tmp_path / "copy.y4m"
        with open_writer(out, fps=r.fps, **r.write_options) as w:
            for f in r:
                w.write(f)
    header = out.read_bytes().split(b"\n", 1)[0]
    assert b" C420mpeg2 " in header and header.endswith(b"XCOLORRANGE=LIMITED")
    with open_video(out) as back:
        assert back.chroma_tag == "420mpeg2" and not back.full_range
    with open_video(src) as r, open_writer(tmp_path / "copy.mp4", fps=r.fps, **r.write_options) as w:
        w.write(r.read_yuv(0))  # other formats take the colour tags and ignore the Y4M chroma tag
    assert probe(tmp_path / "copy.mp4")["color_range"] == "tv"
    write_y4m(tmp_path / "default.y4m", frames)
    assert b" C420jpeg " in (tmp_path / "default.y4m").read_bytes().split(b"\n", 1)[0]


def test_untagged_y4m_is_limited_range_as_in_ffmpeg(tmp_path):
    """ffmpeg writes no XCOLORRANGE for limited-range video (every Y4M cut from an H.264/HEVC source) and reads
    an untagged Y4M as limited; gvc used to read it as full range."""
    frame = YUVFrame(np.full((8, 16), 16, np.uint8), *(np.full((4, 8), 128, np.uint8),) * 2)
    src = tmp_path / "untagged.y4m"
    src.write_bytes(
        b"YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"".join(p.tobytes() for p in frame)
    )
    with open_video(src) as r:
        assert r.full_range is False
        assert float(r.read_rgb(0).max()) < 0.01  # Y=16 is black in limited range, not 6% grey
    tagged = tmp_path / "full.y4m"
    tagged.write_bytes(src.read_bytes().replace(b"C420jpeg", b"C420jpeg XCOLORRANGE=FULL"))
    with open_video(tagged) as r:
        assert r.full_range is True


def test_written_mp4_is_tagged_with_the_convention_it_was_written_in(tmp_path):
    frames = [YUVFrame(np.full((16, 32), 60, np.uint8), *(np.full((8, 16), 140, np.uint8),) * 2)] * 2
    for full, matrix, expect in ((False, "bt601", ("tv", 6)), (True, "bt709", ("pc", 1))):
        p = tmp_path / f"{full}_{matrix}.mp4"
        write_mp4(p, frames, fps=25, matrix=matrix, full_range=full)
        info = probe(p)
        assert (info["color_range"], info["colorspace"]) == expect
        with open_video(p) as r:
            assert (r.matrix, r.full_range, r.colour_source) == (matrix, full, "file")
            assert np.array_equal(r.read_yuv(1).y, frames[1].y)  # crf 0: lossless


@pytest.mark.parametrize(
    "name, expected",
    [
        ("out.yuv", "out_640x272_25.yuv"),
        ("videoSRC01_640x272_25.yuv", "videoSRC01_640x272_25.yuv"),
        ("rec_640x272.yuv", "rec_640x272_25.yuv"),
    ],
)
def test_raw_output_names_carry_size_and_fps(name, expected, tmp_path):
    got = raw_yuv_name(tmp_path / name, 640, 272, 25.0)
    assert got.name == expected and parse_yuv_name(got.name) == (640, 272, 25.0)


def test_raw_output_name_that_states_another_size_is_refused(tmp_path):
    with pytest.raises(VideoFormatError, match="1920x1080 but the video is 640x272"):
        raw_yuv_name(tmp_path / "x_1920x1080_30.yuv", 640, 272, 30.0)
    with pytest.raises(VideoFormatError, match="30 fps but the video is 25 fps"):
        raw_yuv_name(tmp_path / "x_640x272_30.yuv", 640, 272, 25.0)
