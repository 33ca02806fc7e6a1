"""gvc as a user installs it: the wheel holds conf/ and the programs, and runs outside the repository.

The wheel is built from a copy of the source (pyproject.toml, README.md, gvc/, conf/) with this venv's
setuptools, offline (`pip wheel --no-index --no-deps --no-build-isolation`), and installed with `--no-deps` into
a fresh venv whose only other packages are this venv's, reached through a `.pth` line (torch is not installed
twice). The fresh venv does not see the checkout: this venv's editable-install hook is a `.pth` file inside
site-packages, and `.pth` files in a folder named by another `.pth` line are not read. Every command runs from a
temporary folder outside the repository, with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

from gvc import config_dir

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, timeout: int = 300, status: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == status, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """gvc-*.whl built from a copy of the working tree's sources (the checkout gets no build/ or egg-info)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("gvc", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-q"]
    _run([*pip, "-w", dist, src.resolve()], cwd=tmp)
    (built,) = dist.glob("gvc-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """(bin folder, site-packages) of a fresh venv holding the wheel; this venv's packages reached by a .pth."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    purelib = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_gvc_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps", wheel],
        cwd=root,
    )
    return root / "bin", purelib


def test_the_wheel_holds_every_config_module_and_program(wheel):
    """Every conf/**/*.yaml is in the wheel under gvc/conf/ (nothing else there), every gvc/**/*.py is in it
    (pyproject.toml lists the packages by name), and the three commands are its entry points."""
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = whl.read(entry_points).decode()
    yaml = {f"gvc/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert len(yaml) >= 40 and "gvc/conf/evaluate.yaml" in yaml and "gvc/conf/model/smoke.yaml" in yaml
    assert {n for n in names if n.startswith("gvc/conf/")} == yaml
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gvc").rglob("*.py")}
    assert modules - names == set(), "add the package to [tool.setuptools] packages in pyproject.toml"
    for line in ("gvc = gvc.cli:main", "gvc-train = gvc.train:main", "gvc-evaluate = gvc.evaluate:main"):
        assert line in scripts, scripts


def test_the_packages_pyproject_lists_are_the_packages_under_gvc():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gvc").rglob("__init__.py")}
    assert listed == on_disk | {"gvc.conf"}


def test_config_dir_is_the_checkouts_conf_here():
    assert config_dir() == ROOT / "conf"


def test_the_installed_gvc_finds_its_configs_in_site_packages(venv, tmp_path):
    """From a folder outside the repository the installed gvc is the wheel's, config_dir() is its package data,
    and the evaluation defaults read from there (they used to be read from the checkout's conf/)."""
    bin_dir, purelib = venv
    code = (
        "import json, gvc; from gvc.eval.defaults import default_config, default_codecs; "
        "print(json.dumps([gvc.__file__, str(gvc.config_dir()), default_config()['export'], "
        "sorted(default_codecs())]))"
    )
    out = json.loads(_run([bin_dir / "python", "-c", code], cwd=tmp_path).stdout)
    package, conf, export, codecs = out
    assert Path(package).parent == purelib / "gvc"
    assert Path(conf) == purelib / "gvc" / "conf"
    assert sorted(p.relative_to(conf).as_posix() for p in Path(conf).rglob("*.yaml")) == sorted(
        p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")
    )
    assert export == {"enabled": False, "png": False, "side_by_side": False, "side_by_side_crf": 10}
    assert "x265" in codecs


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The tiny smoke I-frame codec (conf/model/smoke.yaml), random weights, as a model file."""
    import torch
    from omegaconf import OmegaConf

    from gvc.codec.modelfile import save_model_file
    from gvc.models.iframe import IFrameCodec

    kwargs = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)[
        "iframe"
    ]
    kwargs.pop("_target_")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "smoke.gvcm"
    save_model_file(path, IFrameCodec(**kwargs), training={"stage": "iframe", "step": 1})
    return path


@pytest.mark.ffmpeg
def test_the_installed_commands_evaluate_and_encode_outside_the_repository(venv, model_file, tmp_path):
    """`gvc-evaluate` (evaluate.py's program) and `gvc encode` / `gvc info` of the installed wheel, run from a
    temporary folder: the evaluation writes its report with the configs of the wheel, the stream decodes."""
    from gvc.data import sample_clips

    bin_dir, _ = venv
    clip = sample_clips()["carphone_pristine"]
    work = tmp_path / "elsewhere"
    work.mkdir()
    args = [f"videos=[{clip}]", f"models=[{model_file}]", "frames=2", "target_bpps=[0.5]", "metrics=[psnr]",
            "~baselines.x265_veryslow", "~baselines.vvc", "~baselines.svtav1", "~baselines.aom_av1",
            "progress=false", "pictures=false", "match_gvc=false", "output_dir=out"]  # fmt: skip
    _run([bin_dir / "gvc-evaluate", *args], cwd=work, timeout=600)
    results = json.loads((work / "out" / "results.json").read_text())
    assert {p["codec"] for p in results["points"]} == {"gvc", "x265"}
    assert "- command: `python -m gvc.evaluate 'videos=" in (work / "out" / "report.md").read_text()

    stream = work / "clip.gvc"
    _run([bin_dir / "gvc", "encode", clip, "-o", stream, "--model", model_file, "--frames", "2"], cwd=work)
    info = json.loads(_run([bin_dir / "gvc", "info", stream, "--json"], cwd=work).stdout)
    assert info["frames"] == 2 and (info["width"], info["height"]) == (176, 144)
    _run([bin_dir / "gvc", "decode", stream, "-o", work / "clip.y4m", "--model", model_file], cwd=work)
    assert (work / "clip.y4m").stat().st_size > 2 * 176 * 144 * 3 // 2


def test_the_installed_evaluate_help_names_the_installed_config(venv, tmp_path):
    bin_dir, purelib = venv
    out = _run([bin_dir / "python", "-m", "gvc.evaluate", "--help"], cwd=tmp_path).stdout
    assert f"config: {purelib / 'gvc' / 'conf' / 'evaluate.yaml'}" in out


def test_the_installed_train_command_checks_its_overrides(venv, tmp_path):
    """`gvc-train` (train.py's program) from a folder outside the repository: a bad value is the same one
    `error:` line as from the checkout (tests/training/test_train_cli.py), and nothing is started."""
    bin_dir, _ = venv
    run = tmp_path / "run"
    cmd = [
        bin_dir / "gvc-train",
        "+experiment=smoke_iframe",
        "stage.max_steps=abc",
        f"paths.output_dir={run}",
    ]
    err = _run(cmd, cwd=tmp_path, status=2).stderr
    assert (
        err.startswith("error: ")
        and "stage.max_steps='abc'" in err
        and "could not be converted to Integer" in err
    ), err
    assert not run.exists()
