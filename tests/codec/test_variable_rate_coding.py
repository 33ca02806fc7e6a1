"""One model file for every rate: `gvc encode --q Q` and `--bpp B` with a variable-rate codec, the level in every
packet (format version 2), and version-1 files (before the level existed) still decoding."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gvc.cli import main
from gvc.codec.bitstream import parse_bitstream, read_bitstream, serialize
from gvc.codec.coder import decode_video, encode_video, pad_frame
from gvc.codec.modelfile import load_model_file
from gvc.data import open_video, sample_clips
from gvc.errors import BitstreamError
from tests._training_helpers import variable_rate_model_file

FRAMES = 3


@pytest.fixture(scope="module")
def variable(tmp_path_factory) -> Path:
    return variable_rate_model_file(tmp_path_factory.mktemp("vr") / "vr.gvcm", levels=4)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    return variable_rate_model_file(tmp_path_factory.mktemp("sr") / "sr.gvcm", levels=0)


def _encode(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["encode", *args, "-q", "-y"])
    return code, capsys.readouterr().err


def test_q_is_written_per_frame_and_decodes_to_the_models_own_frames(tmp_path, variable, capsys):
    clip = sample_clips()["carphone_pristine"]
    model = load_model_file(variable)
    sizes = {}
    for q in (0.5, 2.75):
        out = tmp_path / f"q{q}.gvc"
        code, err = _encode([str(clip), "-o", str(out), "--model", str(variable), "--frames", str(FRAMES),
                             "--q", str(q)], capsys)  # fmt: skip
        assert code == 0, err
        header, packets = read_bitstream(out)
        assert header.version == 2 and [p.quality for p in packets] == [q] * FRAMES
        sizes[q] = out.stat().st_size
        decoded = list(decode_video(out, model))
        with open_video(clip) as r, torch.no_grad():
            for i, frame in enumerate(decoded):
                x = r.read_rgb(i)
                h, w = x.shape[-2:]
                c = model.compress(pad_frame(x[None], 192, 192), q=q)
                own = model.decompress(c["strings"], c["shape"], q=q)["x_hat"][0, :, :h, :w]
                assert torch.equal(frame, own), i
    assert sizes[2.75] > 1.1 * sizes[0.5]
    capsys.readouterr()
    assert main(["info", str(tmp_path / "q0.5.gvc"), "--json"]) == 0
    assert [f["quality"] for f in json.loads(capsys.readouterr().out)["per_frame"]] == [0.5] * FRAMES


def test_bpp_lands_within_3_percent_on_a_clip_the_model_never_saw(tmp_path, variable, capsys):
    clip = sample_clips()["bikes"]
    model = load_model_file(variable)
    ends = [encode_video(clip, model, tmp_path / f"end{q}.gvc", frames=FRAMES, quality=q).bpp for q in (0, 3)]
    for target in ((ends[0] * ends[1]) ** 0.5, 0.8 * ends[0] + 0.2 * ends[1]):
        out, stats = tmp_path / "b.gvc", tmp_path / "b.json"
        code, err = _encode([str(clip), "-o", str(out), "--model", str(variable), "--frames", str(FRAMES),
                             "--bpp", f"{target:.6f}", "--json", str(stats)], capsys)  # fmt: skip
        assert code == 0, err
        record = json.loads(stats.read_text())
        frames, pixels = record["num_frames"], record["width"] * record["height"]
        file_bpp = 8 * out.stat().st_size / (frames * pixels)
        assert abs(file_bpp / target - 1) <= 0.03, (file_bpp, target)
        assert record["rate_search"]["on_target"] and record["rate_search"]["file_bpp"] == pytest.approx(
            file_bpp
        )
        assert 0 < record["quality"] < 3
        # a clip shorter than the probe sample is written from the probe's packets: the bytes of an encode at q
        again = tmp_path / "again.gvc"
        with open_video(clip) as reader:  # read as the command reads it (the file's own colour convention)
            encode_video(reader, model, again, frames=FRAMES, quality=record["quality"])
        assert again.read_bytes() == out.read_bytes()
    # out of reach: one error line with the reachable range, exit status 2, no file
    missing = tmp_path / "none.gvc"
    code, err = _encode([str(clip), "-o", str(missing), "--model", str(variable), "--frames", "2",
                         "--bpp", f"{ends[0] / 4:.6f}"], capsys)  # fmt: skip
    assert code == 2 and err.startswith("error: --bpp") and "below what this model codes" in err
    assert len(err.strip().splitlines()) == 1 and not missing.exists()


def test_the_level_is_required_for_variable_and_refused_for_single_rate_models(
    tmp_path, variable, single, capsys
):
    clip = sample_clips()["carphone_pristine"]
    out = tmp_path / "x.gvc"
    code, err = _encode([str(clip), "-o", str(out), "--model", str(variable), "--frames", "1"], capsys)
    assert code == 2 and "codes 4 rate levels: choose one with --q" in err
    code, err = _encode(
        [str(clip), "-o", str(out), "--model", str(variable), "--frames", "1", "--q", "3.5"], capsys
    )
    assert code == 2 and "quality levels are 0 .. 3" in err
    for flag in (["--q", "1"], ["--bpp", "0.1"]):
        code, err = _encode(
            [str(clip), "-o", str(out), "--model", str(single), "--frames", "1", *flag], capsys
        )
        assert code == 2 and "one rate" in err
    assert not out.exists()


def test_version_1_files_decode_and_a_forged_level_is_refused(tmp_path, single):
    clip = sample_clips()["carphone_pristine"]
    model = load_model_file(single)
    v2 = tmp_path / "v2.gvc"
    encode_video(clip, model, v2, frames=FRAMES)
    header, packets = parse_bitstream(v2.read_bytes())
    assert header.version == 2 and all(p.quality is None for p in packets)
    v1 = tmp_path / "v1.gvc"  # the same stream as gvc wrote it before variable rate: no level field
    v1.write_bytes(serialize(replace(header, version=1), packets))
    assert v1.stat().st_size == v2.stat().st_size - 2 * FRAMES
    assert read_bitstream(v1)[0].version == 1
    for a, b in zip(decode_video(v1, model), decode_video(v2, model), strict=True):
        assert torch.equal(a, b)
    forged = tmp_path / "forged.gvc"
    forged.write_bytes(serialize(header, [replace(p, quality=1.0) for p in packets]))
    with pytest.raises(BitstreamError, match="quality level 1 for a model with no rate levels"):
        list(decode_video(forged, model))
