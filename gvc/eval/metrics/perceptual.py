"""Learned perceptual metrics: LPIPS (user-supplied AlexNet weights), ST-LPIPS (AlexNet and VGG, weights shipped
in stlpips-pytorch) and PIM (converted weights). Without their weights they are unavailable, never a number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gvc.errors import ConfigError, MissingWeightsError
from gvc.eval.metrics.base import Frame, Metric, resolve_weights

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


class LPIPSMetric(Metric):
    """LPIPS (AlexNet, v0.1; gvc.losses.LPIPSLoss) per frame; inputs [0, 1] converted to [-1, 1] inside.

    The AlexNet backbone file (torchvision's ``alexnet-owt-7be5be79.pth``) is read from ``weights_path`` or the
    torch hub cache; without it the metric is unavailable (MissingWeightsError at construction, naming the file).
    The LPIPS linear layers (v0.1) ship inside the ``lpips`` wheel. ``allow_random_init`` is for tests only: a
    random backbone gives numbers that mean nothing.
    """

    name = "lpips"
    columns = ("lpips",)

    def __init__(
        self,
        weights_path: str | None = None,
        weights_name: str = ALEXNET_FILE,
        allow_random_init: bool = False,
        device: str = "cpu",
    ):
        self.device = torch.device(device)
        path: Path | None
        try:
            path = resolve_weights(weights_path, weights_name, f"LPIPS AlexNet backbone ({weights_name})")
        except MissingWeightsError:
            if not allow_random_init:
                raise
            path = None
        self.weights_path = path
        from gvc.losses import LPIPSLoss  # the training loss: one LPIPS implementation in the project

        self.net = LPIPSLoss(
            weights_path=None if path is None else str(path), allow_random_init=allow_random_init
        )
        self.net = self.net.to(self.device)

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
    """Shift-tolerant LPIPS (Ghildyal & Liu 2022) with the trained weights shipped in ``stlpips-pytorch``.

    ``net="alex"`` (column ``st_lpips``) or ``"vgg"`` (:class:`STLPIPSVGGMetric`, column ``st_lpips_vgg``). The
    weights file is loaded here and every parameter of the network must be in it (the package itself loads with
    ``strict=False``, which would leave a mismatched layer random). Labelled ST-LPIPS everywhere: its values are not
    comparable with published LPIPS numbers.

    To spare a slow network on long clips: ``frame_stride`` scores frames 0, n, 2n, ... of a video (the others
    are NaN, left out of the clip's mean); ``crop`` scores the central ``crop`` x ``crop`` pixel window of each
    frame (a side smaller than ``crop``: the whole side). The default (1, None) scores every whole frame.
    """

    name = "st_lpips"
    columns = ("st_lpips",)
    NETS = ("alex", "vgg")

    def __init__(
        self, net: str = "alex", device: str = "cpu", frame_stride: int = 1, crop: int | None = None
    ):
        if net not in self.NETS:
            raise MissingWeightsError(f"ST-LPIPS ships weights for {self.NETS}, not {net!r}")
        if int(frame_stride) < 1 or (crop is not None and int(crop) < 1):
            raise ConfigError(f"ST-LPIPS frame_stride must be >= 1 and crop >= 1 pixel or None, got "
                              f"{frame_stride}, {crop}")  # fmt: skip
        self.frame_stride, self.crop = int(frame_stride), None if crop is None else int(crop)
        try:
            from stlpips_pytorch import stlpips
        except ImportError as err:  # the wheel imports IPython and torchsummary without declaring them
            raise MissingWeightsError(
                f"ST-LPIPS needs `pip install stlpips-pytorch torchsummary ipython` ({err})"
            ) from err
        self.device = torch.device(device)
        self.net_name = net
        self.weights_path = Path(stlpips.__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
        if not self.weights_path.is_file():
            raise MissingWeightsError(f"ST-LPIPS {net} weights not found at {self.weights_path}")
        model = stlpips.LPIPS(net=net, variant="shift_tolerant", pretrained=False, verbose=False)
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        missing, _ = model.load_state_dict(state, strict=False)
        aliases: dict[int, set[str]] = {}
        for key, tensor in model.state_dict(keep_vars=True).items():  # lin0 and lins.0 are the same layer
            aliases.setdefault(id(tensor), set()).add(key)
        by_key = {k: aliases[id(t)] for k, t in model.state_dict(keep_vars=True).items()}
        missing = [k for k in missing if not (by_key[k] & set(state))]
        if missing:
            raise MissingWeightsError(
                f"{self.weights_path} lacks {len(missing)} parameters, e.g. {missing[:3]}"
            )
        self.net = model.to(self.device).eval().requires_grad_(False)

    def info(self) -> dict[str, Any]:
        return {
            "variant": f"{self.net_name} shift_tolerant (stlpips-pytorch)",
            "weights": str(self.weights_path),
            "label": "ST-LPIPS",
            "frame_stride": self.frame_stride,
            "crop": self.crop,
        }

    def begin(self, width: int, height: int, fps: float) -> None:
        super().begin(width, height, fps)
        self._index = 0

    def _window(self, rgb: torch.Tensor) -> torch.Tensor:
        """The central crop x crop window of (N, C, H, W) ``rgb`` (the whole frame without ``crop``)."""
        if self.crop is None:
            return rgb
        h, w = rgb.shape[-2:]
        top, left = max(0, (h - self.crop) // 2), max(0, (w - self.crop) // 2)
        return rgb[..., top : top + self.crop, left : left + self.crop]

    @torch.no_grad()
    def add(self, ref: Frame, dist: Frame) -> None:
        index, self._index = self._index, self._index + 1
        if index % self.frame_stride:
            self._values[self.columns[0]].append(float("nan"))
            return
        x_hat, x = (self._window(f.rgb).to(self.device) for f in (dist, ref))
        value = self.net(x_hat, x, normalize=True)
        self._values[self.columns[0]].append(float(value.mean()))


class STLPIPSVGGMetric(STLPIPSMetric):
    """ST-LPIPS with the VGG backbone (second column beside the AlexNet one)."""

    name = "st_lpips_vgg"
    columns = ("st_lpips_vgg",)

    def __init__(self, device: str = "cpu", frame_stride: int = 1, crop: int | None = None):
        super().__init__(net="vgg", device=device, frame_stride=frame_stride, crop=crop)


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
                "metric_options.pim.weights_path"
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
