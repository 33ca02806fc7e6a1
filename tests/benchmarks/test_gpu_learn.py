"""benchmarks/gpu_learn.py: the GPU learning run's tiny CPU form, its bundle's size, its mid-size model.

The bundle must stay under what one device call may bring (64 MiB with the working tree). Its data part is built
here from the bundled clips, exactly as `make gpu-bundle` builds it but with a faster xz preset (a larger file:
an upper bound), and checked with the working tree against the limit minus the wheel part's budget
(gpu_learn.WHEEL_PART_MIB). The wheel part itself needs the package registry (~30 MiB of downloads), so the test
that fetches the wheels and checks them against that budget is marked slow (`pytest -m slow`)."""

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_learn  # noqa: E402

FIGURES = ("file_bpp", "psnr_y", "st_lpips", "p_over_i_bits", "drift_db", "flow_epe", "zero_motion_epe")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle folder holding the real data part (shards + held-out clips), xz preset 1."""
    out = tmp_path_factory.mktemp("gpu_bundle")
    gpu_learn.build_data(out, preset=1, work=out)
    return out


def test_data_part_and_tree_leave_room_for_the_wheels(bundle):
    """What this proves: the data part (49 six-frame 192x192 training clips and the two 32-frame held-out clips,
    at a preset that compresses less than the bundle's) plus the working tree that travels fit in 64 MiB beside
    the wheel part's budget."""
    data = (bundle / gpu_learn.DATA_FILE).stat().st_size
    tree = gpu_learn.tree_bytes()
    total = gpu_learn.mib(data + tree) + gpu_learn.WHEEL_PART_MIB
    assert total <= gpu_learn.LIMIT_MIB, (gpu_learn.mib(data), gpu_learn.mib(tree), gpu_learn.WHEEL_PART_MIB)


def test_tiny_run_on_cpu_writes_every_figure(bundle, tmp_path):
    """What this proves: the run trains both stages from the bundle's shards (train.py with the gpu_learn
    experiments), codes both held-out clips through real .gvc files, and writes every figure, a model file under
    16 MiB and its BENCHMARKS.md section."""
    out, work = tmp_path / "out", tmp_path / "work"
    rc = gpu_learn.main(["run", "--tiny", "--bundle", str(bundle), "--out", str(out), "--work", str(work)])
    assert rc == 0
    res = json.loads((out / "result.json").read_text())
    for key in FIGURES:
        assert isinstance(res[key], float), key
    assert res["stage1"]["steps"] == 2 and res["stage2"]["steps"] == 3
    for stage in ("iframe", "pframe"):
        assert res["steps_per_s"][stage] > 0
    assert set(res["clips"]) == {"carphone_pristine_0-32", "bikes_200-232"}
    for c in res["clips"].values():
        assert c["frames"] == gpu_learn.TINY.eval_frames and c["types"] == "I" + "P" * (c["frames"] - 1)
        assert c["drift_frames"] == [2, c["frames"]] and c["zero_motion_epe"] > 0
    assert (work / "code" / "bikes_200-232" / "model.gvc").stat().st_size > 0
    model = out / "model.gvcm"
    assert model.stat().st_size < gpu_learn.MODEL_LIMIT_MIB * 2**20
    assert res["model_file_mib"] == pytest.approx(model.stat().st_size / 2**20)
    text = (out / "section.txt").read_text()
    assert text.startswith(f"## {gpu_learn.TITLE}\n") and "| mean |" in text
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# gvc benchmarks\n\n## A (x)\n\nfirst\n")
    assert gpu_learn.main(["markdown", str(out / "result.json"), "--benchmarks", str(md)]) == 0
    assert gpu_learn.main(["markdown", str(out / "result.json"), "--benchmarks", str(md)]) == 0
    assert md.read_text().count(f"## {gpu_learn.TITLE}") == 1 and md.read_text().startswith(
        "# gvc benchmarks"
    )


def test_mid_size_model_file_is_under_16_mib(tmp_path):
    """What this proves: the documented mid-size model (both gpu_learn experiments, the same networks) with its
    P-frame branch writes a model file under 16 MiB; the experiments use the GAN loss and the offline perceptual
    loss ST-LPIPS (AlexNet) and train on shards on the GPU."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gvc import config_dir
    from gvc.cli import compose_checked
    from gvc.codec.modelfile import save_model_file
    from gvc.models.video import VideoCodec

    conf = config_dir()
    cfgs = [compose_checked(conf, "train", [f"+experiment=gpu_learn_{s}"]) for s in ("iframe", "pframe")]
    assert OmegaConf.to_container(cfgs[0].model) == OmegaConf.to_container(cfgs[1].model)
    for cfg in cfgs:
        assert cfg.perceptual._target_ == "gvc.losses.STLPIPSLoss" and cfg.perceptual.net == "alex"
        assert (
            cfg.loss.gan
            and cfg.loss.C_D > 0
            and cfg.data.kind == "shards"
            and cfg.trainer.accelerator == "gpu"
        )
        assert cfg.callbacks.timer._target_ == "lightning.pytorch.callbacks.Timer"
    m = cfgs[1].model
    iframe, pframe = instantiate(m.iframe), instantiate(m.pframe)
    pframe.init_from_iframe(iframe)
    video = VideoCodec(iframe, pframe, OmegaConf.to_container(m.flow, resolve=True), freeze_iframe=True)
    path = tmp_path / "mid.gvcm"
    save_model_file(path, video)
    assert 4 * 2**20 < path.stat().st_size < gpu_learn.MODEL_LIMIT_MIB * 2**20


def test_device_command_installs_the_wheels_then_runs_the_script():
    assert gpu_learn.DEVICE_COMMAND.startswith(
        "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
        "/tmp/site .gpu_bundle/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD"
    )
    assert gpu_learn.DEVICE_COMMAND.endswith("bash benchmarks/gpu_learn.sh")
    names = [w.split("==")[0] for w in gpu_learn.WHEELS]
    assert len(names) == len(set(names)) and all("==" in w for w in gpu_learn.WHEELS)


@pytest.mark.slow
def test_wheel_part_within_its_budget(tmp_path):
    """What this proves (needs the package registry): the pinned wheels download for CPython 3.12 on manylinux
    x86_64, one per entry, and weigh no more than the budget the fast test counts on."""
    wheels = gpu_learn.fetch_wheels(tmp_path / "whl")
    assert gpu_learn.mib(sum(w.stat().st_size for w in wheels)) <= gpu_learn.WHEEL_PART_MIB
    stlpips = next(w for w in wheels if w.name.startswith("stlpips_pytorch"))
    import zipfile

    names = zipfile.ZipFile(stlpips).namelist()
    assert any(n.endswith("alex_shift_tolerant.pth") for n in names)
    assert not any(n.endswith("vgg_shift_tolerant.pth") for n in names)
