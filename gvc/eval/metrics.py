"""Quality metrics of decoded video against its source, and a registry that never invents numbers.

Every metric compares a decoded frame with the source frame it replaces. A frame is given in both forms
(:class:`Frame`): the 8-bit YUV 4:2:0 planes (what the codecs output and what VMAF / YUV-PSNR read) and the
RGB tensor ``(1, 3, H, W)`` in [0, 1] obtained from those planes with the run's colour convention (what
PSNR-RGB, MS-SSIM, LPIPS, ST-LPIPS, PIM and FID/KID read). Both the source and every codec's output go
through the same 4:2:0 -> RGB conversion, so no codec gains from skipping chroma subsampling.

Metrics and their columns (``higher`` = higher is better):

============  ==========================================  ======  ==========================================
name          columns                                     better  notes
============  ==========================================  ======  ==========================================
psnr          psnr_rgb, psnr_y, psnr_u, psnr_v, psnr_yuv  higher  dB, per frame then mean over frames;
                                                                  psnr_yuv = (6 Y + U + V) / 8 (DCVC weighting)
ms_ssim       ms_ssim                                     higher  RGB [0, 1]; fewer scales on small frames
lpips         lpips                                       lower   AlexNet LPIPS v0.1, inputs [-1, 1]
st_lpips      st_lpips                                    lower   shift-tolerant LPIPS (AlexNet); not LPIPS
pim           pim                                         lower   PIM-1 / PIM-5 (PyTorch port, converted weights)
vmaf          vmaf                                        higher  libvmaf v0.6.1 in ffmpeg, luma only
fid, kid      fid, kid                                    lower   HiFiC-style 256x256 patches, per codec point
============  ==========================================  ======  ==========================================

A metric whose weights or tools are missing is built as :class:`UnavailableMetric`: it reports
``{"unavailable": reason}`` and the run goes on. A metric never reports a number computed with made-up weights.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gvc.errors import ConfigError, MissingWeightsError

# Columns each metric writes and whether higher values are better (used by RD/BD-rate code).
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr_rgb": True,
    "psnr_y": True,
    "psnr_u": True,
    "psnr_v": True,
    "psnr_yuv": True,
    "ms_ssim": True,
    "lpips": False,
    "st_lpips": False,
    "pim": False,
    "vmaf": True,
    "fid": False,
    "kid": False,
}
PSNR_YUV_WEIGHTING = "(6*Y + U + V) / 8 of per-frame PSNRs (DCVC); CompressAI uses (4*Y + U + V) / 6"
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, as torchmetrics / pytorch_msssim


@dataclass
class Frame:
    """One frame in both forms: ``y`` (H, W), ``u``/``v`` (H/2, W/2) uint8 planes and ``rgb`` (1, 3, H, W) [0, 1]."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    rgb: torch.Tensor

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])


# --------------------------------------------------------------------------------------------- functions
def psnr(
    ref: torch.Tensor, dist: torch.Tensor, data_range: float = 1.0, cap_db: float | None = None
) -> torch.Tensor:
    """Per-image PSNR in dB of ``(N, C, H, W)`` tensors in [0, data_range] -> ``(N,)``.

    Identical images have MSE 0: the PSNR is ``inf``, or ``cap_db`` when given (documented cap; the default
    configuration caps at 100 dB so that means over frames stay finite).
    """
    ref = ref.double()
    dist = dist.double()
    mse = (ref - dist).pow(2).flatten(1).mean(dim=1)
    value = 10.0 * torch.log10(data_range**2 / mse)
    if cap_db is not None:
        value = torch.clamp(value, max=cap_db)
    return value


def psnr_planes(ref: np.ndarray, dist: np.ndarray, cap_db: float | None = None, peak: float = 255.0) -> float:
    """PSNR in dB of one 8-bit plane (any shape) against the reference plane; ``cap_db`` as in :func:`psnr`."""
    mse = float(np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf if cap_db is None else float(cap_db)
    value = 10.0 * math.log10(peak**2 / mse)
    return value if cap_db is None else min(value, float(cap_db))


def ms_ssim_scales(height: int, width: int, kernel_size: int = 11, max_scales: int = 5) -> int:
    """Largest number of MS-SSIM scales (<= ``max_scales``) whose coarsest level still fits the window.

    Scale s works on the image downsampled by 2^(s-1); torchmetrics and pytorch_msssim require
    ``min(H, W) > (kernel_size - 1) * 2^(scales - 1)``. 176x144 (carphone) gets 4 scales with an 11x11 window.
    """
    scales = max_scales
    while scales > 1 and min(height, width) <= (kernel_size - 1) * 2 ** (scales - 1):
        scales -= 1
    if min(height, width) < kernel_size:
        raise ConfigError(
            f"MS-SSIM needs frames of at least {kernel_size}x{kernel_size}, got {width}x{height}"
        )
    return scales


def ms_ssim(
    ref: torch.Tensor,
    dist: torch.Tensor,
    kernel_size: int = 11,
    sigma: float = 1.5,
    max_scales: int = 5,
    betas: Sequence[float] = MS_SSIM_BETAS,
) -> tuple[torch.Tensor, int]:
    """Per-image MS-SSIM of ``(N, 3, H, W)`` RGB in [0, 1] -> (``(N,)``, number of scales used).

    Small frames: instead of padding (which would measure the padding), the number of scales is reduced to the
    largest that fits (:func:`ms_ssim_scales`) and the first ``scales`` exponents are renormalised to sum to 1.
    The scale count is recorded in results; 5 (the standard) for frames larger than 160 px on the short side.
    """
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    scales = ms_ssim_scales(ref.shape[-2], ref.shape[-1], kernel_size, max_scales)
    used = torch.tensor(betas[:scales], dtype=torch.float64)
    used = tuple((used / used.sum()).tolist())
    value = multiscale_structural_similarity_index_measure(
        dist.float(),
        ref.float(),
        gaussian_kernel=True,
        sigma=sigma,
        kernel_size=kernel_size,
        reduction="none",
        data_range=1.0,
        betas=used,
        normalize="relu",
    )
    return value.reshape(-1), scales


# --------------------------------------------------------------------------------------------- registry
class Metric(ABC):
    """A video metric: ``begin`` a clip, ``add`` frame pairs, ``end`` -> per-frame values per column."""

    name: str = ""
    columns: tuple[str, ...] = ()
    device: torch.device = torch.device("cpu")

    def info(self) -> dict[str, Any]:
        """Facts recorded in results.json (variant, weights, scales...)."""
        return {}

    def begin(self, width: int, height: int, fps: float) -> None:
        self._values: dict[str, list[float]] = {c: [] for c in self.columns}

    @abstractmethod
    def add(self, ref: Frame, dist: Frame) -> None: ...

    def end(self) -> dict[str, list[float]]:
        return self._values


class UnavailableMetric:
    """Stands in for a metric that cannot run here; ``reason`` says what is missing and how to provide it."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def result(self) -> dict[str, str]:
        return {"unavailable": self.reason}


class PSNRMetric(Metric):
    """PSNR on RGB (from the float tensors) and on the 8-bit Y, U, V planes; psnr_yuv = (6Y + U + V) / 8."""

    name = "psnr"
    columns = ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv")

    def __init__(self, cap_db: float | None = None, yuv_weights: Sequence[float] = (6.0, 1.0, 1.0)):
        self.cap_db = cap_db
        self.yuv_weights = tuple(float(w) for w in yuv_weights)

    def info(self) -> dict[str, Any]:
        return {"cap_db": self.cap_db, "yuv_weights": list(self.yuv_weights), "weighting": PSNR_YUV_WEIGHTING}

    def add(self, ref: Frame, dist: Frame) -> None:
        values = {
            "psnr_rgb": float(psnr(ref.rgb, dist.rgb, cap_db=self.cap_db)[0]),
            "psnr_y": psnr_planes(ref.y, dist.y, self.cap_db),
            "psnr_u": psnr_planes(ref.u, dist.u, self.cap_db),
            "psnr_v": psnr_planes(ref.v, dist.v, self.cap_db),
        }
        wy, wu, wv = self.yuv_weights
        values["psnr_yuv"] = (wy * values["psnr_y"] + wu * values["psnr_u"] + wv * values["psnr_v"]) / (
            wy + wu + wv
        )
        for key, value in values.items():
            self._values[key].append(value)


class MSSSIMMetric(Metric):
    """MS-SSIM on RGB [0, 1]; on frames too small for 5 scales fewer scales are used (recorded in info)."""

    name = "ms_ssim"
    columns = ("ms_ssim",)

    def __init__(self, kernel_size: int = 11, sigma: float = 1.5, max_scales: int = 5):
        self.kernel_size = kernel_size
        self.sigma = sigma
        self.max_scales = max_scales
        self.scales_used: int | None = None

    def info(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "sigma": self.sigma, "scales": self.scales_used}

    def add(self, ref: Frame, dist: Frame) -> None:
        value, self.scales_used = ms_ssim(ref.rgb, dist.rgb, self.kernel_size, self.sigma, self.max_scales)
        self._values["ms_ssim"].append(float(value[0]))


def default_weights_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where torchvision caches weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _resolve_weights(path: str | os.PathLike | None, default_name: str, what: str) -> Path:
    candidate = Path(path) if path else default_weights_dir() / default_name
    if not candidate.is_file():
        raise MissingWeightsError(
            f"{what} weights not found at {candidate}; copy the file there (or set its path in the config)"
        )
    return candidate


class LPIPSMetric(Metric):
    """LPIPS (AlexNet, v0.1; gvc.losses.LPIPSLoss) per frame; inputs [0, 1] converted to [-1, 1] inside.

    The AlexNet backbone file (torchvision's ``alexnet-owt-7be5be79.pth``) is read from ``weights_path`` or the
    torch hub cache; without it the metric is unavailable (MissingWeightsError at construction).
    ``allow_random_init`` is for tests only: a random backbone gives numbers that mean nothing.
    """

    name = "lpips"
    columns = ("lpips",)

    def __init__(
        self,
        weights_path: str | None = None,
        weights_name: str = "alexnet-owt-7be5be79.pth",
        allow_random_init: bool = False,
        device: str = "cpu",
    ):
        self.device = torch.device(device)
        path: Path | None
        try:
            path = _resolve_weights(weights_path, weights_name, "LPIPS AlexNet backbone")
        except MissingWeightsError:
            if not allow_random_init:
                raise
            path = None
        self.weights_path = path
        self.net = self._build(path, allow_random_init).to(self.device)

    @staticmethod
    def _build(path: Path | None, allow_random_init: bool) -> torch.nn.Module:
        from gvc.losses import LPIPSLoss  # the training loss: one LPIPS implementation in the project

        return LPIPSLoss(
            weights_path=None if path is None else str(path), allow_random_init=allow_random_init
        )

    def info(self) -> dict[str, Any]:
        return {
            "variant": "alex v0.1",
            "weights": str(self.weights_path) if self.weights_path else "random-init",
        }

    @torch.no_grad()
    def add(self, ref: Frame, dist: Frame) -> None:
        value = self.net(dist.rgb.to(self.device), ref.rgb.to(self.device))
        self._values["lpips"].append(float(value.mean()))


class STLPIPSMetric(Metric):
    """Shift-tolerant LPIPS (Ghildyal & Liu 2022), AlexNet, weights shipped in ``stlpips-pytorch``.

    Labelled ST-LPIPS everywhere: its values are not comparable with published LPIPS numbers.
    """

    name = "st_lpips"
    columns = ("st_lpips",)

    def __init__(self, net: str = "alex", device: str = "cpu"):
        try:
            from stlpips_pytorch import stlpips
        except ImportError as err:  # the wheel imports IPython and torchsummary without declaring them
            raise MissingWeightsError(
                f"ST-LPIPS needs `pip install stlpips-pytorch torchsummary ipython` ({err})"
            ) from err
        self.device = torch.device(device)
        self.net_name = net
        self.net = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False).to(self.device)
        self.net.eval().requires_grad_(False)

    def info(self) -> dict[str, Any]:
        return {"variant": f"{self.net_name} shift_tolerant (stlpips-pytorch)", "label": "ST-LPIPS"}

    @torch.no_grad()
    def add(self, ref: Frame, dist: Frame) -> None:
        value = self.net(dist.rgb.to(self.device), ref.rgb.to(self.device), normalize=True)
        self._values["st_lpips"].append(float(value.mean()))


class PIMMetric(Metric):
    """PIM (Bhardwaj et al. 2020) from converted weights (see :mod:`gvc.eval.pim`); unavailable without them."""

    name = "pim"
    columns = ("pim",)

    def __init__(
        self, weights_path: str | None = None, kld_samples: int = 1, seed: int = 0, device: str = "cpu"
    ):
        from gvc.eval.pim import load_pim

        if not weights_path:
            raise MissingWeightsError(
                "PIM weights not configured: convert pim-1/pim-5 with `python -m gvc.eval.pim convert` and set "
                "metrics.pim.weights_path"
            )
        self.device = torch.device(device)
        self.model = load_pim(weights_path).to(self.device)
        self.weights_path = weights_path
        self.kld_samples = kld_samples
        self.seed = seed

    def info(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights_path),
            "mixtures": self.model.num_mixtures,
            "kld_samples": self.kld_samples,
        }

    @torch.no_grad()
    def add(self, ref: Frame, dist: Frame) -> None:
        generator = torch.Generator(device=self.device).manual_seed(self.seed + len(self._values["pim"]))
        value = self.model.distance(
            ref.rgb.to(self.device),
            dist.rgb.to(self.device),
            kld_samples=self.kld_samples,
            generator=generator,
        )
        self._values["pim"].append(float(value.mean()))


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_has(kind: str, name: str, exe: str | None = None) -> bool:
    """True when the ffmpeg binary lists ``name`` among its ``kind`` ("encoders" or "filters")."""
    out = subprocess.run(
        [exe or ffmpeg_exe(), "-hide_banner", f"-{kind}"], capture_output=True, text=True
    ).stdout
    return any(len(line.split()) > 1 and line.split()[1] == name for line in out.splitlines())


def write_yuv_frame(handle, frame: Frame) -> None:
    """Append one frame's Y, U, V planes (I420 order) to an open binary file."""
    for plane in (frame.y, frame.u, frame.v):
        handle.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())


def vmaf_yuv_files(
    ref_path: str | os.PathLike,
    dist_path: str | os.PathLike,
    width: int,
    height: int,
    fps: float = 30.0,
    model: str = "version=vmaf_v0.6.1",
    threads: int = 0,
    exe: str | None = None,
) -> list[float]:
    """Per-frame VMAF of two raw I420 files of the same size (libvmaf reads luma only)."""
    with tempfile.TemporaryDirectory(prefix="gvc_vmaf_") as tmp:
        log = Path(tmp) / "vmaf.json"
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", f"{fps}"]
        cmd = [exe or ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
        cmd += raw + ["-i", str(dist_path)] + raw + ["-i", str(ref_path)]
        filt = f"[0:v][1:v]libvmaf=model={model}:log_fmt=json:log_path={log}:n_threads={threads}"
        cmd += ["-lavfi", filt, "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not log.is_file():
            raise RuntimeError(f"ffmpeg libvmaf failed: {proc.stderr.strip()[-500:]}")
        data = json.loads(log.read_text())
    return [float(f["metrics"]["vmaf"]) for f in data["frames"]]


class VMAFMetric(Metric):
    """VMAF (libvmaf inside imageio-ffmpeg's ffmpeg) of the 8-bit planes; frames are spooled to temp files."""

    name = "vmaf"
    columns = ("vmaf",)

    def __init__(self, model: str = "version=vmaf_v0.6.1", threads: int = 0, ffmpeg: str | None = None):
        self.exe = ffmpeg or ffmpeg_exe()
        if not ffmpeg_has("filters", "libvmaf", self.exe):
            raise MissingWeightsError(f"the ffmpeg at {self.exe} has no libvmaf filter")
        self.model = model
        self.threads = threads

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "planes": "Y (libvmaf)"}

    def begin(self, width: int, height: int, fps: float) -> None:
        super().begin(width, height, fps)
        self._size = (width, height, fps)
        self._tmp = tempfile.TemporaryDirectory(prefix="gvc_vmaf_frames_")
        self._ref = open(Path(self._tmp.name) / "ref.yuv", "wb")  # noqa: SIM115 - closed in end()
        self._dist = open(Path(self._tmp.name) / "dist.yuv", "wb")  # noqa: SIM115

    def add(self, ref: Frame, dist: Frame) -> None:
        write_yuv_frame(self._ref, ref)
        write_yuv_frame(self._dist, dist)

    def end(self) -> dict[str, list[float]]:
        self._ref.close()
        self._dist.close()
        try:
            width, height, fps = self._size
            values = vmaf_yuv_files(
                self._ref.name, self._dist.name, width, height, fps, self.model, self.threads, self.exe
            )
        finally:
            self._tmp.cleanup()
        return {"vmaf": values}


# --------------------------------------------------------------------------------------------- FID / KID
def patches_256(rgb: torch.Tensor, patch: int = 256, shifted: bool = True) -> torch.Tensor:
    """HiFiC patches of ``(1, 3, H, W)``: non-overlapping ``patch`` x ``patch`` tiles plus, when ``shifted``, the
    same grid offset by ``patch // 2`` in both directions -> ``(P, 3, patch, patch)`` (P may be 0)."""
    tiles = []
    offsets = [0, patch // 2] if shifted else [0]
    _, _, height, width = rgb.shape
    for off in offsets:
        for top in range(off, height - patch + 1, patch):
            for left in range(off, width - patch + 1, patch):
                tiles.append(rgb[:, :, top : top + patch, left : left + patch])
    if not tiles:
        return rgb.new_zeros((0, 3, patch, patch))
    return torch.cat(tiles, dim=0)


class _Identity(torch.nn.Module):
    """Feature 'extractor' for torchmetrics that passes precomputed features through: ``(N, D) -> (N, D)``."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class InceptionPatchFeatures:
    """Inception-v3 pool features (2048-d, torch-fidelity's FID network) of HiFiC 256x256 patches.

    Weights (``pt_inception-2015-12-05-6726825d.pth``) come from ``weights_path`` or the torch hub cache;
    without them, or without torch-fidelity, construction raises MissingWeightsError (FID/KID unavailable).
    """

    def __init__(
        self,
        weights_path: str | None = None,
        weights_name: str = "pt_inception-2015-12-05-6726825d.pth",
        patch: int = 256,
        shifted: bool = True,
        batch_size: int = 16,
        device: str = "cpu",
    ):
        path = _resolve_weights(weights_path, weights_name, "FID Inception-v3 (torch-fidelity)")
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as err:  # pragma: no cover - torchmetrics is a dependency
            raise MissingWeightsError(f"torchmetrics FID unavailable: {err}") from err
        try:
            self.net = NoTrainInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
            )
        except ModuleNotFoundError as err:
            raise MissingWeightsError(f"FID/KID need `pip install torch-fidelity` ({err})") from err
        self.device = torch.device(device)
        self.net = self.net.to(self.device).eval()
        self.weights_path = path
        self.patch = patch
        self.shifted = shifted
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, rgb: torch.Tensor) -> np.ndarray:
        """``(1, 3, H, W)`` in [0, 1] -> features ``(P, 2048)`` float32 of its patches (P = 0 if too small)."""
        tiles = patches_256(rgb, self.patch, self.shifted)
        out = []
        for start in range(0, tiles.shape[0], self.batch_size):
            batch = (tiles[start : start + self.batch_size] * 255).round().clamp(0, 255).to(torch.uint8)
            out.append(self.net(batch.to(self.device)).float().cpu())
        if not out:
            return np.zeros((0, 2048), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32)


def fid_kid(
    real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000
) -> dict[str, float]:
    """FID and KID (mean, std) from feature arrays ``(N, D)`` with torchmetrics' formulas.

    KID subsets are capped at the number of samples; at least 2 samples per side are needed.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"FID/KID need at least 2 patches per side, got {len(real)} and {len(fake)}")
    dim = real.shape[1]
    fid = FrechetInceptionDistance(feature=_Identity(dim), reset_real_features=True)
    fid.update(torch.from_numpy(real).double(), real=True)
    fid.update(torch.from_numpy(fake).double(), real=False)
    kid = KernelInceptionDistance(
        feature=_Identity(dim), subsets=kid_subsets, subset_size=min(kid_subset_size, n)
    )
    kid.update(torch.from_numpy(real).float(), real=True)
    kid.update(torch.from_numpy(fake).float(), real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std), "patches": int(n)}


# --------------------------------------------------------------------------------------------- suite
FRAME_METRICS: dict[str, type[Metric]] = {
    "psnr": PSNRMetric,
    "ms_ssim": MSSSIMMetric,
    "lpips": LPIPSMetric,
    "st_lpips": STLPIPSMetric,
    "pim": PIMMetric,
    "vmaf": VMAFMetric,
}
SET_METRICS = ("fid", "kid")
ALL_METRICS = tuple(FRAME_METRICS) + SET_METRICS


def metric_columns(name: str) -> tuple[str, ...]:
    """Result columns written by metric ``name``."""
    if name in SET_METRICS:
        return (name,)
    return FRAME_METRICS[name].columns


@dataclass
class VideoScores:
    """Result of one decoded video: per-frame values, means, patch features (or None) and unavailable metrics."""

    per_frame: dict[str, list[float]]
    summary: dict[str, float]
    unavailable: dict[str, str]
    features: np.ndarray | None
    info: dict[str, Any]


class MetricSuite:
    """The configured metrics. Construction never fails for a missing weight file or tool: that metric becomes
    :class:`UnavailableMetric` with the reason, reported as ``{"unavailable": reason}``.

    ``options`` maps a metric name to constructor keyword arguments (from conf/evaluate.yaml ``metrics``).
    """

    def __init__(self, names: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None):
        options = options or {}
        self.names = list(names)
        unknown = [n for n in self.names if n not in ALL_METRICS]
        if unknown:
            raise ConfigError(f"unknown metrics {unknown}; known: {list(ALL_METRICS)}")
        self.metrics: dict[str, Metric] = {}
        self.unavailable: dict[str, UnavailableMetric] = {}
        for name in self.names:
            if name in SET_METRICS:
                continue
            try:
                self.metrics[name] = FRAME_METRICS[name](**dict(options.get(name, {})))
            except (MissingWeightsError, ImportError, OSError) as err:
                self.unavailable[name] = UnavailableMetric(name, str(err))
        self.features: InceptionPatchFeatures | None = None
        if any(n in SET_METRICS for n in self.names):
            try:
                self.features = InceptionPatchFeatures(**dict(options.get("fid", {})))
            except (MissingWeightsError, ImportError, OSError) as err:
                for n in SET_METRICS:
                    if n in self.names:
                        self.unavailable[n] = UnavailableMetric(n, str(err))

    def info(self) -> dict[str, Any]:
        out = {name: metric.info() for name, metric in self.metrics.items()}
        out.update({name: m.result() for name, m in self.unavailable.items()})
        return out

    def evaluate(
        self, pairs: Iterable[tuple[Frame, Frame]], width: int, height: int, fps: float, features: bool = True
    ) -> VideoScores:
        """Run every available metric over ``(source, decoded)`` frame pairs of one video.

        A metric that fails on this video (e.g. ffmpeg error) is reported unavailable with the error; the others
        still count. ``features``: also collect Inception patch features of the decoded frames for FID/KID.
        """
        for metric in self.metrics.values():
            metric.begin(width, height, fps)
        failed: dict[str, str] = {}
        feats: list[np.ndarray] = []
        for ref, dist in pairs:
            for name, metric in self.metrics.items():
                if name in failed:
                    continue
                try:
                    metric.add(ref, dist)
                except (RuntimeError, ValueError, ConfigError) as err:
                    failed[name] = f"{type(err).__name__}: {err}"
            if features and self.features is not None:
                feats.append(self.features(dist.rgb))
        per_frame: dict[str, list[float]] = {}
        for name, metric in self.metrics.items():
            if name in failed:
                continue
            try:
                per_frame.update(metric.end())
            except (RuntimeError, ValueError) as err:
                failed[name] = f"{type(err).__name__}: {err}"
        summary = {col: float(np.mean(vals)) for col, vals in per_frame.items() if vals}
        unavailable = {name: m.reason for name, m in self.unavailable.items()}
        unavailable.update(failed)
        feature_array = np.concatenate(feats) if feats else None
        return VideoScores(per_frame, summary, unavailable, feature_array, self.info())
