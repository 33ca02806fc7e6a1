"""Photometric augmentation of training clips: a random brightness and saturation per clip (conf/data/augment/).

Both act on the gamma-encoded R'G'B' frames in [0, 1] the codec trains on, the same way on every frame of a clip (so
a P-frame sees the change its reference saw):

- brightness b scales R'G'B' about black, i.e. Y' - black and Cb, Cr - neutral by b (a darker or brighter
  exposure of the same scene);
- saturation s scales R'G'B' - Y' by s, i.e. Cb and Cr about neutral by s with Y' kept (Y' = Kr R' + Kg G' + Kb B'
  with the clip's matrix, gvc.data.color.MATRICES).

The result is clamped to [0, 1], as a conversion from 8-bit YUV clamps. The draws come from the sample's own
generator (gvc.data.sampling.sample_generator), so a resumed or multi-worker run sees the same clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gvc.data.color import luma_coefficients
from gvc.errors import ConfigError


def jitter(clip: torch.Tensor, brightness: float, saturation: float, matrix: str = "bt709") -> torch.Tensor:
    """clip (..., 3, H, W) R'G'B' in [0, 1] -> the same with Y' and Cb, Cr scaled by `brightness` about black and
    Cb, Cr by `saturation` about neutral (see module doc), clamped to [0, 1]."""
    kr, kg, kb = luma_coefficients(matrix)
    w = clip.new_tensor([kr, kg, kb]).view(3, 1, 1)
    luma = (clip * w).sum(dim=-3, keepdim=True)
    return (brightness * (luma + saturation * (clip - luma))).clamp_(0.0, 1.0)


class PhotometricJitter:
    """With probability `prob`, one brightness factor drawn log-uniformly from `brightness` = [low, high] and one
    saturation factor drawn uniformly from `saturation` = [low, high] for a whole clip; otherwise the clip
    unchanged. Three numbers are drawn from the generator either way, so the draws after it do not depend on
    whether a clip was jittered."""

    def __init__(self, *, prob: float, brightness: Sequence[float], saturation: Sequence[float]):
        if not 0.0 <= float(prob) <= 1.0:
            raise ConfigError(f"data.augment.prob must be in [0, 1], got {prob}")
        self.prob = float(prob)
        self.brightness = self._range("brightness", brightness, low_min=0.0, strict=True)
        self.saturation = self._range("saturation", saturation, low_min=0.0, strict=False)

    @staticmethod
    def _range(name: str, value: Sequence[float], low_min: float, strict: bool) -> tuple[float, float]:
        bad = ConfigError(
            f"data.augment.{name} must be [low, high] with {low_min} {'<' if strict else '<='} low <= high, "
            f"got {value}"
        )
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError):
            raise bad from None
        if (low <= low_min if strict else low < low_min) or high < low:
            raise bad
        return low, high

    def draw(self, rng: torch.Generator | None) -> tuple[float, float] | None:
        """(brightness, saturation) for one clip, or None (the clip stays as it is)."""
        u = torch.rand(3, generator=rng, dtype=torch.float64).tolist()
        if u[0] >= self.prob:
            return None
        lo, hi = self.brightness
        b = math.exp(math.log(lo) + u[1] * (math.log(hi) - math.log(lo)))
        s = self.saturation[0] + u[2] * (self.saturation[1] - self.saturation[0])
        return b, s

    def __call__(
        self, clip: torch.Tensor, rng: torch.Generator | None, matrix: str = "bt709"
    ) -> torch.Tensor:
        """clip (T, 3, H, W) float in [0, 1] -> the jittered clip (or the same tensor when not drawn)."""
        factors = self.draw(rng)
        return clip if factors is None else jitter(clip, *factors, matrix=matrix)

    def __repr__(self) -> str:
        return (
            f"PhotometricJitter(prob={self.prob}, brightness={self.brightness}, saturation={self.saturation})"
        )


def jitter_from_node(node: dict) -> PhotometricJitter:
    """The jitter of a conf/data/augment/*.yaml mapping ({_target_, prob, brightness, saturation}), built without
    Hydra (gvc.data.datamodule.from_conf; train.py instantiates it); ConfigError for another target or key."""
    kw = dict(node)
    target = kw.pop("_target_", None)
    if target != f"{__name__}.PhotometricJitter":
        raise ConfigError(f"data.augment._target_ must be {__name__}.PhotometricJitter, got {target}")
    unknown = sorted(set(kw) - {"prob", "brightness", "saturation"})
    if unknown:
        raise ConfigError(f"unknown config key data.augment.{unknown[0]}: use prob, brightness, saturation")
    return PhotometricJitter(**kw)
