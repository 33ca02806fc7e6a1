"""Distribution metrics: FID and KID over HiFiC-style 256x256 patches (Inception-v3 features, torch-fidelity)."""

from __future__ import annotations

import numpy as np
import torch

from gvc.errors import MissingWeightsError
from gvc.eval.metrics.base import resolve_weights


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
        path = resolve_weights(weights_path, weights_name, "FID Inception-v3 (torch-fidelity)")
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
