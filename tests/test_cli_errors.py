"""What a new user hits on the `gvc` command: every mistake is one `error:` line with exit status 2; outputs never
destroy inputs, need -y to replace a file, and are never left half-written; a normal command prints no warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc.cli import main
from gvc.codec.bitstream import FramePacket, StreamHeader, serialize
from gvc.codec.coder import decode_video
from gvc.codec.modelfile import load_model_file, save_model_file
from gvc.data import write_png_dir, write_y4m
from gvc.errors import BitstreamError
from gvc.models.iframe import IFrameCodec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "smoke.yaml"), resolve=True)
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


def test_info_into_a_closed_pipe_is_one_error_line(tmp_path):
    path = _big_stream(tmp_path / "big.gvc")  # ~200 kB of table: more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "gvc.cli", "info", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=60)
    assert b"gvc bitstream" in first
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "broken pipe" in err, (rc, err)


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
    assert list((tmp_path / "out").iterdir()) == []
