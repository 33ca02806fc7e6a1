"""encode -> .gvc -> decode through the `gvc` command (main(argv), in-process) with a tiny IFrameCodec
(conf/model/smoke.yaml) on the real carphone clip."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gvc import config_dir
from gvc.cli import main
from gvc.codec.bitstream import HEADER_BYTES, read_bitstream
from gvc.codec.coder import decode_video, encode_video, entropy_placement, pad_frame, shift_for_frame
from gvc.codec.modelfile import load_model_file, save_model_file
from gvc.data import open_video, rgb_to_yuv420, sample_clips, write_yuv
from gvc.models.bottleneck import HyperpriorBottleneck
from gvc.models.iframe import IFrameCodec
from gvc.models.pframe import PFrameCodec
from gvc.models.video import VideoCodec
from tests._entropy_fit import fit_iframe_entropy_model

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 3


def _smoke_kwargs() -> dict:
    """conf/model/smoke.yaml resolved: {"iframe": kwargs, "pframe": kwargs (without _target_), "flow": spec}."""
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)
    out = {k: dict(cfg[k]) for k in ("iframe", "pframe", "flow")}
    assert out["iframe"].pop("_target_") == "gvc.models.iframe.IFrameCodec"
    assert out["pframe"].pop("_target_") == "gvc.models.pframe.PFrameCodec"
    assert out["flow"]["_target_"] == "gvc.models.flow.DISFlow"
    return out


def _smoke_iframe_kwargs() -> dict:
    return _smoke_kwargs()["iframe"]


@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_clips()["carphone_pristine"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, clip) -> Path:
    torch.manual_seed(0)
    model = IFrameCodec(**_smoke_iframe_kwargs())
    with open_video(clip) as r:
        x = pad_frame(r.read_rgb(0)[None], 192, 192)
    fit_iframe_entropy_model(model, x, y_std=8.0, steps=150)
    path = tmp_path_factory.mktemp("model") / "smoke.gvcm"
    save_model_file(path, model)
    return path


def _direct_path(model, clip: Path, n: int) -> list[torch.Tensor]:
    """The model's own compress -> decompress of each padded frame, cropped: what decoding must reproduce."""
    out = []
    with open_video(clip) as r, torch.no_grad():
        for i in range(n):
            x = r.read_rgb(i)
            h, w = x.shape[-2:]
            c = model.compress(pad_frame(x[None], 192, 192))
            out.append(model.decompress(c["strings"], c["shape"])["x_hat"][0, :, :h, :w])
    return out


@pytest.mark.ffmpeg
def test_cli_roundtrip_matches_model_and_is_deterministic(tmp_path, clip, model_file, capsys):
    """What this proves: `gvc encode` + `gvc decode` reproduce exactly the model's own compress/decompress
    frames (padding 176x144 -> 192x192 and cropping back, colour convention carried to the output file); two
    encodes give identical bytes; the file's bits match the likelihood estimate within 1% plus the container
    bytes and the range coder's flush (<= 40 bits per string); bpp is computed from the file size."""
    a, b = tmp_path / "a.gvc", tmp_path / "b.gvc"
    stats_json = tmp_path / "stats.json"
    common = ["--model", str(model_file), "--frames", str(FRAMES), "-q"]
    assert main(["encode", str(clip), "-o", str(a), *common, "--json", str(stats_json)]) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "estimate" in out
    assert main(["encode", str(clip), "-o", str(b), *common, "--no-estimate"]) == 0
    assert a.read_bytes() == b.read_bytes()

    stats = json.loads(stats_json.read_text())
    size = a.stat().st_size
    assert stats["file_bytes"] == size and stats["num_frames"] == FRAMES
    assert stats["bpp"] == pytest.approx(8 * size / (FRAMES * 176 * 144))
    header, packets = read_bitstream(a)
    assert (header.width, header.height, header.padded_width, header.padded_height) == (176, 144, 192, 192)
    assert (header.fps_num, header.fps_den, header.matrix, header.full_range, header.gop) == (
        30000,
        1001,
        "bt709",
        False,  # carphone is H.264 without a range tag: limited range, as H.264 specifies
        1,
    )
    n_strings = sum(len(p.strings) for p in packets)
    est, file_bits = stats["estimated_bits"], 8 * size
    assert est > 5000  # a real rate, not a degenerate one
    assert abs(file_bits - est) <= 0.01 * est + 8 * stats["container_bytes"] + 40 * n_strings, (
        file_bits,
        est,
    )
    assert stats["container_bytes"] == size - sum(p.payload_bytes for p in packets)

    y4m = tmp_path / "dec.y4m"
    assert main(["decode", str(a), "-o", str(y4m), "--model", str(model_file), "-q"]) == 0
    model = load_model_file(model_file)
    expected = _direct_path(model, clip, FRAMES)
    decoded = list(decode_video(a, model))
    assert len(decoded) == FRAMES
    for got, exp in zip(decoded, expected):
        assert got.shape == (3, 144, 176) and torch.equal(got, exp)
    with open_video(y4m) as r:
        assert (len(r), r.width, r.height) == (FRAMES, 176, 144)
        assert r.fps == pytest.approx(30000 / 1001)
        for i, exp in enumerate(expected):
            planes = r.read_yuv(i)
            for p, q in zip(planes, rgb_to_yuv420(exp, "bt709", False)):
                np.testing.assert_array_equal(p, q.numpy())
    # a second decode of the same file gives the same frames
    assert all(torch.equal(x, y) for x, y in zip(decode_video(a, model), decoded))

    assert main(["info", str(a)]) == 0
    info = capsys.readouterr().out
    assert "192x192" in info and f"total: {FRAMES} frames ({FRAMES} I, 0 P), {size} bytes" in info
    assert main(["info", str(a), "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert sum(f["bytes"] for f in js["per_frame"]) + HEADER_BYTES == size


def test_any_even_size_raw_yuv_and_png_output(tmp_path, model_file):
    """A 66x34 raw .yuv (no multiple of 64, limited range, BT.601, 25 fps from the name) is padded, coded and
    cropped back; the header keeps its colour convention and the PNG-folder output has one file per frame."""
    torch.manual_seed(3)
    src = tmp_path / "small_66x34_25.yuv"
    write_yuv(src, [torch.rand(3, 34, 66) for _ in range(2)], matrix="bt601", full_range=False)
    gvc = tmp_path / "s.gvc"
    assert (
        main(
            [
                "encode",
                str(src),
                "-o",
                str(gvc),
                "--model",
                str(model_file),
                "--matrix",
                "bt601",
                "--limited-range",
                "--device-entropy",
                "-q",
            ]
        )
        == 0
    )
    header, packets = read_bitstream(gvc)
    assert (header.width, header.height, header.padded_width, header.padded_height) == (66, 34, 128, 64)
    assert (header.matrix, header.full_range, header.fps_num, header.fps_den) == ("bt601", False, 25, 1)
    assert not header.portable_entropy  # --device-entropy is recorded; the decoder follows it
    frames = list(decode_video(gvc, load_model_file(model_file)))
    assert [f.shape for f in frames] == [(3, 34, 66)] * 2
    png = tmp_path / "png"
    assert main(["decode", str(gvc), "-o", str(png), "--model", str(model_file), "-q"]) == 0
    assert sorted(p.name for p in png.iterdir()) == ["000000.png", "000001.png"]


def test_cli_errors_exit_2_with_a_message_and_no_traceback(tmp_path, model_file, capsys):
    torch.manual_seed(5)
    src = tmp_path / "v_64x64_30.yuv"
    write_yuv(src, [torch.rand(3, 64, 64)])
    gvc = tmp_path / "v.gvc"
    assert main(["encode", str(src), "-o", str(gvc), "--model", str(model_file), "-q"]) == 0
    other = tmp_path / "other.gvcm"
    save_model_file(other, IFrameCodec(**_smoke_iframe_kwargs()))  # another random init: another model id
    capsys.readouterr()

    def run_err(argv) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        return err

    err = run_err(["decode", str(gvc), "-o", str(tmp_path / "x.y4m"), "--model", str(other)])
    assert "made by model" in err and f"--model {other}" in err
    bad = tmp_path / "bad.gvc"
    data = bytearray(gvc.read_bytes())
    data[-10] ^= 0x10
    bad.write_bytes(bytes(data))
    assert "checksum mismatch" in run_err(["info", str(bad)])
    cut = tmp_path / "cut.gvc"
    cut.write_bytes(gvc.read_bytes()[:-7])
    assert "file ends after" in run_err(["info", str(cut)])
    assert "no such model file" in run_err(
        ["encode", str(src), "-o", str(gvc), "--model", str(tmp_path / "m")]
    )
    odd = tmp_path / "odd_65x64_30.yuv"
    odd.write_bytes(bytes(65 * 64 * 3 // 2))
    assert "odd" in run_err(["encode", str(odd), "-o", str(tmp_path / "o.gvc"), "--model", str(model_file)])
    assert not (tmp_path / "o.gvc").exists() and not (tmp_path / "o.gvc.part").exists()
    assert "no such bitstream file" in run_err(["info", str(tmp_path / "none.gvc")])


def test_encode_to_a_stream_decodes_frame_by_frame(tmp_path, model_file):
    """Low delay: encode into a non-seekable sink (frame count unknown in the header), decode from a file object."""
    import io

    class Sink(io.RawIOBase):
        def __init__(self):
            self.buf = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.buf += b
            return len(b)

    torch.manual_seed(6)
    src = tmp_path / "v_64x64_30.yuv"
    write_yuv(src, [torch.rand(3, 64, 64) for _ in range(2)])
    model = load_model_file(model_file)
    sink = Sink()
    stats = encode_video(src, model, sink)
    assert stats.file_bytes == len(sink.buf)
    video = decode_video(io.BytesIO(bytes(sink.buf)), model)
    assert video.header.frame_count is None
    frames = list(video)
    assert len(frames) == 2
    ref = list(decode_video(_write(tmp_path / "f.gvc", encode_video, src, model), model))
    assert all(torch.equal(a, b) for a, b in zip(frames, ref))


def _write(path, encode, src, model):
    encode(src, model, path)
    return path


def test_shift_for_frame_is_deterministic_and_spread():
    shifts = [shift_for_frame(i) for i in range(64)]
    assert shifts == [shift_for_frame(i) for i in range(64)]
    assert all(0 <= dy < 16 and 0 <= dx < 16 for dy, dx in shifts)
    assert len(set(shifts)) > 40  # successive frames get different offsets


@pytest.mark.ffmpeg
def test_video_codec_low_delay_gop_roundtrip(tmp_path, clip, capsys):
    """What this proves: with a (tiny, random) VideoCodec, `gvc encode --gop 3` codes I P P I, each P-frame
    predicted from the previous *decoded* frame with the shift derived from its index (stored in the packet);
    `gvc decode` reproduces the encoder's own reconstructions exactly (encoder and decoder in lock step), and a
    second encode gives the same bytes (the DIS flow estimator included)."""
    kw = _smoke_kwargs()
    torch.manual_seed(0)
    video = VideoCodec(IFrameCodec(**kw["iframe"]), PFrameCodec(**kw["pframe"]), kw["flow"])
    model_path = tmp_path / "video.gvcm"
    save_model_file(model_path, video)
    model = load_model_file(model_path)
    assert type(model) is VideoCodec
    a, b = tmp_path / "a.gvc", tmp_path / "b.gvc"
    args = ["--model", str(model_path), "--frames", "4", "--gop", "3", "-q"]
    assert main(["encode", str(clip), "-o", str(a), *args]) == 0
    assert main(["encode", str(clip), "-o", str(b), *args, "--no-estimate"]) == 0
    assert a.read_bytes() == b.read_bytes()
    header, packets = read_bitstream(a)
    assert header.gop == 3 and [p.frame_type for p in packets] == ["I", "P", "P", "I"]
    assert [p.shift for p in packets] == [(0, 0), model.shift_for_frame(1), model.shift_for_frame(2), (0, 0)]
    assert [len(p.strings) for p in packets] == [2, 4, 4, 2]

    # the encoder's reconstructions, frame by frame through the model's own API
    expected = []
    with open_video(clip) as r, torch.no_grad():
        ref = None
        for i in range(4):
            x = pad_frame(r.read_rgb(i)[None], 192, 192)
            out = model.compress_frame(x, None if i % 3 == 0 else ref, frame_index=i)
            ref = out.x_hat
            expected.append(ref[0, :, :144, :176])
    decoded = list(decode_video(a, model))
    assert len(decoded) == 4 and all(torch.equal(d, e) for d, e in zip(decoded, expected))
    y4m = tmp_path / "a.y4m"
    assert main(["decode", str(a), "-o", str(y4m), "--model", str(model_path), "-q"]) == 0
    with open_video(y4m) as r:
        np.testing.assert_array_equal(
            r.read_yuv(3).y, rgb_to_yuv420(expected[3], r.matrix, r.full_range)[0].numpy()
        )
    capsys.readouterr()
    assert main(["info", str(a)]) == 0
    assert "(2 I, 2 P)" in capsys.readouterr().out


def test_entropy_placement_ignores_the_thread_count():
    """What this proves: at the portable placement (the explicit argument the coder passes; CPU, float32, one
    thread) the hyperprior's means and scales (which select each symbol's CDF) are bit-identical whatever the
    caller's thread count, equal to the plain single-thread computation, and the model is left as it was."""
    torch.manual_seed(0)
    # a size where, on this project's CPUs, plain h_s gives different float32 results with 1, 2 and 3 threads
    bn = HyperpriorBottleneck(96, 96)
    z = torch.round(torch.randn(1, 96, 8, 12) * 4)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    with torch.no_grad():
        ref_means, ref_scales = bn.entropy_parameters(z)  # one thread: the module fixture's setting
        placement = entropy_placement(True)
        results = []
        n = torch.get_num_threads()
        try:
            for threads in (1, 2, 3):
                torch.set_num_threads(threads)
                results.append(bn.entropy_parameters(z, placement))
        finally:
            torch.set_num_threads(n)
    assert entropy_placement(False) is None
    assert "entropy_parameters" not in vars(bn)  # an argument, not a patch
    assert all(torch.equal(v, bn.state_dict()[k]) for k, v in before.items())
    for means, scales in results:
        assert torch.equal(means, ref_means) and torch.equal(scales, ref_scales)
    assert torch.get_num_threads() == n


def test_encode_under_one_setting_decode_under_another():
    """What this proves: with the same explicit placement for the hyper-synthesis, strings written by a float32
    model running 2 threads decode, in a float64 copy of it running 1 thread (another device's arithmetic), to
    exactly the encoder's latents, for the bare bottleneck and through the I-frame pipeline (EncodeLatents /
    DecodeLatents); the reconstructions then differ only at float rounding level."""
    from gvc.models.latents import DecodeLatents, EncodeLatents

    torch.manual_seed(1)
    codec = IFrameCodec(**{**_smoke_iframe_kwargs(), "channels": (8, 16)})
    codec.update(force=True)
    wide = copy.deepcopy(codec).double()
    x = torch.rand(1, 3, 64, 64)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            enc = codec.code(x, EncodeLatents(entropy_placement(True)))
            bn_enc = codec.bottleneck.compress(codec.g_a(x) * 3.0, placement=entropy_placement(True))
        torch.set_num_threads(1)
        with torch.no_grad():
            dec = wide.code(
                None, DecodeLatents.from_packet([""], enc.strings, enc.shapes, entropy_placement(True))
            )
            bn_dec = wide.bottleneck.decompress(
                bn_enc["strings"], bn_enc["shape"], placement=entropy_placement(True)
            )
    finally:
        torch.set_num_threads(n)
    assert dec.y_hat.dtype == torch.float64
    assert torch.equal(dec.y_hat.float(), enc.y_hat)
    assert torch.equal(bn_dec["y_hat"].float(), bn_enc["y_hat"])
    assert (dec.x_hat.float() - enc.x_hat).abs().max() < 1e-4


def test_top_level_cli_is_lazy(tmp_path):
    """`gvc info` and `gvc --help` import neither torch nor the training code; `prepare-clips` is dispatched to
    gvc.data.prepare only when chosen."""
    import subprocess
    import sys

    from gvc.codec.bitstream import FramePacket, StreamHeader, serialize

    path = tmp_path / "x.gvc"
    header = StreamHeader(bytes(16), 64, 64, 64, 64, 25, 1, frame_count=None, gop=1)
    path.write_bytes(serialize(header, [FramePacket("I", 0, (b"abc", b"d"), ((1, 1),))]))
    code = (
        "import sys; from gvc.cli import main; rc = main(sys.argv[1:]); "
        "print('LOADED', sorted(m for m in ('torch', 'lightning', 'hydra', 'gvc.training', 'gvc.data.prepare') "
        "if m in sys.modules)); sys.exit(rc)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "info", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr
    assert "total: 1 frames (1 I, 0 P)" in res.stdout and "LOADED []" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "gvc.cli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0 and all(
        c in res.stdout for c in ("encode", "decode", "info", "prepare-clips", "export")
    )
    res = subprocess.run(
        [sys.executable, "-m", "gvc.cli", "prepare-clips", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0 and "--frames" in res.stdout


def test_forged_latent_shapes_are_refused_before_decoding(tmp_path, model_file, monkeypatch):
    """A well-formed (CRC-consistent) packet declaring latent shapes that do not fit the coded frame size is
    refused before the model is called, so it cannot make the decoder allocate latents of a forged size."""
    from dataclasses import replace

    from gvc.codec.bitstream import serialize
    from gvc.errors import BitstreamError

    torch.manual_seed(7)
    src = tmp_path / "v_64x64_30.yuv"
    write_yuv(src, [torch.rand(3, 64, 64)])
    model = load_model_file(model_file)
    good = tmp_path / "good.gvc"
    encode_video(src, model, good)
    header, packets = read_bitstream(good)
    assert packets[0].shapes == ((1, 1),)
    forged = tmp_path / "forged.gvc"
    forged.write_bytes(serialize(header, [replace(packets[0], shapes=((4000, 4000),))]))

    def must_not_run(*a, **k):
        raise AssertionError("the model was called on a forged packet")

    monkeypatch.setattr(model, "decompress", must_not_run)
    with pytest.raises(
        BitstreamError, match=r"declares latent shapes \[\(4000, 4000\)\].*implies \[\(1, 1\)\]"
    ):
        list(decode_video(forged, model))
