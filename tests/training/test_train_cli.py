"""train.py for a new user: bad overrides and values are ONE `error:` line with exit status 2 (never Hydra's
report or a traceback), `trainer.max_steps` is refused in favour of `stage.max_steps`, a normal run prints no
warning, and the loggers keep one wandb run id / one csv version across resumes."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from gvc import config_dir
from gvc.training.run import LOGGER_IDS, build_loggers
from tests._training_helpers import PFRAME_ONLY, ROOT, compose_cfg, fast_overrides


def _train_script():
    spec = importlib.util.spec_from_file_location("gvc_train_script", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _refused_before_a_run_folder(override: str, needles: list[str], tmp_path, capsys) -> None:
    """train.py with `override` exits 2 with one error: line holding every needle, and starts nothing."""
    train = _train_script()
    argv = ["+experiment=smoke_iframe", f"paths.output_dir={tmp_path / 'run'}", override]
    assert train.main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, needles",
    [
        ("stage.max_steps=abc", ["stage.max_steps='abc'", "could not be converted to Integer"]),
        ("stage.max_steps=0", ["stage.max_steps=0", ">= 1"]),
        ("data.crop_size=-4", ["data.crop_size=-4", ">= 2"]),
        ("data.crop_size=65", ["data.crop_size=65", "even"]),
        ("data.batch_size=two", ["data.batch_size='two'"]),
        ("trainer.max_steps=8", ["two per gvc step", "stage.max_steps=8"]),
        ("no_such_key=1", ["Could not override 'no_such_key'", "+no_such_key=1"]),
        ("stage=nope", ["Could not find 'stage/nope'", "iframe, pframe"]),
        ("+experiment=nope", ["Could not find 'experiment/nope'", "smoke_iframe"]),
        ("seed=[1", ["no viable alternative"]),
    ],
)
def test_bad_overrides_are_one_error_line(override, needles, tmp_path, capsys):
    _refused_before_a_run_folder(override, needles, tmp_path, capsys)  # nothing was started


@pytest.mark.parametrize(
    "override, needles",
    [
        # a misspelt key added with `+` used to be ignored (a full-length run, or the perceptual term left on)
        ("+stage.max_step=40", ["unknown config key stage.max_step", "did you mean stage.max_steps?"]),
        ("+loss.w_lpip=0", ["unknown config key loss.w_lpip", "did you mean loss.w_lpips?"]),
        ("+model.chanels=8", ["unknown config key model.chanels", "conf/model/*.yaml"]),
        ("+model.iframe.chanels=8", ["unknown config key model.iframe.chanels", "model.iframe.channels"]),
        ("+rate.targt_bpp=0.1", ["unknown config key rate.targt_bpp", "rate.target_bpp"]),
        ("+data.batchsize=2", ["unknown config key data.batchsize", "data.batch_size"]),
        ("+max_steps=40", ["unknown config key max_steps", "did you mean stage.max_steps?"]),
        # a value of the wrong type used to end in a Lightning traceback (or Python's '<=' not supported)
        ("stage.lr=abc", ["stage.lr='abc'", "could not be converted to Float"]),
        ("stage.d_lr=abc", ["stage.d_lr='abc'", "could not be converted to Float"]),
        ("loss.w_lpips=abc", ["loss.w_lpips='abc'", "want a float"]),
        ("stage.warmup_steps=abc", ["stage.warmup_steps='abc'", "could not be converted to Integer"]),
        ("rate.target_bpp=abc", ["rate.target_bpp='abc'", "want a float"]),
        ("stage.optimizer.g.betas=0.9", ["stage.optimizer.g.betas=0.9", "want a list"]),
        ("+stage.betas=[0.9,0.9]", ["unknown config key stage.betas"]),
    ],
)
def test_unknown_keys_and_wrong_types_are_one_error_line_before_a_run_folder(
    override, needles, tmp_path, capsys
):
    _refused_before_a_run_folder(override, needles, tmp_path, capsys)


def _stage2_model_file(path):
    """A stage-2 (VideoCodec) model file of the smoke model."""
    import torch

    from gvc.codec.modelfile import save_model_file
    from gvc.models.iframe import IFrameCodec
    from gvc.models.pframe import PFrameCodec
    from gvc.models.video import VideoCodec
    from tests._training_helpers import model_kwargs

    i, p = model_kwargs("smoke")
    torch.manual_seed(0)
    iframe, pframe = IFrameCodec(**i), PFrameCodec(**p)
    save_model_file(path, VideoCodec(iframe, pframe, {"_target_": "gvc.models.flow.DISFlow"}))
    return path


@pytest.mark.parametrize("kind", ["gvc", "text", "stage2"])
def test_a_wrong_file_as_iframe_ckpt_is_one_error_line(kind, tmp_path, capsys):
    """A .gvc stream given as stage.iframe_ckpt leaked PyTorch's weights_only advice; a stage-2 model file was
    accepted without a word."""
    if kind == "gvc":
        path = tmp_path / "a.gvc"
        path.write_bytes(b"\x89GVC" + bytes(60))
        needles = ["is a .gvc bitstream", "not a gvc training checkpoint"]
    elif kind == "text":
        path = tmp_path / "notes.ckpt"
        path.write_text("hello\n")
        needles = ["is a text file"]
    else:
        path = _stage2_model_file(tmp_path / "p.gvcm")
        needles = ["is a stage-2 (P-frame) model", "stage-1 run's model.gvcm"]
    train = _train_script()
    argv = ["+experiment=smoke_pframe", f"paths.output_dir={tmp_path / 'run'}", f"stage.iframe_ckpt={path}"]
    assert train.main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"stage.iframe_ckpt={path}" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "weights_only" not in err and "arbitrary code" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_flow_warmup_past_max_steps_says_which_to_lower(tmp_path, capsys):
    """`+experiment=smoke_pframe stage.max_steps=40` failed inside the run on flow_warmup_steps=60 without saying
    that warm-ups count steps (they do not scale with max_steps) or which value to change."""
    train = _train_script()
    argv = ["+experiment=smoke_pframe", f"paths.output_dir={tmp_path / 'run'}", "stage.max_steps=40"]
    assert train.main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert "stage.flow_warmup_steps=60 must be in [0, stage.max_steps=40)" in err, err
    assert "lower stage.flow_warmup_steps" in err and "do not scale" in err, err
    assert not (tmp_path / "run").exists()


def test_every_experiment_and_group_passes_the_schema():
    """The schema is read from conf/: every shipped combination composes without an unknown key or a bad type,
    and a number given as an integer (stage.lr=1) is a number."""
    from gvc.training.schema import check_schema

    for exp in sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml")):
        check_schema(compose_cfg(exp))
    for extra in (["data=synthetic"], ["data=shards"], ["model=small"], ["rate=two_level", "stage.lr=1"]):
        check_schema(compose_cfg("smoke_pframe", extra))


def test_output_dir_under_a_file_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    train = _train_script()
    assert train.main(["+experiment=smoke_iframe", f"paths.output_dir={blocker / 'run'}"]) == 2
    assert f"{blocker} is a file, not a folder" in _one_line(capsys.readouterr().err)


def test_train_py_process_exit_status_and_stderr(tmp_path):
    """The real command line (what Hydra used to answer with its own report and exit status 1)."""
    res = subprocess.run(
        [
            sys.executable,
            "train.py",
            "+experiment=smoke_iframe",
            f"paths.output_dir={tmp_path}",
            "stage.max_steps=abc",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2
    assert "stage.max_steps='abc'" in _one_line(res.stderr)


@pytest.mark.parametrize("case", ["data", "lpips"])
def test_error_raised_during_the_run_is_one_error_line_and_leaves_no_run_folder(case, tmp_path):
    """A missing data folder or LPIPS weights file is found only when the run starts (inside Hydra's job): still
    one line, status 2, and no run folder with only Hydra's `.hydra/` and `train.log` in it stays behind."""
    overrides = {
        "data": ["data=folder", f"data.train_path={tmp_path / 'none'}"],
        "lpips": ["perceptual=lpips", f"perceptual.weights_path={tmp_path / 'alexnet.pth'}"],
    }[case]
    res = subprocess.run(
        [sys.executable, "train.py", "+experiment=smoke_iframe", f"paths.output_dir={tmp_path / 'run'}"]
        + overrides,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    err_lines = [line for line in res.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(err_lines) == 1 and err_lines[0].startswith("error: "), res.stderr
    needle = {"data": f"{tmp_path / 'none'}: no such folder or list file", "lpips": "alexnet.pth"}[case]
    assert needle in err_lines[0], res.stderr
    assert "warn" not in res.stderr.lower(), res.stderr
    assert not (tmp_path / "run").exists(), sorted(p.name for p in (tmp_path / "run").iterdir())


def test_a_failed_resume_keeps_the_run_folder(tmp_path):
    """A folder that existed before the run (a resume) is never removed, whatever the error."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    res = subprocess.run(
        [sys.executable, "train.py", "+experiment=smoke_iframe", f"paths.output_dir={run}"]
        + ["data=folder", f"data.train_path={tmp_path / 'none'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    assert (run / ".hydra").is_dir()


def test_wandb_run_id_is_kept_across_launches(tmp_path):
    overrides = [*fast_overrides(tmp_path, 2), "logger=wandb", "logger.wandb.mode=offline"]
    cfg = compose_cfg("smoke_iframe", overrides)
    (first,) = build_loggers(cfg, instantiate)
    saved = json.loads((tmp_path / LOGGER_IDS).read_text())
    assert first.version and saved["wandb.id"] == first.version
    (again,) = build_loggers(compose_cfg("smoke_iframe", overrides), instantiate)
    assert again.version == first.version  # the resume continues the same wandb run
    (other,) = build_loggers(
        compose_cfg("smoke_iframe", [*overrides[1:], f"paths.output_dir={tmp_path / 'b'}"]), instantiate
    )
    assert other.version != first.version  # another output dir is another run
    (explicit,) = build_loggers(
        compose_cfg("smoke_iframe", [*overrides, "logger.wandb.id=myrun"]), instantiate
    )
    assert explicit.version == "myrun"


def test_a_normal_training_run_prints_no_python_warning(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "train.py",
            "+experiment=smoke_iframe",
            *(o for o in fast_overrides(tmp_path / "run", 2) if o not in PFRAME_ONLY),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "finished at step 2" in res.stdout
    # a Python warning is printed as "<file>.py:<line>: <message>" (Lightning's format drops the category)
    flagged = [
        line for line in res.stderr.splitlines() if re.search(r"\.py:\d+: ", line) or "Warning" in line
    ]
    assert flagged == [], res.stderr
