"""Mean-scale hyperprior bottleneck [HiFiC / Minnen et al. 2018] over compressai entropy models.

y (B, C_y, h, w) -> z = h_a(y) (B, C_z, h/4, w/4); z is coded with a factorized `EntropyBottleneck`
(rounded around its learned medians), y with a `GaussianConditional` whose means and scales come from the two
towers of h_s(z_hat). Rates are likelihoods (probabilities of the quantization bins, so -log2 gives bits).
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import update_registered_buffers
from torch import nn

from gvc.models.gains import RateGains, as_levels
from gvc.models.quantization import MODES, quantize, ste_round

_ENTROPY_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
#: the CDF buffers (data-dependent sizes) of each entropy model, as compressai's CompressionModel names them
_RESIZED_BUFFERS = (
    ("entropy_bottleneck", _ENTROPY_BUFFERS),
    ("gaussian_conditional", (*_ENTROPY_BUFFERS, "scale_table")),
)


@contextlib.contextmanager
def _num_threads(n: int | None):
    prev = torch.get_num_threads()
    change = n is not None and prev != n
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(prev)


class EntropyPlacement:
    """Where (device, dtype, intra-op threads) the hyper-synthesis h_s runs when a bitstream is coded.

    h_s(z_hat) gives the means and scales; the scales pick each symbol's CDF, so encoder and decoder must get
    bit-identical scales. Passing the same placement to `compress` and `decompress` (the default of gvc.codec:
    CPU, float32, one thread) makes them independent of the device, dtype and thread count the rest of the model
    runs with (GPU encode -> CPU decode included), given the same torch build and CPU instruction set. The
    towers are copied to the placement once per bottleneck (for a bottleneck already there the towers
    themselves are used); a placement object is meant to live for one encode or decode, so the copies never go
    stale. Results come back on z_hat's device in z_hat's dtype.
    """

    def __init__(
        self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, threads: int | None = 1
    ):
        self.device = torch.device(device)
        self.dtype = dtype
        self.threads = None if threads is None else int(threads)
        self._towers: dict[int, tuple[nn.Module, nn.Module, nn.Module]] = {}

    def __repr__(self) -> str:
        return f"EntropyPlacement(device={str(self.device)!r}, dtype={self.dtype}, threads={self.threads})"

    def _placed(self, bn: HyperpriorBottleneck) -> tuple[nn.Module, nn.Module]:
        item = self._towers.get(id(bn))
        if item is None or item[0] is not bn:
            towers = []
            for t in (bn.h_s_mean, bn.h_s_scale):
                here = all(p.device == self.device and p.dtype == self.dtype for p in t.parameters())
                towers.append(t if here else copy.deepcopy(t).to(self.device, self.dtype))
            item = (bn, *towers)
            self._towers[id(bn)] = item
        return item[1], item[2]

    def entropy_parameters(self, bn: HyperpriorBottleneck, z_hat: torch.Tensor):
        mean_tower, scale_tower = self._placed(bn)
        with _num_threads(self.threads), torch.no_grad():
            z = z_hat.detach().to(self.device, self.dtype)
            means, scales = mean_tower(z), scale_tower(z)
        return means.to(z_hat.device, z_hat.dtype), scales.to(z_hat.device, z_hat.dtype)


def scale_table(scale_min: float, scale_max: float, levels: int) -> torch.Tensor:
    """exp(linspace(log scale_min, log scale_max, levels)) (compressai / HiFiC table)."""
    return torch.exp(torch.linspace(math.log(scale_min), math.log(scale_max), levels))


class HyperpriorBottleneck(CompressionModel):
    """Hyperprior entropy model for a latent y with `latent_channels` channels; y's H, W must be multiples of 4.

    A compressai `CompressionModel` (its `aux_loss`; `update` with this model's own scale table); the CDF
    buffers are resized with compressai's `update_registered_buffers` on every load, also when the bottleneck
    is nested in a larger module (a Lightning checkpoint), where CompressionModel.load_state_dict is not called.
    Likelihoods of externally quantized values (STE, soft-round modes) use the entropy models' `_likelihood`:
    their public forward() quantizes by itself (noise, or rounding without gradient).

    h_a: conv3x3 C_z ReLU, conv5x5 s2 C_z ReLU, conv5x5 s2 C_z.
    h_s: two towers (mean, scale), each deconv5x5 s2 C_z ReLU x2, conv3x3 C_y.

    Variable rate (rate_levels >= 2; gvc.models.gains): every call takes a quality level q ((B,) float in
    [0, rate_levels - 1], or a number); y is multiplied by the level's gains before anything else (h_a, the
    quantization and the entropy model all see y * g(q)) and the returned y_hat is the dequantized y_hat' *
    g_inv(q), what synthesis and the conditional discriminators see. rate_levels 0: one rate, q must be None.
    rate_gain_hyper: the hyper-latent z = h_a(y * g) gets per-level gains of its own the same way (z * g_z(q)
    quantized and entropy-coded under the one factorized prior, h_s sees z_hat * g_z_inv(q)), initialised to the
    inverse of y's (so z enters the shared prior at one scale for every level); without them z grows with y's
    gain and the prior must fit every level's z at once (BENCHMARKS.md, "One model for every rate").
    """

    def __init__(
        self,
        latent_channels: int,
        hyper_channels: int,
        scale_min: float = 0.11,
        scale_max: float = 256.0,
        scale_levels: int = 64,
        rate_levels: int = 0,
        rate_gain_init: tuple[float, float] = (0.5, 2.0),
        rate_gain_hyper: bool = False,
    ):
        super().__init__()
        self.rate_levels = int(rate_levels)
        lo, hi = (float(v) for v in rate_gain_init)
        if self.rate_levels and not 0 < lo < hi:
            raise ValueError(
                f"rate_gain_init must be (lowest, highest) gains with 0 < lowest < highest, got {rate_gain_init}"
            )
        self.gains = RateGains(rate_levels, latent_channels, (lo, hi)) if self.rate_levels else None
        hyper = self.rate_levels and rate_gain_hyper
        self.z_gains = RateGains(rate_levels, hyper_channels, (1 / lo, 1 / hi)) if hyper else None
        cy, cz = latent_channels, hyper_channels
        self.h_a = nn.Sequential(
            nn.Conv2d(cy, cz, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cz, cz, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(cz, cz, 5, stride=2, padding=2),
        )

        def tower() -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(cz, cz, 5, stride=2, padding=2, output_padding=1),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(cz, cz, 5, stride=2, padding=2, output_padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(cz, cy, 3, padding=1),
            )

        self.h_s_mean = tower()
        self.h_s_scale = tower()
        self.entropy_bottleneck = EntropyBottleneck(cz)
        table = scale_table(scale_min, scale_max, scale_levels)
        self.gaussian_conditional = GaussianConditional(table.tolist(), scale_bound=scale_min)
        self.downsampling = 4

    # ------------------------------------------------------------------ helpers
    def _z_medians(self) -> torch.Tensor:
        """Medians of the factorized z prior, (1, C_z, 1, 1), detached (trained by aux_loss only)."""
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    def _z_likelihood(self, z_q: torch.Tensor) -> torch.Tensor:
        """Likelihood of quantized (or noisy) z values (B, C, h, w) under the factorized prior."""
        eb = self.entropy_bottleneck
        b, c, h, w = z_q.shape
        # Rates are computed in float32 even under bf16/fp16 autocast: -log2 of small probabilities in bf16
        # would be off by several percent.
        with torch.autocast(device_type=z_q.device.type, enabled=False):
            values = z_q.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
            lik, _, _ = eb._likelihood(values)
            if eb.use_likelihood_bound:
                lik = eb.likelihood_lower_bound(lik)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    def _y_likelihood(self, y_q: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        gc = self.gaussian_conditional
        with torch.autocast(device_type=y_q.device.type, enabled=False):  # float32 rates, as for z
            lik = gc._likelihood(y_q.float(), scales.float(), means.float())
            if gc.use_likelihood_bound:
                lik = gc.likelihood_lower_bound(lik)
        return lik

    def entropy_parameters(
        self, z_hat: torch.Tensor, placement: EntropyPlacement | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h_s(z_hat) -> (means, scales), each (B, C_y, 4h, 4w); on the model's device, or at `placement`."""
        if placement is not None:
            return placement.entropy_parameters(self, z_hat)
        return self.h_s_mean(z_hat), self.h_s_scale(z_hat)

    def coder_scales(self, scales: torch.Tensor) -> torch.Tensor:
        """The scales the entropy coder really uses: each scale snapped up to the next scale-table entry."""
        gc = self.gaussian_conditional
        return gc.scale_table[gc.build_indexes(scales).long()]

    def _check(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or y.shape[-2] % self.downsampling or y.shape[-1] % self.downsampling:
            raise ValueError(
                f"latent y must be (B, C, h, w) with h, w multiples of {self.downsampling}, got {tuple(y.shape)}"
            )

    def level_gains(self, q, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(g, g_inv) (B, C_y, 1, 1) of quality level q, or None for a single-rate bottleneck (q must be None)."""
        if self.gains is None:
            if q is not None:
                raise ValueError("this model codes one rate: it takes no quality level q")
            return None
        if q is None:
            raise ValueError(
                f"this model codes {self.rate_levels} rate levels: give a quality level q in "
                f"[0, {self.rate_levels - 1}]"
            )
        return self.gains(as_levels(q, batch, device))

    def _z_level_gains(self, q, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(g_z, g_z_inv) (B, C_z, 1, 1) of quality level q, or None without hyper-latent gains."""
        return None if self.z_gains is None else self.z_gains(as_levels(q, batch, device))

    @staticmethod
    def _dequantize(y_hat: torch.Tensor, gains) -> torch.Tensor:
        return y_hat if gains is None else y_hat * gains[1].to(y_hat.dtype)

    @staticmethod
    def _gain(z: torch.Tensor, gains) -> torch.Tensor:
        return z if gains is None else z * gains[0].to(z.dtype)

    # ------------------------------------------------------------------ training / evaluation
    def forward(self, y: torch.Tensor, mode: str = "noise", q=None, **qparams) -> dict:
        """Quantize y and z and compute their likelihoods.

        Returns dict(y_hat, z_hat, likelihoods={"y", "z"}, likelihoods_q={"y", "z"} (rounded latents, no
        gradient: `rounded_likelihoods`; the same tensors as `likelihoods` in "round" mode), means, scales). y_hat (what synthesis sees) is
        round(y - mu) + mu with a straight-through gradient in every mode except "round" (hard, no gradient
        through the rounding), which is bit-exactly what `decompress` returns. Likelihoods: "noise" from
        y + U(-0.5, 0.5) (z likewise), "ste" and "round" from the rounded values, "softround_kumaraswamy" from
        the C3 soft quantizer (qparams: temperature, kumaraswamy_a). In "round" mode the y likelihoods use the
        coder's scales (snapped up to the scale table, `coder_scales`), so -log2 of them is the real code length
        up to the coder's fixed per-string overhead; the returned `scales` are then the snapped ones. h_s always sees z rounded around the
        medians (straight-through), i.e. the decoder's z_hat, so means/scales match the decoder's in value.
        """
        if mode not in MODES:
            raise ValueError(f"unknown quantization mode {mode!r}; expected one of {MODES}")
        self._check(y)
        gains = self.level_gains(q, y.shape[0], y.device)
        z_gains = self._z_level_gains(q, y.shape[0], y.device)
        y = self._gain(y, gains)
        z = self._gain(self.h_a(y), z_gains)
        med = self._z_medians()
        if mode == "round":
            z_hat = torch.round(z - med) + med
        else:
            z_hat = ste_round(z - med) + med
        z_lik_in = z_hat if mode in ("ste", "round") else quantize(z, mode, med, **qparams)
        z_likelihood = self._z_likelihood(z_lik_in)

        means, scales = self.entropy_parameters(self._dequantize(z_hat, z_gains))
        if mode == "round":
            y_hat = torch.round(y - means) + means
        else:
            y_hat = ste_round(y - means) + means
        y_lik_in = y_hat if mode in ("ste", "round") else quantize(y, mode, means, **qparams)
        if mode == "round":
            scales = self.coder_scales(scales)
        y_likelihood = self._y_likelihood(y_lik_in, scales, means)
        likelihoods = {"y": y_likelihood, "z": z_likelihood}
        if mode == "round":
            rounded = likelihoods
        else:
            rounded = self.rounded_likelihoods(y_hat, z_hat, means, scales)
        return {
            "y_hat": self._dequantize(y_hat, gains),
            "z_hat": z_hat,
            "likelihoods": likelihoods,
            "likelihoods_q": rounded,
            "means": means,
            "scales": scales,
        }

    @torch.no_grad()
    def rounded_likelihoods(
        self, y_hat: torch.Tensor, z_hat: torch.Tensor, means: torch.Tensor, scales: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Likelihoods of the ROUNDED latents the file will carry (HiFiC's `qbpp`), without gradient:
        y_hat = round(y - mu) + mu and z_hat under the coder's scales (snapped up to the scale table), so
        -log2 of them is the real code length up to the coder's per-string flush. The rate controller reads
        these; the noisy likelihoods stay the loss term (docs/METHOD.md section 1.4)."""
        y_q = y_hat.detach()
        return {
            "y": self._y_likelihood(y_q, self.coder_scales(scales.detach()), means.detach()),
            "z": self._z_likelihood(z_hat.detach()),
        }

    # ------------------------------------------------------------------ real bitstreams
    @torch.no_grad()
    def compress(
        self, y: torch.Tensor, placement: EntropyPlacement | None = None, likelihoods: bool = False, q=None
    ) -> dict:
        """Entropy-code y. Returns dict(strings=[y_strings, z_strings] (lists of bytes, one per batch item),
        shape=(h_z, w_z), y_hat, z_hat) where y_hat equals `decompress(...)["y_hat"]` (same placement) and
        forward(mode="round"). likelihoods=True adds likelihoods={"y", "z"} of the rounded latents under the
        coder's scales (forward(mode="round")'s: -log2 is the code length up to the coder's flush)."""
        self._check(y)
        gains = self.level_gains(q, y.shape[0], y.device)
        z_gains = self._z_level_gains(q, y.shape[0], y.device)
        y = self._gain(y, gains)
        z = self._gain(self.h_a(y), z_gains)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.entropy_parameters(self._dequantize(z_hat, z_gains), placement)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = torch.round(y - means) + means
        out = {
            "strings": [y_strings, z_strings],
            "shape": tuple(z.shape[-2:]),
            "y_hat": self._dequantize(y_hat, gains),
            "z_hat": z_hat,
        }
        if likelihoods:
            out["likelihoods"] = {
                "y": self._y_likelihood(y_hat, self.coder_scales(scales), means),
                "z": self._z_likelihood(z_hat),
            }
        return out

    @torch.no_grad()
    def decompress(self, strings: list, shape, placement: EntropyPlacement | None = None, q=None) -> dict:
        """Inverse of `compress` (with the same placement and q): strings=[y_strings, z_strings],
        shape=(h_z, w_z) -> dict(y_hat (dequantized), z_hat)."""
        if len(strings) != 2:
            raise ValueError(f"expected strings=[y_strings, z_strings], got {len(strings)} lists")
        z_hat = self.entropy_bottleneck.decompress(strings[1], tuple(shape))
        gains = self.level_gains(q, z_hat.shape[0], z_hat.device)
        z_gains = self._z_level_gains(q, z_hat.shape[0], z_hat.device)
        means, scales = self.entropy_parameters(self._dequantize(z_hat, z_gains), placement)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, means=means)
        return {"y_hat": self._dequantize(y_hat, gains), "z_hat": z_hat}

    def update(self, scale_table=None, force: bool = True, update_quantiles: bool = False) -> bool:
        """Build the CDF tables of both entropy models (call after training, before compress/decompress);
        compressai's CompressionModel.update with this bottleneck's scale table unless one is given.

        `update_quantiles=True` first recomputes the z quantiles by bisection (exact, instead of relying on
        aux_loss training); this changes the z medians and hence the rounding of z.
        """
        if scale_table is None:
            scale_table = self.gaussian_conditional.scale_table
        return super().update(scale_table=scale_table, force=force, update_quantiles=update_quantiles)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module's load: the buffers are resized in `_load_from_state_dict`, which also runs for nested
        loads and partial state dicts (CompressionModel.load_state_dict needs every CDF key)."""
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # CDF buffers have data-dependent sizes: resize ours to the incoming ones before the copy.
        for name, buffers in _RESIZED_BUFFERS:
            present = [b for b in buffers if f"{prefix}{name}.{b}" in state_dict]
            update_registered_buffers(
                getattr(self, name), f"{prefix}{name}", present, state_dict, policy="resize"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
