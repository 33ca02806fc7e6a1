"""gvc.data.io / gvc.data.color: readers, writers, colour conversion and the errors bad input gets."""

from __future__ import annotations

import os
import subprocess

import cv2
import numpy as np
import pytest
import torch

from gvc.data import sample_clips
from gvc.data.color import rgb_to_yuv420, upsample_chroma, yuv420_to_rgb
from gvc.data.io import (
    FFmpegReader,
    RawYUVReader,
    Y4MReader,
    YUVFrame,
    ffmpeg_exe,
    open_video,
    parse_yuv_name,
    write_mp4,
    write_png_dir,
    write_y4m,
    write_yuv,
)
from gvc.errors import VideoFormatError


def _random_frames(n: int, w: int = 48, h: int = 32, seed: int = 0) -> list[YUVFrame]:
    rng = np.random.default_rng(seed)
    return [
        YUVFrame(
            rng.integers(0, 256, (h, w), dtype=np.uint8),
            rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8),
            rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8),
        )
        for _ in range(n)
    ]


def _same(a: YUVFrame, b: YUVFrame) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _smooth_rgb(h: int = 32, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth in-gamut RGB (3, H, W) with chroma constant over each 2x2 block (so 4:2:0 loses nothing)."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(1, 3, h // 8, w // 8, generator=g) * 0.8 + 0.1
    half = torch.nn.functional.interpolate(lo, size=(h // 2, w // 2), mode="bilinear", align_corners=False)[0]
    return half.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("name_1920x1080_30.yuv", (1920, 1080, 30.0)),
        ("videoSRC01_1920x1080_30.yuv", (1920, 1080, 30.0)),
        ("videoSRC27_1920x1080_24.yuv", (1920, 1080, 24.0)),
        ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", (1920, 1080, 120.0)),
        ("BasketballPass_416x240_50.yuv", (416, 240, 50.0)),
        ("foreman_352x288.yuv", (352, 288, None)),
        ("clip.yuv", (None, None, None)),
    ],
)
def test_parse_yuv_name(name, expected):
    assert parse_yuv_name(name) == expected


def test_bikes_mp4_has_250_frames_of_640x272():
    with open_video(sample_clips()["bikes"]) as r:
        assert isinstance(r, FFmpegReader)
        assert (r.width, r.height, len(r), r.fps) == (640, 272, 250, 25.0)
        n = 0
        for f in r:
            assert f.y.shape == (272, 640) and f.u.shape == (136, 320) and f.y.dtype == np.uint8
            n += 1
        assert n == 250
        rgb = r.read_rgb(-1)
        assert rgb.shape == (3, 272, 640) and rgb.dtype == torch.float32 and 0 <= rgb.min() <= rgb.max() <= 1


def test_y4m_write_then_read_is_bit_exact(tmp_path):
    frames = _random_frames(5)
    p = tmp_path / "a.y4m"
    assert write_y4m(p, frames, fps=29.97) == 5
    with open_video(p) as r:
        assert isinstance(r, Y4MReader) and (r.width, r.height, len(r)) == (48, 32, 5)
        assert r.fps == pytest.approx(29.97, abs=1e-3) and r.color_range == "FULL"
        assert all(_same(a, b) for a, b in zip(frames, r))
        assert _same(r.read_yuv(3), frames[3]) and _same(r.read_yuv(0), frames[0])  # seek back


def test_y4m_header_is_parsed_and_frame_params_skipped(tmp_path):
    frames = _random_frames(3, w=16, h=8, seed=1)
    p = tmp_path / "hand.y4m"
    with open(p, "wb") as fh:
        fh.write(b"YUV4MPEG2 H8 W16 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2\n")
        for i, f in enumerate(frames):
            fh.write(b"FRAME Ixyz XFOO=%d\n" % i if i % 2 else b"FRAME\n")
            for plane in f:
                fh.write(plane.tobytes())
    r = Y4MReader(p)
    assert (r.width, r.height, len(r)) == (16, 8, 3)
    assert r.fps == pytest.approx(29.97, abs=1e-3)
    assert _same(r.read_yuv(2), frames[2]) and _same(r.read_yuv(1), frames[1])


def test_raw_yuv_frame_by_index_matches_ffmpeg_decode(tmp_path):
    src = sample_clips()["carphone_pristine"]
    out = tmp_path / "carphone_176x144_30.yuv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(src), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )
    fb = 176 * 144 * 3 // 2
    raw = RawYUVReader(out)
    assert (raw.width, raw.height, raw.fps, len(raw)) == (176, 144, 30.0, 120)
    with open_video(src) as dec:
        for i in (77, 0, 119, 5):  # out of order: seeks in both readers
            ref = np.fromfile(out, dtype=np.uint8, count=fb, offset=i * fb)
            got = raw.read_yuv(i)
            assert np.array_equal(np.concatenate([p.ravel() for p in got]), ref)
            assert _same(dec.read_yuv(i), got)  # ffmpeg reader's random access is frame exact too
    assert [_same(a, raw.read_yuv(10 + k)) for k, a in enumerate(raw.iter_yuv(10, 13))] == [True] * 3
    raw.close()


def test_raw_yuv_size_from_arguments(tmp_path):
    frames = _random_frames(4, seed=2)
    p = tmp_path / "noname.yuv"
    write_yuv(p, frames)
    r = open_video(p, width=48, height=32, fps=50)
    assert (len(r), r.fps) == (4, 50.0) and _same(r.read_yuv(2), frames[2])


def test_mp4_crf0_write_then_read_is_lossless(tmp_path):
    frames = _random_frames(4, seed=3)
    p = tmp_path / "x.mp4"
    write_mp4(p, frames, fps=25, crf=0)
    with open_video(p) as r:
        assert (len(r), r.width, r.height) == (4, 48, 32)
        assert all(_same(a, b) for a, b in zip(frames, r))


def test_png_dir_write_then_read_rgb_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (3, 3, 16, 24), generator=g).float() / 255
    assert write_png_dir(tmp_path / "frames", clip) == 3
    r = open_video(tmp_path / "frames", fps=10)
    assert (len(r), r.width, r.height, r.fps) == (3, 24, 16, 10.0)
    assert torch.equal(r.read_clip(0, 3), clip)
    # read_yuv gives the 4:2:0 conversion of the same pixels
    assert all(torch.equal(torch.from_numpy(a), b) for a, b in zip(r.read_yuv(1), rgb_to_yuv420(clip[1])))


def test_png_reader_natural_sort(tmp_path):
    for i in (10, 2, 1):
        img = np.full((4, 4, 3), i, np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    r = open_video(tmp_path)
    assert [round(float(r.read_rgb(k)[0, 0, 0]) * 255) for k in range(3)] == [1, 2, 10]


@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
@pytest.mark.parametrize("full_range", [True, False])
def test_yuv_rgb_round_trip_error_bounds(matrix, full_range):
    rgb = _smooth_rgb()
    y, u, v = rgb_to_yuv420(rgb, matrix, full_range)
    back = yuv420_to_rgb(y, u, v, matrix, full_range)
    # RGB -> 4:2:0 -> RGB on 2x2-constant content: only 8-bit rounding of Y/U/V remains (amplified by the matrix)
    assert (back - rgb).abs().max() < 3 / 255
    y2, u2, v2 = rgb_to_yuv420(back, matrix, full_range)
    # YUV -> RGB -> YUV with nearest upsampling and 2x2 averaging: at most 1 code value off (rounding only)
    for a, b in ((y, y2), (u, u2), (v, v2)):
        assert (a.int() - b.int()).abs().max() <= 1


def test_color_reference_values():
    white, black = torch.ones(3, 2, 2), torch.zeros(3, 2, 2)
    assert [int(p.flatten()[0]) for p in rgb_to_yuv420(white)] == [255, 128, 128]
    assert [int(p.flatten()[0]) for p in rgb_to_yuv420(white, full_range=False)] == [235, 128, 128]
    assert [int(p.flatten()[0]) for p in rgb_to_yuv420(black, full_range=False)] == [16, 128, 128]
    red = torch.zeros(3, 2, 2)
    red[0] = 1
    assert int(rgb_to_yuv420(red, "bt709")[0][0, 0]) == round(0.2126 * 255)
    assert int(rgb_to_yuv420(red, "bt601")[0][0, 0]) == round(0.299 * 255)
    # BT.601 full range equals OpenCV's YCrCb (JPEG) conversion
    rgb8 = (_smooth_rgb(seed=4) * 255).round().to(torch.uint8)
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb8.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2YCrCb)
    ours = rgb_to_yuv420(rgb8.float() / 255, "bt601", True)
    assert np.abs(ours[0].int().numpy() - ycrcb[..., 0].astype(int)).max() <= 1


def test_chroma_upsampling_is_centre_sited_and_inverted_by_2x2_average():
    ramp = torch.arange(4.0).repeat(4, 1)  # chroma (4, 4), value = column
    bil = upsample_chroma(ramp, "bilinear")
    assert torch.allclose(bil[0, 1:7], torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25, 2.75]))
    near = upsample_chroma(ramp, "nearest")
    assert torch.equal(near[0], torch.tensor([0.0, 0, 1, 1, 2, 2, 3, 3]))
    for up in (bil, near):  # 2x2 averaging gives the samples back (away from the clamped border)
        down = torch.nn.functional.avg_pool2d(up[None, None], 2)[0, 0]
        assert torch.allclose(down[:, 1:3], ramp[:, 1:3])


# --- bad input ----------------------------------------------------------------------------------------------------


def _bad(tmp_path, kind: str):
    if kind == "yuv_not_whole_frames":
        p = tmp_path / "a_48x32_30.yuv"
        p.write_bytes(b"\0" * (48 * 32 * 3 // 2 * 2 + 7))
        return p, {}, ["not a whole number", "a_48x32_30.yuv"]
    if kind == "odd_size":
        p = tmp_path / "b_47x32_30.yuv"
        p.write_bytes(b"\0" * (47 * 32 * 2))
        return p, {}, ["odd", "crop", "b_47x32_30.yuv"]
    if kind == "missing":
        return tmp_path / "nope_64x64.yuv", {}, ["no such file", "nope_64x64.yuv"]
    if kind == "unreadable":
        p = tmp_path / "locked_64x64.yuv"
        p.write_bytes(b"\0" * (64 * 64 * 3 // 2))
        p.chmod(0)
        return p, {}, ["not readable", "locked_64x64.yuv"]
    if kind == "undecodable":
        p = tmp_path / "garbage.mp4"
        p.write_bytes(os.urandom(4096))
        return p, {}, ["cannot decode", "garbage.mp4"]
    if kind == "zero_frames_yuv":
        p = tmp_path / "empty_64x64.yuv"
        p.write_bytes(b"")
        return p, {}, ["zero frames", "empty_64x64.yuv"]
    if kind == "zero_frames_y4m":
        p = tmp_path / "empty.y4m"
        p.write_bytes(b"YUV4MPEG2 W64 H64 F25:1 C420jpeg\n")
        return p, {}, ["zero frames", "empty.y4m"]
    if kind == "zero_frames_png":
        p = tmp_path / "pngs"
        p.mkdir()
        return p, {}, ["zero frames", "pngs"]
    if kind == "bad_y4m_magic":
        p = tmp_path / "bad.y4m"
        p.write_bytes(b"YUV4MPEG W64 H64\nFRAME\n")
        return p, {}, ["not a Y4M", "bad.y4m"]
    if kind == "bad_y4m_no_width":
        p = tmp_path / "now.y4m"
        p.write_bytes(b"YUV4MPEG2 H64 F25:1\nFRAME\n")
        return p, {}, ["W and H", "now.y4m"]
    if kind == "y4m_444":
        p = tmp_path / "c444.y4m"
        p.write_bytes(b"YUV4MPEG2 W4 H4 F25:1 C444\nFRAME\n" + b"\0" * 48)
        return p, {}, ["C444", "pix_fmt yuv420p", "c444.y4m"]
    if kind == "y4m_truncated":
        p = tmp_path / "trunc.y4m"
        p.write_bytes(b"YUV4MPEG2 W4 H4 F25:1\nFRAME\n" + b"\0" * 10)
        return p, {}, ["truncated", "trunc.y4m"]
    if kind == "yuv_no_size":
        p = tmp_path / "nosize.yuv"
        p.write_bytes(b"\0" * 96)
        return p, {}, ["width=", "name_1920x1080_30.yuv", "nosize.yuv"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "yuv_not_whole_frames",
        "odd_size",
        "missing",
        "unreadable",
        "undecodable",
        "zero_frames_yuv",
        "zero_frames_y4m",
        "zero_frames_png",
        "bad_y4m_magic",
        "bad_y4m_no_width",
        "y4m_444",
        "y4m_truncated",
        "yuv_no_size",
    ],
)
def test_bad_input_raises_video_format_error(tmp_path, kind, monkeypatch):
    path, kw, needles = _bad(tmp_path, kind)
    if kind == "unreadable" and os.access(path, os.R_OK):  # root reads mode-0 files: simulate the denial
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(path) else real(p, m))
    with pytest.raises(VideoFormatError) as ei:
        open_video(path, **kw)
    msg = str(ei.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_container_reader_closes_its_decoder_and_reopens_on_demand():
    r = open_video(sample_clips()["carphone_pristine"])
    first = r.read_yuv(3)
    assert r._container is not None  # decoding, mid-file
    r.close()
    assert r._container is None
    assert _same(r.read_yuv(3), first)  # reopened lazily, same frame
    r.close()


@pytest.mark.parametrize(
    "name, args",
    [
        ("gop8_bframes.mp4", ["-c:v", "libx264", "-g", "8", "-bf", "2"]),
        ("gop5.mkv", ["-c:v", "libx264", "-g", "5", "-bf", "3"]),
        ("elementary.264", ["-c:v", "libx264", "-g", "6", "-bf", "2", "-f", "h264"]),
        ("hevc.mp4", ["-c:v", "libx265", "-x265-params", "keyint=7:bframes=2:log-level=error"]),
    ],
)
def test_container_random_access_is_frame_exact(tmp_path, name, args):
    """Seeking (keyframes, B-frames, ms timestamps in mkv, no timestamps in a raw .264) gives the same frames as
    one sequential decode."""
    src = sample_clips()["carphone_pristine"]
    out = tmp_path / name
    cmd = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-i",
        str(src),
        "-frames:v",
        "40",
        "-pix_fmt",
        "yuv420p",
        *args,
        str(out),
    ]
    subprocess.run(cmd, check=True)
    with open_video(out) as r:
        assert len(r) == 40 and (r.width, r.height) == (176, 144)
        seq = list(r)
        assert len(seq) == 40
        for i in (37, 3, 20, 19, 0, 39, 8, 9, 1, 30):
            assert _same(r.read_yuv(i), seq[i]), i
        assert [_same(a, b) for a, b in zip(r.iter_yuv(12, 16), seq[12:16])] == [True] * 4


def _run_hint(err: str, marker: str) -> None:
    """Run the ffmpeg command an error message suggests (after `marker`), as printed, with imageio's ffmpeg."""
    import shlex

    import imageio_ffmpeg

    cmd = err.split(marker, 1)[1].strip().rstrip(")")
    argv = shlex.split(cmd)
    assert argv[0] == "ffmpeg", cmd
    res = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, (cmd, res.stderr)


@pytest.mark.ffmpeg
def test_suggested_fix_commands_run_as_printed(tmp_path):
    """The odd-size hint lacked -pix_fmt yuv420p (a PNG folder or a 4:4:4 source stays 4:4:4); the C444 hint
    wrote its output over its input's name when the input was out.y4m (ffmpeg refuses that)."""
    frames = tmp_path / "odd"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(
            str(frames / f"{i:06d}.png"), np.random.default_rng(i).integers(0, 255, (63, 65, 3), np.uint8)
        )
    with pytest.raises(VideoFormatError, match="is odd") as err:
        open_video(frames)
    assert "-pix_fmt yuv420p" in str(err.value)
    _run_hint(str(err.value), "crop it: ")
    with open_video(tmp_path / "odd_64x62.y4m") as r:  # the file the hint wrote: even, 4:2:0, readable
        assert (r.width, r.height, len(r)) == (64, 62, 2)

    src = tmp_path / "out.y4m"
    src.write_bytes(b"YUV4MPEG2 W4 H4 F25:1 C444\nFRAME\n" + bytes(range(48)))
    with pytest.raises(VideoFormatError, match="C444") as err:
        open_video(src)
    _run_hint(str(err.value), "Convert: ")
    assert src.read_bytes().startswith(b"YUV4MPEG2 W4 H4 F25:1 C444")  # the input is untouched
    with open_video(tmp_path / "out_420.y4m") as r:
        assert (r.width, r.height, len(r)) == (4, 4, 1)
