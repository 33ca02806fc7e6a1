"""Frozen optical-flow estimators (docs/METHOD.md section 3.1; the paper uses a frozen UFlow).

Every estimator maps (ref (B,3,H,W), target (B,3,H,W)) RGB in [0, 1] to a BACKWARD flow (B, 2, H, W) in pixels
such that ``target(p) ~= ref(p + flow(p))``, i.e. ``gvc.models.warp.backward_warp(ref, flow) ~= target``;
channel 0 = x (columns), channel 1 = y (rows). Estimators are never trained: they run under torch.no_grad() and
their outputs carry no gradient.

- `DISFlow`: OpenCV's DIS optical flow on 8-bit grayscale (no weights, CPU, a loop over the batch).
- `RAFTFlow`: torchvision RAFT (small or large) from a weights file the user provides (no downloads here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gvc.errors import ConfigError, MissingWeightsError
from gvc.models.config import LEGACY_CONFIG, derive_config

#: RGB -> luma weights (BT.601) used for DIS's grayscale input
_LUMA = (0.299, 0.587, 0.114)


class FlowEstimator(nn.Module):
    """Base class: frozen, `forward(ref, target) -> flow` under no_grad; `config` holds the constructor kwargs.

    Subclasses implement `estimate(ref, target)`; the base checks shapes and returns a float32 tensor on the
    input's device.
    """

    def __init__(self):
        super().__init__()
        self.config: dict = {}

    def train(self, mode: bool = True):  # always eval: an estimator is frozen
        return super().train(False)

    @torch.no_grad()
    def forward(self, ref: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if ref.dim() != 4 or ref.shape[1] != 3 or ref.shape != target.shape:
            raise ValueError(
                f"flow estimation needs ref and target (B, 3, H, W) of equal shape, got {tuple(ref.shape)} "
                f"and {tuple(target.shape)}"
            )
        flow = self.estimate(ref.detach(), target.detach())
        return flow.to(device=ref.device, dtype=torch.float32)

    def estimate(self, ref: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _to_gray_u8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W) uint8 luma."""
    w = torch.tensor(_LUMA, dtype=torch.float32).view(3, 1, 1)
    y = (x.detach().float().cpu().clamp(0.0, 1.0) * w).sum(0)
    return np.ascontiguousarray(torch.round(y * 255.0).to(torch.uint8).numpy())


class DISFlow(FlowEstimator):
    """OpenCV DIS optical flow (Kroeger et al. 2016) on 8-bit luma; CPU, no weights.

    preset: "ultrafast" | "fast" | "medium" (OpenCV presets). Optional overrides of the preset's parameters
    (None keeps the preset's value): finest_scale, patch_size, patch_stride, gradient_descent_iterations,
    variational_refinement_iterations, use_spatial_propagation.
    """

    PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}

    def __init__(
        self,
        *,
        preset: str,
        finest_scale: int | None,
        patch_size: int | None,
        patch_stride: int | None,
        gradient_descent_iterations: int | None,
        variational_refinement_iterations: int | None,
        use_spatial_propagation: bool | None,
    ):
        super().__init__()
        if preset not in self.PRESETS:
            raise ConfigError(f"DISFlow preset {preset!r} unknown; choose one of {sorted(self.PRESETS)}")
        self.config = derive_config(DISFlow.__init__, locals())
        self._dis = None  # cv2 objects do not pickle/deepcopy: built lazily

    def _engine(self):
        if self._dis is None:
            import cv2

            c = self.config
            dis = cv2.DISOpticalFlow_create(self.PRESETS[c["preset"]])
            setters = {
                "finest_scale": dis.setFinestScale,
                "patch_size": dis.setPatchSize,
                "patch_stride": dis.setPatchStride,
                "gradient_descent_iterations": dis.setGradientDescentIterations,
                "variational_refinement_iterations": dis.setVariationalRefinementIterations,
                "use_spatial_propagation": dis.setUseSpatialPropagation,
            }
            for key, setter in setters.items():
                if c[key] is not None:
                    setter(c[key])
            self._dis = dis
        return self._dis

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_dis"] = None
        return state

    def estimate(self, ref: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dis = self._engine()
        flows = []
        for r, t in zip(ref, target):
            # OpenCV's calc(I0, I1) gives f with I0(p) ~= I1(p + f(p)): I0 = target, I1 = ref is our backward flow.
            f = dis.calc(_to_gray_u8(t), _to_gray_u8(r), None)
            flows.append(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1))
        return torch.stack(flows).float()


class RAFTFlow(FlowEstimator):
    """torchvision RAFT (Teed & Deng 2020), weights loaded from `weights_path` (no download).

    size: "small" (raft_small) | "large" (raft_large). The file is a state dict such as torchvision's
    Raft_Small_Weights.C_T_V2 / Raft_Large_Weights.C_T_SKHT_V2 checkpoints (fetch them on a machine with
    internet). Inputs are mapped to [-1, 1] and padded (replicate, right/bottom) to multiples of 8 and to at
    least `min_size` (RAFT's correlation pyramid needs 128 px), the flow is cropped back.
    """

    WEIGHT_URLS = {
        "small": "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
        "large": "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    }

    def __init__(self, *, weights_path: str, size: str, num_flow_updates: int, min_size: int):
        super().__init__()
        if size not in self.WEIGHT_URLS:
            raise ConfigError(f"RAFTFlow size {size!r} unknown; choose 'small' or 'large'")
        if min_size % 8:
            raise ConfigError(f"RAFTFlow min_size must be a multiple of 8, got {min_size}")
        self.config = derive_config(RAFTFlow.__init__, locals())
        path = Path(weights_path).expanduser()
        url = self.WEIGHT_URLS[size]
        if not path.is_file():
            raise MissingWeightsError(
                f"RAFT-{size} weights file {path} not found; download {url} (torchvision's "
                f"{Path(url).name}) on a machine with internet and give its path as weights_path"
            )
        from torchvision.models.optical_flow import raft_large, raft_small

        net = (raft_small if size == "small" else raft_large)(weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - unreadable file or another architecture's weights
            raise MissingWeightsError(
                f"{path} is not a RAFT-{size} state dict ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                f"expected torchvision's {Path(url).name} ({url})"
            ) from e
        net.requires_grad_(False)
        self.net = net.eval()

    def estimate(self, ref: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        m = self.config["min_size"]
        ph, pw = max(-h % 8, m - h), max(-w % 8, m - w)
        dev = next(self.net.parameters()).device
        if dev != ref.device:
            self.net.to(ref.device)

        def prep(x):
            x = F.pad(x.float(), (0, pw, 0, ph), mode="replicate") if (ph or pw) else x.float()
            return x * 2.0 - 1.0

        # RAFT(image1, image2) gives f with image1(p) ~= image2(p + f(p)): image1 = target, image2 = ref.
        flows = self.net(prep(target), prep(ref), num_flow_updates=self.config["num_flow_updates"])
        return flows[-1][..., :h, :w]


ESTIMATORS = {"DISFlow": DISFlow, "RAFTFlow": RAFTFlow}


def build_flow_estimator(spec: dict | FlowEstimator) -> FlowEstimator:
    """A FlowEstimator from a module (returned as is) or a dict {"_target_": name, **kwargs}; name is "DISFlow",
    "RAFTFlow" or their full path "gvc.models.flow.DISFlow". "class" is read in place of "_target_" (the spelling
    of model files written before `_target_` became the only one)."""
    if isinstance(spec, FlowEstimator):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(f"flow estimator spec must be a dict or a FlowEstimator, got {type(spec).__name__}")
    kwargs = dict(spec)
    name = kwargs.pop("_target_", None) or kwargs.pop("class", None) or "DISFlow"
    kwargs.pop("class", None)
    short = str(name).removeprefix("gvc.models.flow.")
    if short not in ESTIMATORS:
        raise ConfigError(
            f"unknown flow estimator {name!r}; choose one of {sorted(ESTIMATORS)} (gvc.models.flow)"
        )
    # a spec of an old model file may hold fewer keys: what it was written under (LEGACY_CONFIG)
    return ESTIMATORS[short](**{**LEGACY_CONFIG[f"gvc.models.flow.{short}"], **kwargs})


def flow_spec(estimator: FlowEstimator) -> dict:
    """The JSON-serialisable dict `build_flow_estimator` rebuilds `estimator` from."""
    return {"_target_": f"gvc.models.flow.{type(estimator).__name__}", **estimator.config}


__all__ = ["FlowEstimator", "DISFlow", "RAFTFlow", "build_flow_estimator", "flow_spec", "ESTIMATORS"]
