"""What a new user hits on the `gvc` command: every mistake is one `error:` line with exit status 2; outputs never
destroy inputs, need -y to replace a file, and are never left half-written; a normal command prints no warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc import config_dir
from gvc.cli import main
from gvc.codec.bitstream import FramePacket, StreamHeader, open_bitstream, serialize
from gvc.codec.coder import decode_video
from gvc.codec.modelfile import load_model_file, save_model_file
from gvc.data import write_png_dir, write_y4m
from gvc.errors import BitstreamError
from gvc.models.iframe import IFrameCodec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)
    kwargs = dict(cfg["iframe"])
    kwargs.pop("_target_")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "smoke.gvcm"
    save_model_file(path, IFrameCodec(**kwargs))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("src") / "clip.y4m"
    write_y4m(path, [torch.rand(3, 64, 64) for _ in range(3)], fps=25)
    return path


@pytest.fixture(scope="module")
def stream(tmp_path_factory, source, model_file) -> Path:
    path = tmp_path_factory.mktemp("gvc") / "clip.gvc"
    assert main(["encode", str(source), "-o", str(path), "--model", str(model_file), "-q"]) == 0
    return path


def _one_error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def test_output_equal_to_an_input_is_refused_and_the_input_survives(
    tmp_path, source, stream, model_file, capsys
):
    src = tmp_path / "x.y4m"
    src.write_bytes(source.read_bytes())
    before = src.read_bytes()
    err = _one_error_line(capsys, ["encode", str(src), "-o", str(src), "--model", str(model_file), "-y"])
    assert "is the input video" in err
    assert src.read_bytes() == before
    # the same file under another spelling of the path, and the model file, are inputs too
    err = _one_error_line(
        capsys, ["encode", str(src), "-o", str(tmp_path / "." / "x.y4m"), "--model", str(model_file), "-y"]
    )
    assert "is the input video" in err
    err = _one_error_line(
        capsys, ["decode", str(stream), "-o", str(model_file), "--model", str(model_file), "-y"]
    )
    assert "is the model file" in err
    assert load_model_file(model_file) is not None


def test_existing_output_needs_y(tmp_path, source, stream, model_file, capsys):
    out = tmp_path / "a.gvc"
    out.write_bytes(b"keep me")
    err = _one_error_line(capsys, ["encode", str(source), "-o", str(out), "--model", str(model_file), "-q"])
    assert "exists; add -y" in err and out.read_bytes() == b"keep me"
    assert main(["encode", str(source), "-o", str(out), "--model", str(model_file), "-q", "-y"]) == 0
    assert out.read_bytes() == stream.read_bytes()

    dec = tmp_path / "d.y4m"
    dec.write_bytes(b"keep me too")
    err = _one_error_line(capsys, ["decode", str(stream), "-o", str(dec), "--model", str(model_file), "-q"])
    assert "exists; add -y" in err and dec.read_bytes() == b"keep me too"
    assert main(["decode", str(stream), "-o", str(dec), "--model", str(model_file), "-q", "-y"]) == 0
    assert dec.read_bytes().startswith(b"YUV4MPEG2 W64 H64")


def test_failed_decode_leaves_no_partial_output(tmp_path, stream, model_file, capsys):
    bad = tmp_path / "bad.gvc"
    data = bytearray(stream.read_bytes())
    data[-10] ^= 0x10  # corrupt the last frame's packet
    bad.write_bytes(bytes(data))
    # the decoder really yields frames before it fails: an output file would get them
    got = []
    with pytest.raises(BitstreamError):
        for f in decode_video(bad, load_model_file(model_file)):
            got.append(f)
    assert len(got) == 2
    for name in ("out.y4m", "out.mp4", "pngs"):
        out = tmp_path / name
        err = _one_error_line(capsys, ["decode", str(bad), "-o", str(out), "--model", str(model_file), "-q"])
        assert "checksum" in err
        assert not out.exists() and _leftovers(tmp_path) == [], (name, list(tmp_path.iterdir()))
    # with -y an existing output is kept as it was when the decode fails
    old = tmp_path / "old.y4m"
    old.write_bytes(b"previous result")
    _one_error_line(capsys, ["decode", str(bad), "-o", str(old), "--model", str(model_file), "-q", "-y"])
    assert old.read_bytes() == b"previous result" and _leftovers(tmp_path) == []


def test_raw_decode_output_is_named_with_size_and_fps(tmp_path, stream, model_file, capsys):
    assert (
        main(["decode", str(stream), "-o", str(tmp_path / "rec.yuv"), "--model", str(model_file), "-q"]) == 0
    )
    assert (tmp_path / "rec_64x64_25.yuv").stat().st_size == 3 * 64 * 64 * 3 // 2
    assert not (tmp_path / "rec.yuv").exists()
    assert "rec_64x64_25.yuv: 3 frames" in capsys.readouterr().out


def test_output_under_a_file_is_one_error_line(tmp_path, source, stream, model_file, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _one_error_line(
        capsys,
        ["encode", str(source), "-o", str(blocker / "sub" / "a.gvc"), "--model", str(model_file), "-q"],
    )
    assert f"{blocker} is a file" in err
    err = _one_error_line(
        capsys, ["decode", str(stream), "-o", str(blocker / "a.y4m"), "--model", str(model_file), "-q"]
    )
    assert f"{blocker} is a file" in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["encode"], "the following arguments are required"),
        (["encode", "a.y4m", "-o", "b.gvc", "--model", "m.gvcm", "--gop", "x"], "invalid int value"),
        (["nonsense"], "invalid choice"),
        (["info", "/no/such.gvc"], "no such bitstream file"),
    ],
)
def test_usage_errors_are_one_line(argv, needle, capsys):
    assert needle in _one_error_line(capsys, argv)


def _big_stream(path: Path, frames: int = 4000) -> Path:
    header = StreamHeader(bytes(16), 64, 64, 64, 64, 25, 1, frame_count=None, gop=1)
    packets = [FramePacket("I", i, (b"abc", b"d"), ((1, 1),)) for i in range(frames)]
    path.write_bytes(serialize(header, packets))
    return path


def _closed_pipe(argv: list[str]) -> tuple[bytes, str, int]:
    """Run `gvc ARGV | head -1`: the first line of stdout, stderr and the exit status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gvc.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return first, err, proc.wait(timeout=300)


def test_a_closed_pipe_after_complete_work_is_not_an_error(tmp_path, source, model_file):
    """`gvc info x.gvc | head -1`, `gvc info --json ... | head -1` and `gvc encode ... | head -1` did all their
    work: exit status 0 and nothing on stderr (they used to end with "error: ... broken pipe", status 2)."""
    path = _big_stream(tmp_path / "big.gvc")  # ~200 kB of table: more than a pipe holds
    first, err, rc = _closed_pipe(["info", str(path)])
    assert b"gvc bitstream" in first and (rc, err) == (0, ""), (rc, err)
    first, err, rc = _closed_pipe(["info", "--json", str(path)])
    assert first.strip() == b"{" and (rc, err) == (0, ""), (rc, err)
    out, stats = tmp_path / "e.gvc", tmp_path / "e.json"
    argv = ["encode", str(source), "-o", str(out), "--model", str(model_file), "-q", "--json", str(stats)]
    first, err, rc = _closed_pipe(argv)
    assert b"3 frames" in first and (rc, err) == (0, ""), (rc, err)
    assert out.stat().st_size > 0 and json.loads(stats.read_text())["num_frames"] == 3  # the work is complete


def test_a_normal_command_prints_no_warning(tmp_path, source, model_file):
    res = subprocess.run(
        [sys.executable, "-m", "gvc.cli", "encode", str(source), "-o", str(tmp_path / "w.gvc")]
        + ["--model", str(model_file), "-q", "--no-estimate"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert "bpp" in res.stdout


def test_failed_encode_leaves_no_partial_output(tmp_path, model_file, capsys):
    frames = tmp_path / "frames"
    write_png_dir(frames, torch.rand(3, 3, 64, 64))
    (frames / "000002.png").write_bytes(b"not a png")  # the third frame fails after two are coded
    out = tmp_path / "out" / "a.gvc"
    err = _one_error_line(capsys, ["encode", str(frames), "-o", str(out), "--model", str(model_file), "-q"])
    assert "000002.png" in err and "cannot read" in err
    assert not (tmp_path / "out").exists()  # the folder the command created is removed with the partial file


def test_missing_output_folders_are_removed_when_the_command_fails(tmp_path, stream, model_file, capsys):
    """`-o new/sub/out.y4m` creates new/sub; a decode that fails (or is interrupted) removes them again."""
    bad = tmp_path / "bad.gvc"
    data = bytearray(stream.read_bytes())
    data[-10] ^= 0x10
    bad.write_bytes(bytes(data))
    out = tmp_path / "new" / "sub" / "out.y4m"
    _one_error_line(capsys, ["decode", str(bad), "-o", str(out), "--model", str(model_file), "-q"])
    assert not (tmp_path / "new").exists()
    assert main(["decode", str(stream), "-o", str(out), "--model", str(model_file), "-q"]) == 0
    assert out.is_file()  # a command that succeeds keeps the folders it made


def _checkpoint(tmp_path: Path) -> Path:
    """A gvc training checkpoint as training writes it: the codec's weights under a prefix, and how to rebuild
    it (gvc.export: class path, config, prefix, training record)."""
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)
    kwargs = dict(cfg["iframe"])
    kwargs.pop("_target_")
    torch.manual_seed(0)
    codec = IFrameCodec(**kwargs)
    record = {
        "stage": "smoke_iframe",
        "step": 5,
        "quantization": {"mode": "noise", "params": {}, "config": {"mode": "noise"}},
        "objective": {
            "loss": {"C": 0.003125, "C_D": 0.75, "C_P": 0.15, "w_lpips": 1.0, "gan": True},
            "lambda_R": 2.5,
            "target_bpp": 0.13,
            "rate_controller": {},
            "perceptual": {"_target_": "gvc.losses.STLPIPSLoss", "net": "alex"},
        },
    }
    spec = {
        "class_path": "gvc.models.iframe.IFrameCodec",
        "config": kwargs,
        "prefix": "codec.",
        "training": record,
    }
    path = tmp_path / "ck.ckpt"
    state = {f"codec.{k}": v for k, v in codec.state_dict().items()}
    torch.save({"gvc": {"export": spec}, "state_dict": state, "epoch": 0}, path)
    return path


def test_export_never_writes_onto_its_checkpoint_and_needs_y(tmp_path, capsys):
    """`gvc export ck.ckpt -o ck.ckpt` used to replace the checkpoint with a model file; an existing output was
    overwritten silently."""
    ckpt = _checkpoint(tmp_path)
    before = ckpt.read_bytes()
    err = _one_error_line(capsys, ["export", str(ckpt), "-o", str(ckpt)])
    assert "is the checkpoint" in err and ckpt.read_bytes() == before
    err = _one_error_line(capsys, ["export", str(ckpt), "-o", str(ckpt), "-y"])
    assert "is the checkpoint" in err and ckpt.read_bytes() == before
    out = tmp_path / "m.gvcm"
    out.write_bytes(b"keep me")
    err = _one_error_line(capsys, ["export", str(ckpt), "-o", str(out)])
    assert "exists; add -y" in err and out.read_bytes() == b"keep me"
    assert main(["export", str(ckpt), "-o", str(out), "-y"]) == 0
    printed = capsys.readouterr().out
    assert load_model_file(out).gvc_training["step"] == 5
    # what the README says it prints: the training record with the loss weights and the perceptual loss
    assert "lambda_R 2.5" in printed and "w_lpips=1" in printed and "STLPIPSLoss(net=alex)" in printed
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_export_write_failure_is_one_error_line(tmp_path, capsys):
    """A model file that cannot be written (here a folder where the temporary file goes) used to end in a
    traceback with status 1 (torch.save raises RuntimeError, not OSError)."""
    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "m.gvcm"
    (tmp_path / "m.gvcm.tmp").mkdir()
    err = _one_error_line(capsys, ["export", str(ckpt), "-o", str(out)])
    assert "cannot write the model file" in err and not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_export_into_a_read_only_folder_is_one_error_line(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        err = _one_error_line(capsys, ["export", str(ckpt), "-o", str(ro / "m.gvcm")])
    finally:
        ro.chmod(0o755)
    assert "not writable" in err


@pytest.mark.parametrize("device", ["cuda", "mps", "meta", "cuda:7"])
def test_an_unavailable_device_is_one_error_line(device, tmp_path, source, stream, model_file, capsys):
    """`--device cuda` (mps, meta) on a machine without one used to be a traceback with status 1."""
    torch_dev = torch.device(device)
    if torch_dev.type == "cuda" and torch.cuda.device_count() > (torch_dev.index or 0):
        pytest.skip("this machine has that device")
    if torch_dev.type == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has that device")
    out = tmp_path / "new" / "a.gvc"
    err = _one_error_line(
        capsys, ["encode", str(source), "-o", str(out), "--model", str(model_file), "--device", device]
    )
    assert f"--device '{device}'" in err and "devices on this machine: cpu" in err, err
    err = _one_error_line(
        capsys,
        [
            "decode",
            str(stream),
            "-o",
            str(tmp_path / "d.y4m"),
            "--model",
            str(model_file),
            "--device",
            device,
        ],
    )
    assert "devices on this machine: cpu" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_with_an_unavailable_device_is_one_error_line_and_writes_nothing(
    tmp_path, source, model_file
):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "eval"
    res = subprocess.run(
        [sys.executable, "evaluate.py", f"videos=[{source}]", f"models=[{model_file}]", "frames=2"]
        + [f"output_dir={out}", "device=cuda"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: device 'cuda'") and res.stderr.count("\n") == 1, res.stderr
    assert "devices on this machine: cpu" in res.stderr
    assert not out.exists()


def test_model_errors_say_what_the_file_is(tmp_path, stream, source, capsys):
    """A .gvc stream, a text file, a training checkpoint or a folder given as --model: the error names what it is
    and what a model file is, never PyTorch's weights_only advice or a bare "(101)"."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    cases = {
        stream: "is a .gvc bitstream",
        text: "is a text file",
        _checkpoint(tmp_path): "is a gvc training checkpoint (`gvc export",
        tmp_path: "is a folder",
    }
    for path, needle in cases.items():
        err = _one_error_line(
            capsys, ["encode", str(source), "-o", str(tmp_path / "x.gvc"), "--model", str(path)]
        )
        assert needle in err and "a model file is the .gvcm" in err, err
        assert "weights_only" not in err and "(101)" not in err, err


def test_a_folder_given_as_the_stream_is_named_a_folder(tmp_path, model_file, capsys):
    err = _one_error_line(capsys, ["info", str(tmp_path)])
    assert f"{tmp_path} is a folder" in err and "no such" not in err
    err = _one_error_line(
        capsys, ["decode", str(tmp_path), "-o", str(tmp_path / "o.y4m"), "--model", str(model_file)]
    )
    assert f"{tmp_path} is a folder" in err


@pytest.mark.parametrize("fps", ["0", "-25", "nan"])
def test_fps_must_be_positive(fps, tmp_path, model_file, capsys):
    """--fps 0 used to be ignored silently."""
    raw = tmp_path / "clip_64x64.yuv"
    raw.write_bytes(bytes(64 * 64 * 3 // 2 * 2))
    err = _one_error_line(
        capsys, ["encode", str(raw), "-o", str(tmp_path / "a.gvc"), "--model", str(model_file), "--fps", fps]
    )
    assert "--fps must be a positive number" in err
    assert not (tmp_path / "a.gvc").exists()


def _retagged_round_trip(tmp_path, model_file, capsys, default: bytes, tag: bytes, seed: int):
    """Write a 2-frame Y4M whose header holds `default`, retag it as `tag`, encode and decode it. Returns (the
    decoded Y4M's header line, `gvc info --json` of the stream, how many bytes larger the stream is than the
    untagged source's)."""
    torch.manual_seed(seed)
    write_y4m(tmp_path / "plain.y4m", [torch.rand(3, 64, 64) for _ in range(2)], fps=25)
    head, body = (tmp_path / "plain.y4m").read_bytes().split(b"\n", 1)
    assert default in head
    src = tmp_path / "tagged.y4m"
    src.write_bytes(head.replace(default, tag) + b"\n" + body)
    stream, out = tmp_path / "tagged.gvc", tmp_path / "back.y4m"
    assert main(["encode", str(src), "-o", str(stream), "--model", str(model_file), "-q"]) == 0
    assert main(["decode", str(stream), "-o", str(out), "--model", str(model_file), "-q"]) == 0
    capsys.readouterr()
    assert main(["info", "--json", str(stream)]) == 0
    info = json.loads(capsys.readouterr().out)
    plain = tmp_path / "plain.gvc"
    assert (
        main(["encode", str(tmp_path / "plain.y4m"), "-o", str(plain), "--model", str(model_file), "-q"]) == 0
    )
    return out.read_bytes().split(b"\n", 1)[0], info, stream.stat().st_size - plain.stat().st_size


def test_a_decoded_y4m_keeps_the_pixel_aspect_ratio(tmp_path, model_file, capsys):
    """A Y4M with A128:117 (PAL 4:3 from 704x576) used to come back as A1:1."""
    head, info, extra_bytes = _retagged_round_trip(tmp_path, model_file, capsys, b" A1:1 ", b" A128:117 ", 3)
    assert b" A128:117 " in head
    assert info["sample_aspect"] == [128, 117]
    # a square-pixel source writes the header it always did (no aspect field): same bytes as before
    assert extra_bytes == 4


def test_printed_size_and_bpp_count_the_aspect_field(tmp_path, model_file, capsys):
    """A Y4M with a pixel aspect ratio (A128:117) puts 4 more bytes in the header; `gvc encode` printed the size
    (and bpp, --json, the estimate-vs-file percentage) without them."""
    torch.manual_seed(4)
    write_y4m(tmp_path / "plain.y4m", [torch.rand(3, 64, 64) for _ in range(2)], fps=25)
    head, body = (tmp_path / "plain.y4m").read_bytes().split(b"\n", 1)
    src = tmp_path / "pal.y4m"
    src.write_bytes(head.replace(b" A1:1 ", b" A128:117 ") + b"\n" + body)
    out, stats = tmp_path / "pal.gvc", tmp_path / "pal.json"
    capsys.readouterr()
    assert (
        main(["encode", str(src), "-o", str(out), "--model", str(model_file), "-q", "--json", str(stats)])
        == 0
    )
    printed = capsys.readouterr().out
    size = out.stat().st_size
    assert f"{size} bytes" in printed, (size, printed)
    assert f"bpp {8 * size / (2 * 64 * 64):.5f} (file size)" in printed, printed
    record = json.loads(stats.read_text())
    assert record["file_bytes"] == size and record["bpp"] == 8 * size / (2 * 64 * 64)
    assert record["container_bytes"] == size - record["payload_bytes"]
    est = record["estimated_bits"]
    assert f"vs file {8 * size} bits: {100 * (8 * size - est) / est:+.2f}%" in printed, printed


def test_sigterm_mid_encode_leaves_nothing_behind(tmp_path, model_file):
    """`timeout`, batch schedulers and container stops send SIGTERM: like Ctrl-C, the partial `.part` file and the
    folder the command created go (they used to stay)."""
    import signal
    import time

    torch.manual_seed(5)
    src = tmp_path / "long.y4m"
    write_y4m(src, [torch.rand(3, 64, 64) for _ in range(600)], fps=25)
    out = tmp_path / "new" / "a.gvc"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gvc.cli",
            "encode",
            str(src),
            "-o",
            str(out),
            "--model",
            str(model_file),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    part = Path(str(out) + ".part")
    deadline = time.monotonic() + 120
    while not part.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert part.exists(), proc.communicate()
    time.sleep(0.2)  # a few frames into the encode
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err.decode(), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.y4m"]


def test_export_of_a_non_checkpoint_says_what_the_file_is(tmp_path, stream, model_file, capsys):
    """`gvc export x.gvc` leaked PyTorch's weights_only advice ("arbitrary code execution"); a model file given
    to export is named as one."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    for path, needle in ((stream, "is a .gvc bitstream"), (text, "is a text file")):
        err = _one_error_line(capsys, ["export", str(path), "-o", str(tmp_path / "m.gvcm")])
        assert needle in err and "not a gvc training checkpoint" in err and "checkpoints/last.ckpt" in err, (
            err
        )
        assert "weights_only" not in err and "arbitrary code" not in err, err
    err = _one_error_line(capsys, ["export", str(model_file), "-o", str(tmp_path / "m.gvcm")])
    assert "is already a gvc model file" in err, err
    assert not (tmp_path / "m.gvcm").exists()


def test_converted_inputs_are_said_once(tmp_path, model_file):
    """A gray or 16-bit PNG folder (and a 4:4:4 or 10-bit video) was converted without a word; a plain 8-bit RGB
    source still prints nothing on stderr."""
    import cv2
    import numpy as np

    frames = tmp_path / "gray16"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i:06d}.png"), np.full((64, 64), 1000 * (i + 1), np.uint16))
    res = subprocess.run(
        [sys.executable, "-m", "gvc.cli", "encode", str(frames), "-o", str(tmp_path / "g.gvc")]
        + ["--model", str(model_file), "-q", "--no-estimate"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if line]
    assert len(notes) == 1 and notes[0].startswith(f"note: {frames}:"), res.stderr
    assert "16-bit" in notes[0] and "gray" in notes[0], notes


@pytest.mark.ffmpeg
@pytest.mark.parametrize("pix_fmt", ["yuv444p", "gray", "yuv420p10le"])
def test_converted_videos_are_said_once(pix_fmt, tmp_path):
    import imageio_ffmpeg

    from gvc.data import open_video

    src = tmp_path / f"{pix_fmt}.mkv"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=25"]
        + ["-frames:v", "2", "-c:v", "ffv1", "-pix_fmt", pix_fmt, str(src)],
        check=True,
        timeout=120,
    )
    with open_video(src) as r:
        assert r.conversion is not None and pix_fmt in r.conversion and "4:2:0" in r.conversion


def test_json_given_the_input_names_json_not_o(tmp_path, source, model_file, capsys):
    """`gvc encode --json in.y4m ...` took the video as --json's file and then blamed the missing input or -o."""
    err = _one_error_line(
        capsys, ["encode", "--json", str(source), "-o", str(tmp_path / "a.gvc"), "--model", str(model_file)]
    )
    assert "--json" in err and "looks like a video" in err and "--json stats.json" in err, err
    assert "-o/--output" not in err and list(tmp_path.iterdir()) == []


def test_output_to_stdout_is_refused(tmp_path, source, stream, model_file, capsys, monkeypatch):
    """`gvc decode -o -` wrote a PNG folder named `-`."""
    monkeypatch.chdir(tmp_path)
    err = _one_error_line(capsys, ["decode", str(stream), "-o", "-", "--model", str(model_file), "-q"])
    assert "-o -: writing to standard output is not supported" in err
    err = _one_error_line(capsys, ["encode", str(source), "-o", "-", "--model", str(model_file), "-q"])
    assert "standard output" in err
    assert list(tmp_path.iterdir()) == []


def test_refine_lr_help_prints_the_number(capsys):
    from gvc.codec.cli import REFINE_LR_DEFAULT
    from gvc.codec.refine import DEFAULT_LR

    assert REFINE_LR_DEFAULT == DEFAULT_LR
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_LR:g})" in help_text and "DEFAULT_LR" not in help_text, help_text


def read_header(path: Path) -> StreamHeader:
    with open_bitstream(path) as r:
        return r.header


def test_a_header_only_file_says_so(tmp_path, stream, capsys):
    """A file cut right after its header reported "file ends after frame -1"."""
    header_only = tmp_path / "h.gvc"
    header_only.write_bytes(stream.read_bytes()[: len(read_header(stream).to_bytes())])
    err = _one_error_line(capsys, ["info", str(header_only)])
    assert "ends after its header (0 of 3 frames" in err and "frame -1" not in err, err


def test_a_truncated_stream_names_its_intact_frames_and_partial_writes_them(
    tmp_path, stream, model_file, capsys
):
    """A stream cut inside its last frame decoded nothing and did not say that its first frames are intact."""
    cut = tmp_path / "cut.gvc"
    cut.write_bytes(stream.read_bytes()[:-20])
    out = tmp_path / "out.y4m"
    err = _one_error_line(capsys, ["decode", str(cut), "-o", str(out), "--model", str(model_file), "-q"])
    assert "frames 0-1 are intact: add --partial" in err, err
    assert not out.exists()
    assert main(["decode", str(cut), "-o", str(out), "--model", str(model_file), "-q", "--partial"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "wrote the 2 intact frames" in err, err
    assert out.read_bytes().count(b"FRAME\n") == 2


def test_a_decoded_y4m_keeps_the_chroma_tag(tmp_path, model_file, capsys):
    """A C420mpeg2 Y4M (left-sited chroma, what ffmpeg writes for most video) came back tagged C420jpeg."""
    head, info, extra_bytes = _retagged_round_trip(
        tmp_path, model_file, capsys, b" C420jpeg", b" C420mpeg2", 6
    )
    assert b" C420mpeg2" in head
    assert info["chroma_tag"] == "420mpeg2"
    # the default tag (C420jpeg) writes the header it always did: one byte less
    assert extra_bytes == 1
