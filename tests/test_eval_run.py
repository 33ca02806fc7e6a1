"""The evaluation runner end to end on small generated MCL-JCV-named files: outputs, caching, export."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gvc.data.io import YUVFrame, open_video
from gvc.errors import ConfigError, VideoFormatError
from gvc.eval import run as R
from gvc.eval.export import export_name, side_by_side

W, H, T = 64, 48, 3


def _write_mcl(root: Path, index: int, fps: int = 30) -> Path:
    """A small raw I420 file named like MCL-JCV (videoSRC01_64x48_30.yuv) with moving smooth content."""
    yy, xx = np.mgrid[0:H, 0:W]
    data = bytearray()
    for t in range(T):
        y = (128 + 60 * np.sin((xx + 3 * t) / 6.0) * np.cos(yy / 7.0)).astype(np.uint8)
        u = np.full((H // 2, W // 2), 120 + index, np.uint8)
        v = np.full((H // 2, W // 2), 136 - index, np.uint8)
        data += y.tobytes() + u.tobytes() + v.tobytes()
    path = root / f"videoSRC{index:02d}_{W}x{H}_{fps}.yuv"
    path.write_bytes(bytes(data))
    return path


def test_mcl_jcv_dataset_reader(tmp_path):
    a = _write_mcl(tmp_path, 1)
    b = _write_mcl(tmp_path, 2, fps=25)
    cfg = {"root": str(tmp_path), "pattern": "videoSRC{index:02d}_64x48_*.yuv", "sequences": [1, 2]}
    assert R.resolve_dataset(cfg) == [a, b]
    with open_video(b) as reader:  # size and fps come from the MCL-JCV name
        assert (reader.width, reader.height, reader.fps, len(reader)) == (W, H, 25.0, T)
    with pytest.raises(VideoFormatError, match="videoSRC03"):
        R.resolve_dataset({**cfg, "sequences": [1, 3]})
    with pytest.raises(VideoFormatError, match="does not exist"):
        R.resolve_dataset({**cfg, "root": str(tmp_path / "nope")})
    assert export_name(a, W, H, 30.0) == a.name
    assert export_name("/x/bikes.mp4", 640, 272, 30.0) == "bikes_640x272_30.yuv"


@pytest.mark.ffmpeg
def test_runner_outputs_cache_and_export(tmp_path, monkeypatch):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    _write_mcl(src_dir, 1)
    out = tmp_path / "out"
    cfg = {
        "dataset": {"root": str(src_dir), "pattern": "videoSRC{index:02d}_64x48_*.yuv", "sequences": [1]},
        "output_dir": str(out),
        "frames": T,
        "target_bpps": [0.5, 1.0],
        "sweep": {"x265": [20, 40]},
        "baselines": {"x265": {}, "nonexistent": {"encoder": "libnothere", "args": []}},
        "metrics": ["psnr", "ms_ssim", "lpips"],
        "metric_options": {
            "psnr": {"cap_db": 100.0},
            "lpips": {"weights_path": str(tmp_path / "alexnet.pth")},
        },
        "export": {"enabled": True, "png": True, "side_by_side": False},
        "progress": False,
    }
    results = R.evaluate(cfg)
    points = results["points"]
    assert len(points) == 4 and {p["setting"] for p in points} == {"0.5bpp", "1bpp", "q20", "q40"}
    for p in points:  # bpp from the real bitstream file
        assert p["bpp"] == pytest.approx(8 * Path(p["bitstream"]).stat().st_size / (T * W * H))
        assert 15 < p["summary"]["psnr_yuv"] < 100 and 0 < p["summary"]["ms_ssim"] <= 1
    assert str(tmp_path / "alexnet.pth") in results["unavailable_metrics"]["lpips"]
    assert "libnothere" in results["unavailable_baselines"]["nonexistent"]
    assert results["colour"]["matrix"] == "bt709" and "6*Y" in results["psnr_yuv_weighting"]
    with open(out / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * T and "psnr_rgb" in rows[0] and "lpips" not in rows[0]
    with open(out / "per_video.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    report = (out / "report.md").read_text()
    assert "![psnr_rgb](plots/rd_psnr_rgb.png)" in report and "**lpips** unavailable" in report
    assert (out / "plots" / "rd_psnr_rgb.png").is_file() and not (out / "plots" / "rd_lpips.png").exists()
    exported = out / "export" / "x265_q20" / f"videoSRC01_{W}x{H}_30.yuv"
    assert exported.stat().st_size == T * W * H * 3 // 2
    assert len(list((out / "export" / "x265_q20" / f"videoSRC01_{W}x{H}_30_png").glob("*.png"))) == T
    assert json.loads((out / "results.json").read_text())["bd_rate"]["anchor"] == "x265"

    def no_encode(*args, **kwargs):
        raise AssertionError("a cached point was encoded again")

    monkeypatch.setattr(R.FFmpegBaseline, "encode", no_encode)
    again = R.evaluate({**cfg, "export": {"enabled": False}})
    assert [p["key"] for p in again["points"]] == [p["key"] for p in points]
    with pytest.raises(AssertionError, match="encoded again"):  # a new setting is not cached
        R.evaluate({**cfg, "sweep": {"x265": [30]}, "target_bpps": [], "export": {"enabled": False}})


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown evaluation keys"):
        R.EvalConfig.from_mapping({"vidoes": []})
    with pytest.raises(ConfigError, match="anchor"):
        R.EvalConfig.from_mapping({"baselines": {"aom_av1": {}}, "anchor": "x265"})


@pytest.mark.ffmpeg
def test_side_by_side_mp4(tmp_path):
    rng = np.random.default_rng(0)
    shapes = ((H, W), (H // 2, W // 2), (H // 2, W // 2))
    frames = [YUVFrame(*(rng.integers(0, 256, s, dtype=np.uint8) for s in shapes)) for _ in range(2)]
    path = side_by_side([frames, frames, frames], tmp_path / "sbs.mp4", 30.0)
    with open_video(path) as reader:
        assert (reader.width, reader.height, len(reader)) == (3 * W, H, 2)


@pytest.mark.ffmpeg
def test_runner_gvc_model_file_and_side_by_side(tmp_path):
    pytest.importorskip("gvc.codec.coder")
    import torch
    from omegaconf import OmegaConf

    from gvc.codec.modelfile import save_model_file
    from gvc.models.iframe import IFrameCodec

    kwargs = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).parents[1] / "conf/model/smoke.yaml").iframe
    )
    kwargs.pop("_target_")
    torch.manual_seed(0)
    model_path = tmp_path / "smoke.gvcm"
    save_model_file(model_path, IFrameCodec(**kwargs))
    src = _write_mcl(tmp_path, 1)
    out = tmp_path / "out"
    results = R.evaluate(
        {
            "videos": [str(src)],
            "models": [str(model_path)],
            "output_dir": str(out),
            "frames": 2,
            "target_bpps": [1.0],
            "baselines": {"x265": {}},
            "metrics": ["psnr"],
            "export": {"enabled": True, "side_by_side": True, "side_by_side_crf": 10},
            "progress": False,
        }
    )
    gvc = [p for p in results["points"] if p["codec"] == "gvc"]
    assert len(gvc) == 1 and gvc[0]["setting"] == "smoke"
    assert gvc[0]["bpp"] == pytest.approx(8 * Path(gvc[0]["bitstream"]).stat().st_size / (2 * W * H))
    assert np.isfinite(gvc[0]["summary"]["psnr_rgb"])
    assert (out / "export" / "gvc_smoke" / src.name).stat().st_size == 2 * W * H * 3 // 2
    (sbs,) = (out / "export" / "side_by_side").glob("*.mp4")
    with open_video(sbs) as reader:
        assert (reader.width, reader.height, len(reader)) == (3 * W, H, 2)


def test_model_settings_are_unique_when_file_names_collide():
    from pathlib import Path

    from gvc.eval.run import model_settings

    paths = [
        Path("runs/iframe/model.gvcm"),
        Path("runs/pframe/model.gvcm"),
        Path("x/low.gvcm"),
        Path("y/model.gvcm"),
    ]
    labels = model_settings(paths)
    assert labels == ["iframe_model", "pframe_model", "low", "y_model"]
    same = model_settings([Path("a/model.gvcm"), Path("a/model.gvcm")])
    assert len(set(same)) == 2


def test_missing_model_file_is_a_config_error_before_any_work(tmp_path):
    from gvc.errors import ConfigError
    from gvc.eval.run import Evaluator

    with pytest.raises(ConfigError, match="nope.gvcm"):
        Evaluator({"models": [str(tmp_path / "nope.gvcm")], "output_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()
