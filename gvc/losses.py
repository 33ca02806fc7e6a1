"""Training losses: rate from likelihoods, MSE, LPIPS, non-saturating GAN, Charbonnier flow loss.

Frames are (B, 3, H, W) in [0, 1]; LPIPS converts to [-1, 1] inside. Rates are in bits (per batch item) or
bits per pixel (bpp).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gvc.errors import MissingWeightsError
from gvc.models.config import derive_config

log = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def rate_bits(likelihoods: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum of -log2 p over every likelihood tensor (each (B, ...)) -> bits per batch item, shape (B,)."""
    total = None
    for lik in likelihoods.values():
        bits = (-torch.log2(lik)).flatten(1).sum(1)
        total = bits if total is None else total + bits
    if total is None:
        raise ValueError("rate_bits needs at least one likelihood tensor")
    return total


def bpp(likelihoods: Mapping[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Bits per pixel per batch item, (B,): rate_bits / num_pixels, num_pixels = H * W of the unpadded frame."""
    return rate_bits(likelihoods) / float(num_pixels)


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error on the [0, 1] scale (scalar); multiply by 255^2 for HiFiC's [0, 255] scale."""
    return F.mse_loss(x_hat, x)


def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating discriminator loss: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log sigmoid(D(fake)), averaged."""
    return F.softplus(-fake_logits).mean()


def flow_loss(flow_hat: torch.Tensor, flow_ref: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier penalty mean(sqrt((flow_hat - flow_ref)^2 + eps^2)) per flow component, in pixels."""
    return torch.sqrt((flow_hat - flow_ref) ** 2 + eps * eps).mean()


def default_alexnet_path() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights: <torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


class LPIPSLoss(nn.Module):
    """LPIPS (AlexNet, v0.1) distance, frozen; forward(x_hat, x) in [0, 1] -> mean distance (scalar).

    weights_path: the torchvision AlexNet ImageNet weights ("alexnet-owt-7be5be79.pth"); None means the torch
    hub cache. The LPIPS linear layers ship inside the `lpips` wheel. If the AlexNet file is absent,
    MissingWeightsError is raised (never a download) unless allow_random_init=True, which uses a random backbone
    (tests / smoke runs only: the values are then not LPIPS).
    """

    def __init__(self, *, weights_path: str | Path | None, allow_random_init: bool):
        super().__init__()
        import lpips  # heavy import (torchvision); only when LPIPS is used

        path = Path(weights_path).expanduser() if weights_path else default_alexnet_path()
        have_weights = path.is_file()
        if not have_weights and not allow_random_init:
            raise MissingWeightsError(
                f"LPIPS needs the ImageNet AlexNet weights {ALEXNET_FILE} at {path}; download it from "
                f"https://download.pytorch.org/models/{ALEXNET_FILE} and put it there, or give its location "
                f"(train.py: perceptual.weights_path=PATH); to train offline use perceptual=stlpips_alex"
            )
        # pnet_rand=True: build the backbone without torchvision's download; we load the weights ourselves.
        self.net = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        if have_weights:
            import torchvision

            alex = torchvision.models.alexnet(weights=None)
            alex.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            for slice_ in (
                self.net.net.slice1,
                self.net.net.slice2,
                self.net.net.slice3,
                self.net.net.slice4,
                self.net.net.slice5,
            ):
                for name, module in slice_.named_children():
                    module.load_state_dict(alex.features[int(name)].state_dict())
        else:
            log.warning(
                "LPIPSLoss: %s not found; using a RANDOM AlexNet backbone (allow_random_init=True): "
                "LPIPS values are meaningless",
                path,
            )
        self.pretrained_backbone = have_weights
        self.spec = {"_target_": "gvc.losses.LPIPSLoss", **derive_config(LPIPSLoss.__init__, locals())}
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        """Stays in eval mode (frozen, no dropout) whatever the parent does."""
        super().train(False)
        return self

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x_hat * 2.0 - 1.0, x * 2.0 - 1.0).mean()


class STLPIPSLoss(nn.Module):
    """Shift-tolerant LPIPS (Ghildyal & Liu 2022) as a training loss, frozen; forward(x_hat, x) in [0, 1] ->
    mean distance (scalar), differentiable in x_hat.

    The trained networks (`net` "alex" or "vgg") ship inside the `stlpips-pytorch` wheel, so this works offline.
    Its values are ST-LPIPS, not LPIPS: never label them LPIPS. Evaluate a model trained with one backbone with
    the other backbone (a loss that was trained on is no longer an independent measure).
    """

    def __init__(self, *, net: str):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"ST-LPIPS net must be 'alex' or 'vgg', got {net!r}")
        try:
            from stlpips_pytorch import stlpips
        except ImportError as err:  # the wheel imports IPython and torchsummary without declaring them
            raise MissingWeightsError(
                f"the ST-LPIPS loss needs `pip install stlpips-pytorch torchsummary ipython` ({err})"
            ) from err
        self.net_name = net
        self.net = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.pretrained_backbone = True
        self.spec = {"_target_": "gvc.losses.STLPIPSLoss", **derive_config(STLPIPSLoss.__init__, locals())}

    def train(self, mode: bool = True):
        """Stays in eval mode (frozen, no dropout) whatever the parent does."""
        super().train(False)
        return self

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x_hat, x, normalize=True).mean()


#: the perceptual losses a recorded `spec` may name
PERCEPTUAL_LOSSES = {"gvc.losses.LPIPSLoss": LPIPSLoss, "gvc.losses.STLPIPSLoss": STLPIPSLoss}


def perceptual_from_spec(spec: Mapping) -> nn.Module:
    """Rebuild a perceptual loss from its `spec` ({"_target_": "gvc.losses.LPIPSLoss" | "gvc.losses.STLPIPSLoss",
    **kwargs}, as the module records it and a model file's training record carries it), without Hydra.
    ValueError for another target or bad kwargs; MissingWeightsError when its weights are absent."""
    kwargs = dict(spec)
    target = kwargs.pop("_target_", None)
    cls = PERCEPTUAL_LOSSES.get(target)
    if cls is None:
        raise ValueError(f"perceptual loss {target!r}: expected one of {sorted(PERCEPTUAL_LOSSES)}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"perceptual loss {target}: bad arguments {kwargs} ({e})") from e
