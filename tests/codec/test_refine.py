"""Encode-time latent refinement (`gvc encode --refine-steps N`, gvc.codec.refine): the objective of every frame
does not rise and usually falls, bits and distortion are reported before and after, the file decodes with the
unchanged decoder to what the refiner measured, the bytes are deterministic, and the CLI reports and refuses
what it should. A tiny random-init VideoCodec (conf/model/smoke.yaml) on the real carphone clip."""

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc import config_dir
from gvc.cli import main
from gvc.codec.coder import decode_video, encode_video
from gvc.codec.modelfile import load_model_file, read_model_file, save_model_file
from gvc.codec.refine import REPORTED, LatentRefiner, targets_from_record
from gvc.data import open_video, sample_clips
from gvc.errors import GVCError
from gvc.models.video import VideoCodec

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 3
STEPS = 4


def _loss_cfg(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(config_dir() / "loss" / f"{name}.yaml"))


def _record(lambda_r: float = 2.0) -> dict:
    """A stage-2 training record as `gvc export` writes it (MSE loss: no perceptual network needed)."""
    objective = {"loss": _loss_cfg("mse"), "lambda_R": lambda_r, "perceptual": None, "target_bpp": 0.1}
    return {
        "stage": "pframe",
        "step": 10,
        "quantization": {"mode": "noise", "params": {}, "config": {"mode": "noise"}},
        "objective": objective,
        "iframe": {"stage": "iframe", "step": 20, "objective": dict(objective)},
    }


@pytest.fixture(scope="module")
def model() -> VideoCodec:
    torch.manual_seed(0)
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)
    m = VideoCodec(cfg["iframe"], cfg["pframe"], {**cfg["flow"], "preset": "fast"})
    m.pframe.init_from_iframe(m.iframe)
    m.eval().requires_grad_(False)
    m.update(force=True)
    return m


@pytest.fixture(scope="module")
def clip() -> Path:
    return sample_clips()["carphone_pristine"]


@pytest.fixture(scope="module")
def refined(model, clip, tmp_path_factory):
    """(path, stats) of the clip encoded with STEPS refinement steps."""
    path = tmp_path_factory.mktemp("refine") / "r.gvc"
    refiner = LatentRefiner(STEPS, targets_from_record(_record(), video=True), lr=0.05)
    with open_video(clip) as reader:  # the source's own colour convention, as the sources below
        return path, encode_video(reader, model, path, frames=FRAMES, refiner=refiner)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return 10 * math.log10(1.0 / mse)


def test_every_frame_reports_before_and_after_and_its_objective_does_not_rise(refined):
    _, stats = refined
    assert [f.frame_type for f in stats.frames] == ["I", "P", "P"]
    for f in stats.frames:
        r = f.refine
        assert r is not None and r["steps"] == STEPS and 0 <= r["best_step"] <= STEPS
        for side in ("before", "after"):
            assert set(r[side]) == set(REPORTED)
            assert all(math.isfinite(r[side][k]) for k in REPORTED)
        assert r["after"]["loss"] <= r["before"]["loss"]
        if r["best_step"] == 0:
            assert r["after"] == r["before"]
    # gradient steps on the latents lower the objective of at least the I-frame and one P-frame
    assert stats.frames[0].refine["after"]["loss"] < stats.frames[0].refine["before"]["loss"]
    assert any(f.refine["after"]["loss"] < f.refine["before"]["loss"] for f in stats.frames[1:])


def test_the_unchanged_decoder_reads_what_the_refiner_measured(refined, model, clip, tmp_path):
    path, stats = refined
    decoded = list(decode_video(path, model))
    with open_video(clip) as r:
        sources = [r.read_rgb(i)[None] for i in range(FRAMES)]
    for f, x_hat, x in zip(stats.frames, decoded, sources, strict=True):
        # PSNR of the decoded frame is the one the refiner chose; its bits are the estimate of the coded pass
        assert _psnr(x_hat, x) == pytest.approx(f.refine["after"]["psnr"], abs=0.02)
        assert f.estimated_bits == pytest.approx(f.refine["after"]["bits"], rel=1e-3)
    plain = tmp_path / "plain.gvc"
    with open_video(clip) as reader:
        encode_video(reader, model, plain, frames=FRAMES)
    assert plain.read_bytes() != path.read_bytes()  # the refined latents are different symbols
    assert len(list(decode_video(plain, model))) == FRAMES


def test_refinement_is_deterministic(refined, model, clip, tmp_path):
    path, stats = refined
    again = tmp_path / "again.gvc"
    refiner = LatentRefiner(STEPS, targets_from_record(_record(), video=True), lr=0.05)
    with open_video(clip) as reader:
        stats2 = encode_video(reader, model, again, frames=FRAMES, refiner=refiner)
    assert again.read_bytes() == path.read_bytes()
    assert [f.refine for f in stats2.frames] == [f.refine for f in stats.frames]


def test_a_larger_lambda_refines_towards_fewer_bits(model, clip, tmp_path):
    """lambda_R weighs the rate: refined with a large lambda_R the frames cost fewer bits than refined with a
    small one (the same encoder latents to start from)."""
    bits = {}
    for lam in (0.05, 50.0):
        refiner = LatentRefiner(STEPS, targets_from_record(_record(lam), video=True), lr=0.05)
        stats = encode_video(clip, model, tmp_path / f"l{lam}.gvc", frames=1, refiner=refiner)
        bits[lam] = stats.frames[0].refine["after"]["bits"]
    assert bits[50.0] < bits[0.05]


def test_hold_keeps_every_frame_within_its_bits_and_lowers_distortion(model, clip, tmp_path):
    """rate="hold" with a lambda_R so small that the objective would buy many more bits: no frame costs more
    than the encoder's latents, its distortion does not rise, and the file's bits follow."""
    cheap = _record(lambda_r=1e-3)
    free = LatentRefiner(STEPS, targets_from_record(cheap, video=True), lr=0.05)
    held = LatentRefiner(STEPS, targets_from_record(cheap, video=True), lr=0.01, rate="hold")
    with open_video(clip) as reader:
        spent = encode_video(reader, model, tmp_path / "free.gvc", frames=2, refiner=free)
    with open_video(clip) as reader:
        kept = encode_video(reader, model, tmp_path / "hold.gvc", frames=2, refiner=held)
    assert spent.frames[0].refine["after"]["bits"] > 1.05 * spent.frames[0].refine["before"]["bits"]
    for f in kept.frames:
        r = f.refine
        assert r["after"]["bits"] <= r["before"]["bits"]
        assert r["after"]["distortion"] <= r["before"]["distortion"]
        assert f.estimated_bits == pytest.approx(r["after"]["bits"], rel=1e-3)
    assert kept.frames[0].refine["after"]["distortion"] < kept.frames[0].refine["before"]["distortion"]
    assert kept.frames[0].refine["lambda_r"] > 1e-3  # raised after the first overspending step


def test_an_intra_only_model_refines_every_frame(model, clip, tmp_path):
    """An IFrameCodec with its stage-1 record: every frame refined, decoded by the unchanged decoder."""
    intra = model.iframe
    record = _record()["iframe"]
    refiner = LatentRefiner(STEPS, targets_from_record(record, video=False), lr=0.05)
    path = tmp_path / "intra.gvc"
    with open_video(clip) as reader:
        stats = encode_video(reader, intra, path, frames=2, refiner=refiner)
        sources = [reader.read_rgb(i)[None] for i in range(2)]
    assert [f.frame_type for f in stats.frames] == ["I", "I"]
    for f, x_hat, x in zip(stats.frames, decode_video(path, intra), sources, strict=True):
        assert f.refine["after"]["loss"] < f.refine["before"]["loss"]
        assert _psnr(x_hat, x) == pytest.approx(f.refine["after"]["psnr"], abs=0.02)


def test_targets_need_a_training_record():
    with pytest.raises(GVCError, match="no training record"):
        targets_from_record({}, video=True)
    with pytest.raises(GVCError, match="lambda_R"):
        targets_from_record({**_record(), "objective": {**_record()["objective"], "lambda_R": -1}}, True)
    t = targets_from_record({k: v for k, v in _record().items() if k != "iframe"}, video=True)
    assert set(t) == {"P"}  # I-frames are then coded unrefined
    with pytest.raises(GVCError, match="refine-steps"):
        LatentRefiner(-1, t)


def test_model_file_keeps_the_training_record_outside_the_model_id(model, tmp_path):
    a, b = tmp_path / "a.gvcm", tmp_path / "b.gvcm"
    mid_a = save_model_file(a, model, training=_record())
    mid_b = save_model_file(b, model)
    assert mid_a == mid_b  # the record does not change what decodes
    assert read_model_file(a)["training"] == _record()
    assert read_model_file(b)["training"] == {}
    assert load_model_file(a).gvc_training == _record()


def test_cli_refines_reports_and_refuses_a_model_without_record(model, clip, tmp_path, capsys):
    with_record, without = tmp_path / "m.gvcm", tmp_path / "plain.gvcm"
    save_model_file(with_record, model, training=_record())
    save_model_file(without, model)
    out, js = tmp_path / "o.gvc", tmp_path / "o.json"
    args = ["encode", str(clip), "-o", str(out), "--frames", "2", "--refine-steps", "2", "-q"]
    assert main([*args, "--model", str(with_record), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "refinement total" in text and "->" in text
    frames = json.loads(js.read_text())["frames"]
    assert [f["refine"]["steps"] for f in frames] == [2, 2]
    decoded = tmp_path / "d.y4m"
    assert main(["decode", str(out), "-o", str(decoded), "--model", str(with_record), "-q"]) == 0
    with open_video(decoded) as r:
        assert len(r) == 2
    kept = out.read_bytes()
    assert main([*args, "-y", "--model", str(without)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "training record" in err[0]
    assert main([*args, "-y", "--model", str(with_record), "--refine-lr", "0"]) == 2
    assert "refine-lr" in capsys.readouterr().err
    assert out.read_bytes() == kept  # a refused command loses nothing
    assert main([*args, "-y", "--model", str(with_record), "--refine-rate", "hold", "--json", str(js)]) == 0
    assert "rate hold" in capsys.readouterr().out
    assert all(
        f["refine"]["after"]["bits"] <= f["refine"]["before"]["bits"]
        for f in json.loads(js.read_text())["frames"]
    )
