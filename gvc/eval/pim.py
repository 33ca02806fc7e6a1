"""PIM (Bhardwaj, Fischer, Ballé, Chinen 2020) ported to PyTorch, with a converter for the TF checkpoints.

The reference is TensorFlow (google-research/perceptual-quality, ``pim.load_trained("pim-1" | "pim-5")``).
Network, as in the reference (its default config: steerable, 3 scales, sp1 filters, 'same' padding):

1. Front end: a steerable pyramid applied per colour channel (depthwise convolutions, zero 'same' padding;
   the lowpass is downsampled by 2 with explicit symmetric padding). sp1 has 2 oriented bands, so there are
   3 x 2 + 2 = 8 levels, ordered coarse to fine: ``[lowpass, s2b1, s2b0, s1b1, s1b0, s0b1, s0b0, highpass]``.
2. Per level its own CNN: 5x5 convolutions with 64, 64, 64, 3 filters, ReLU between ('same' padding).
3. Per level and pixel a marginal encoder: ``nlayers`` dense ReLU layers to ``z_dim * mixtures`` give the
   component means (the reference then skips its unused ``mus`` layer because the width already matches), and
   ``nlayers`` dense ReLU layers to ``mixtures`` plus a linear layer give the mixture logits. Each component is
   a unit-variance diagonal Gaussian over ``z_dim`` (10) dimensions.
4. Distance: PIM-1 (1 component) = mean over levels of the mean squared difference of the means; PIM-5 =
   symmetrised KL divergence estimated with ``kld_samples`` samples (log-probabilities averaged over pixels,
   then levels). Sampling uses a seeded generator so results are repeatable.

Weights: ``python -m gvc.eval.pim convert --model pim-5 --weights-cache DIR --out pim-5.pt`` (needs
TensorFlow, tensorflow-probability and the reference package; run it where they and the checkpoint exist).
It writes our state dict plus a check (two fixed images and the TF encoder outputs);
``python -m gvc.eval.pim verify pim-5.pt`` recomputes them with this port. Without a converted file the
metric is unavailable, never a number.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gvc.errors import ConfigError, MissingWeightsError

FORMAT_VERSION = 1


def steerable_filters(filter_type: int = 1) -> dict[str, np.ndarray]:
    """Simoncelli steerable-pyramid filter tables ``sp{filter_type}`` from pyrtools (same tables as the reference).

    Returns ``lo0filt``, ``hi0filt``, ``lofilt`` (2-D) and ``bfilts`` (k*k, bands), float64.
    """
    try:
        from pyrtools.pyramids.filters import steerable_filters as _filters
    except ImportError as err:
        raise MissingWeightsError(
            f"PIM needs the steerable filter tables of `pip install pyrtools` ({err})"
        ) from err
    table = _filters(f"sp{filter_type}_filters")
    return {k: np.asarray(table[k], dtype=np.float64) for k in ("lo0filt", "hi0filt", "lofilt", "bfilts")}


class SteerablePyramid(nn.Module):
    """Steerable pyramid front end of PIM: ``(N, C, H, W)`` -> list of ``2 + scales * bands`` subbands, coarse first.

    Matches the reference: depthwise cross-correlation, zero padding of ``k // 2`` on each side, the lowpass
    downsampled with stride 2 (output ceil(H / 2) for odd sizes, as TF 'SAME' with explicit padding).
    """

    def __init__(self, num_scales: int = 3, filter_type: int = 1, num_channels: int = 3):
        super().__init__()
        self.num_scales = num_scales
        self.num_channels = num_channels
        filters = steerable_filters(filter_type)

        def depthwise(kernel: np.ndarray) -> torch.Tensor:
            weight = torch.as_tensor(kernel, dtype=torch.float32)[None, None]
            return weight.repeat(num_channels, 1, 1, 1)

        self.register_buffer("lo0", depthwise(filters["lo0filt"]), persistent=False)
        self.register_buffer("hi0", depthwise(filters["hi0filt"]), persistent=False)
        self.register_buffer("lo", depthwise(filters["lofilt"]), persistent=False)
        bfilts = filters["bfilts"]
        size = int(round(math.sqrt(bfilts.shape[0])))
        bands = []
        for b in range(bfilts.shape[1]):
            kernel = bfilts[:, b].reshape(size, size).T
            if (size // 2) % 2:
                kernel = np.pad(kernel, 1)
            bands.append(depthwise(kernel))
        self.register_buffer("bands", torch.stack(bands), persistent=False)
        self.num_levels = num_scales * len(bands) + 2

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
        pad = weight.shape[-1] // 2
        return F.conv2d(x, weight, stride=stride, padding=pad, groups=self.num_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self._conv(x, self.hi0)]
        low = self._conv(x, self.lo0)
        for _ in range(self.num_scales):
            for band in self.bands:
                levels.append(self._conv(low, band))
            low = self._conv(low, self.lo, stride=2)
        levels.append(low)
        return levels[::-1]


class LevelCNN(nn.Sequential):
    """Per-level CNN: 5x5 'same' convolutions ``num_filters`` wide with ReLU between (none after the last)."""

    def __init__(self, in_channels: int = 3, num_filters=(64, 64, 64, 3), kernel_size: int = 5):
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(num_filters):
            layers.append(nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2))
            if i < len(num_filters) - 1:
                layers.append(nn.ReLU())
            channels = width
        super().__init__(*layers)


class MarginalEncoder(nn.Module):
    """Per-pixel mixture of unit Gaussians: features ``(N, H, W, C)`` -> means ``(N, H, W, K, Z)``, logits (N,H,W,K)."""

    def __init__(self, in_features: int = 3, num_layers: int = 2, z_dim: int = 10, num_mixtures: int = 5):
        super().__init__()
        self.z_dim = z_dim
        self.num_mixtures = num_mixtures
        width = z_dim * num_mixtures
        self.base = nn.ModuleList(
            nn.Linear(in_features if i == 0 else width, width) for i in range(num_layers)
        )
        if num_mixtures > 1:
            self.mix = nn.ModuleList(
                nn.Linear(in_features if i == 0 else num_mixtures, num_mixtures) for i in range(num_layers)
            )
            self.logits = nn.Linear(num_mixtures, num_mixtures)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        net = f
        for layer in self.base:
            net = F.relu(layer(net))
        means = net.reshape(*net.shape[:-1], self.num_mixtures, self.z_dim)
        if self.num_mixtures == 1:
            return means, None
        mix = f
        for layer in self.mix:
            mix = F.relu(layer(mix))
        return means, self.logits(mix)


def _mixture_log_prob(value: torch.Tensor, means: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """log p(value) under the unit-variance Gaussian mixture; value (..., Z), means (..., K, Z) -> (...)."""
    z_dim = means.shape[-1]
    comp = -0.5 * (value.unsqueeze(-2) - means).pow(2).sum(-1) - 0.5 * z_dim * math.log(2 * math.pi)
    if logits is None:
        return comp.squeeze(-1)
    return torch.logsumexp(torch.log_softmax(logits, dim=-1) + comp, dim=-1)


def _mixture_sample(
    samples: int, means: torch.Tensor, logits: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """``samples`` draws of the mixture -> (S, ..., Z)."""
    if logits is None:
        chosen = means.squeeze(-2).expand(samples, *means.shape[:-2], means.shape[-1])
    else:
        probs = torch.softmax(logits, dim=-1).reshape(-1, logits.shape[-1])
        index = torch.multinomial(probs, samples, replacement=True, generator=generator).T  # (S, M)
        flat = means.reshape(-1, *means.shape[-2:])  # (M, K, Z)
        rows = torch.arange(flat.shape[0], device=means.device)
        chosen = flat[rows[None], index].reshape(samples, *means.shape[:-2], means.shape[-1])
    noise = torch.randn(chosen.shape, generator=generator, device=means.device, dtype=means.dtype)
    return chosen + noise


class PIM(nn.Module):
    """The PIM network. Inputs ``(N, 3, H, W)`` sRGB in [0, 1]; :meth:`distance` -> ``(N,)`` (lower = closer)."""

    def __init__(
        self,
        num_scales: int = 3,
        filter_type: int = 1,
        num_filters=(64, 64, 64, 3),
        kernel_size: int = 5,
        num_channels: int = 3,
        z_dim: int = 10,
        num_mixtures: int = 5,
        num_layers: int = 2,
    ):
        super().__init__()
        self.config = dict(
            num_scales=num_scales,
            filter_type=filter_type,
            num_filters=list(num_filters),
            kernel_size=kernel_size,
            num_channels=num_channels,
            z_dim=z_dim,
            num_mixtures=num_mixtures,
            num_layers=num_layers,
        )
        self.num_mixtures = num_mixtures
        self.pyramid = SteerablePyramid(num_scales, filter_type, num_channels)
        levels = self.pyramid.num_levels
        self.cnns = nn.ModuleList(LevelCNN(num_channels, num_filters, kernel_size) for _ in range(levels))
        self.encoders = nn.ModuleList(
            MarginalEncoder(num_filters[-1], num_layers, z_dim, num_mixtures) for _ in range(levels)
        )

    def encode(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per level (coarse first): component means ``(N, h, w, K, Z)`` and mixture logits ``(N, h, w, K)``."""
        out = []
        for level, cnn, encoder in zip(self.pyramid(x), self.cnns, self.encoders):
            out.append(encoder(cnn(level).permute(0, 2, 3, 1)))
        return out

    def distance(
        self, x: torch.Tensor, y: torch.Tensor, kld_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """PIM distance per image ``(N,)`` between ``x`` and ``y`` in [0, 1]."""
        dx, dy = self.encode(x), self.encode(y)
        if self.num_mixtures == 1:
            per_level = [(mx - my).pow(2).flatten(1).mean(1) for (mx, _), (my, _) in zip(dx, dy)]
            return torch.stack(per_level).mean(0)

        def kl(d1, d2) -> torch.Tensor:
            per_level = []
            for (m1, l1), (m2, l2) in zip(d1, d2):
                s = _mixture_sample(kld_samples, m1, l1, generator)  # (S, N, h, w, Z)
                ratio = _mixture_log_prob(s, m1, l1) - _mixture_log_prob(s, m2, l2)
                per_level.append(ratio.mean(dim=(-2, -1)))  # (S, N)
            return torch.stack(per_level).mean(0).mean(0)

        return kl(dx, dy) + kl(dy, dx)


# --------------------------------------------------------------------------------------------- weights
def state_dict_from_tf(
    model: PIM, cnn_layers: list[list[tuple]], enc_layers: list[dict]
) -> dict[str, torch.Tensor]:
    """Our state dict from TF arrays: ``cnn_layers[level][j] = (kernel (kh, kw, in, out), bias)``;
    ``enc_layers[level] = {"base": [(kernel (in, out), bias)...], "mix": [...], "logits": (kernel, bias)}``."""
    state: dict[str, torch.Tensor] = {}
    for level, layers in enumerate(cnn_layers):
        convs = [i for i, m in enumerate(model.cnns[level]) if isinstance(m, nn.Conv2d)]
        if len(convs) != len(layers):
            raise ConfigError(f"level {level}: TF has {len(layers)} conv layers, the port {len(convs)}")
        for index, (kernel, bias) in zip(convs, layers):
            state[f"cnns.{level}.{index}.weight"] = torch.as_tensor(np.transpose(kernel, (3, 2, 0, 1)).copy())
            state[f"cnns.{level}.{index}.bias"] = torch.as_tensor(np.asarray(bias))
    for level, enc in enumerate(enc_layers):
        for name in ("base", "mix"):
            for j, (kernel, bias) in enumerate(enc.get(name, [])):
                state[f"encoders.{level}.{name}.{j}.weight"] = torch.as_tensor(np.asarray(kernel).T.copy())
                state[f"encoders.{level}.{name}.{j}.bias"] = torch.as_tensor(np.asarray(bias))
        if enc.get("logits") is not None:
            kernel, bias = enc["logits"]
            state[f"encoders.{level}.logits.weight"] = torch.as_tensor(np.asarray(kernel).T.copy())
            state[f"encoders.{level}.logits.bias"] = torch.as_tensor(np.asarray(bias))
    return {k: v.float() for k, v in state.items()}


def tf_layout_from_state_dict(model: PIM) -> tuple[list[list[tuple]], list[dict]]:
    """Inverse of :func:`state_dict_from_tf` (TF layouts of this model's weights); used by tests and verify."""
    cnn_layers = []
    for cnn in model.cnns:
        cnn_layers.append(
            [
                (m.weight.detach().numpy().transpose(2, 3, 1, 0), m.bias.detach().numpy())
                for m in cnn
                if isinstance(m, nn.Conv2d)
            ]
        )
    enc_layers = []
    for enc in model.encoders:
        entry: dict[str, Any] = {
            "base": [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in enc.base]
        }
        if enc.num_mixtures > 1:
            entry["mix"] = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in enc.mix]
            entry["logits"] = (enc.logits.weight.detach().numpy().T, enc.logits.bias.detach().numpy())
        enc_layers.append(entry)
    return cnn_layers, enc_layers


def save_pim(path: str | Path, model: PIM, check: Mapping[str, Any] | None = None, source: str = "") -> None:
    """Write a converted PIM file: config, state dict, optional check tensors, provenance string."""
    torch.save(
        {
            "format": "gvc-pim",
            "version": FORMAT_VERSION,
            "config": model.config,
            "state_dict": model.state_dict(),
            "check": dict(check or {}),
            "source": source,
        },
        path,
    )


def load_pim(path: str | Path) -> PIM:
    """Load a converted PIM file; MissingWeightsError when absent, ConfigError when not a PIM file."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"PIM weights not found at {path}; convert them with `python -m gvc.eval.pim convert` (see docs)"
        )
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != "gvc-pim":
        raise ConfigError(f"{path} is not a converted PIM file (python -m gvc.eval.pim convert)")
    model = PIM(**blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval().requires_grad_(False)


def verify(path: str | Path, atol: float = 1e-4) -> float:
    """Recompute the check stored by the converter; returns the max abs difference of encoder outputs."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    check = blob.get("check") or {}
    if "x" not in check:
        raise ConfigError(f"{path} holds no check data")
    model = load_pim(path)
    x = torch.as_tensor(check["x"]).permute(0, 3, 1, 2).float()
    worst = 0.0
    with torch.no_grad():
        for level, (means, logits) in enumerate(model.encode(x)):
            ref = torch.as_tensor(check["means"][level]).float().reshape(means.shape)
            worst = max(worst, float((means - ref).abs().max()))
            if logits is not None:
                worst = max(
                    worst, float((logits - torch.as_tensor(check["logits"][level]).float()).abs().max())
                )
    if worst > atol:
        raise ConfigError(f"PIM port differs from the TF reference by {worst:.3g} (> {atol})")
    return worst


# --------------------------------------------------------------------------------------------- converter
def convert(model_name: str, weights_cache: str, out: str) -> None:  # pragma: no cover - needs TensorFlow
    """Convert the reference TF checkpoint ``model_name`` ("pim-1" | "pim-5") found in ``weights_cache``.

    Needs ``tensorflow``, ``tensorflow-probability`` and the reference package
    (``pip install https://github.com/google-research/perceptual-quality/archive/master.zip``);
    ``load_trained`` downloads the checkpoint into ``weights_cache`` when it is not there.
    """
    try:
        import tensorflow as tf
        from perceptual_quality import pim as tf_pim
    except ImportError as err:
        raise SystemExit(f"the converter needs TensorFlow and the perceptual_quality package: {err}") from err
    tf_model = tf_pim.load_trained(model_name, weights_cache=weights_cache)  # downloads when not cached
    params = json.loads((Path(weights_cache) / model_name / "config.json").read_text())
    if params.get("multiscale") != "Steerable" or params.get("padding", "same").lower() != "same":
        raise SystemExit(f"only the steerable / same-padding PIM is ported, got {params}")
    rng = np.random.default_rng(0)
    x = rng.random((1, 64, 64, 3), dtype=np.float32)
    dists = tf_model((tf.constant(x), tf.constant(x)), return_distributions=True)["z_x"].components
    model = PIM(
        num_scales=params["nscales"],
        filter_type=params["steerable_filter_type"],
        num_filters=params["num_filters"],
        num_channels=params["num_channels"],
        z_dim=params["z_dim"],
        num_mixtures=params["num_marginal_encoder_mixtures"],
        num_layers=params["num_distribution_encoder_layers"],
    )
    cnn_layers = [
        [(layer.kernel.numpy(), layer.bias.numpy()) for layer in cnn.layers] for cnn in tf_model.frontend.cnns
    ]
    enc_layers = []
    for enc in tf_model.marginal_encoder.encoders:
        entry: dict[str, Any] = {"base": [(d.kernel.numpy(), d.bias.numpy()) for d in enc.base]}
        if enc.nmix > 1:
            entry["mix"] = [(d.kernel.numpy(), d.bias.numpy()) for d in enc.mix]
            entry["logits"] = (enc.logit_layer.kernel.numpy(), enc.logit_layer.bias.numpy())
        enc_layers.append(entry)
    model.load_state_dict(state_dict_from_tf(model, cnn_layers, enc_layers))
    means, logits = [], []
    for d in dists:
        if model.num_mixtures > 1:
            means.append(d.components_distribution.loc.numpy())
            logits.append(d.mixture_distribution.logits.numpy())
        else:
            means.append(d.loc.numpy())
    check = {"x": x, "means": means, "logits": logits}
    save_pim(out, model, check, source=f"{model_name} from google-research/perceptual-quality")
    print(f"wrote {out}; max abs difference to TF: {verify(out):.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gvc.eval.pim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="TF checkpoint -> gvc PIM file (needs TensorFlow)")
    conv.add_argument("--model", default="pim-5", choices=["pim-1", "pim-5"])
    conv.add_argument("--weights-cache", default="/tmp/pim_weights")
    conv.add_argument("--out", required=True)
    ver = sub.add_parser("verify", help="recompute the converter's check with the PyTorch port")
    ver.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "convert":
        convert(args.model, args.weights_cache, args.out)
    else:
        print(f"max abs difference to TF reference: {verify(args.path):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
