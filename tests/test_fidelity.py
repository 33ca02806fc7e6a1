"""Training fidelity (the paper's codec as written): each test fails on the code before the fixes.

1. the rate controller reads the rounded-latent bpp; 2. it settles on a toy plant; 3. the loss composition;
4. float32 motion compensation under bf16 autocast; 5. the residual mapping; 6. flow warm-up / anneal / EPE;
8. the free-latent gradient switch.
"""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc import config_dir, losses
from gvc.models.bottleneck import HyperpriorBottleneck
from gvc.models.latents import FrameOut
from gvc.models.warp import backward_warp, scale_space_blur
from gvc.objectives import IFrameObjective, LossWeights, PFrameObjective
from gvc.rate_control import ProportionalRateController, TwoLevelRateController
from gvc.training import schedule
from tests.models.test_pframe import frames, make_codecs

ROOT = Path(__file__).resolve().parents[1]


def hifi_weights(**override) -> LossWeights:
    """LossWeights from conf/loss/gan.yaml (the one source of the HiFiC values), optionally overridden."""
    cfg = {**OmegaConf.to_container(OmegaConf.load(config_dir() / "loss" / "gan.yaml")), **override}
    return LossWeights.from_config(cfg)


# ------------------------------------------------------------------------------------------------ 1. bpp_q


def test_constant_latent_costs_bits_when_noisy_but_not_when_rounded():
    """A constant y: the noisy rate has a floor of ~0.15 bit/element at the smallest scale (0.11), the rounded
    one is ~0. That floor is why the controller must read the rounded rate."""
    torch.manual_seed(0)
    bn = HyperpriorBottleneck(16, 8)
    with torch.no_grad():  # a hyperprior that predicts the smallest scale and mean 0 everywhere
        for tower in (bn.h_s_mean, bn.h_s_scale):
            for m in tower.modules():
                if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                    m.weight.zero_()
                    m.bias.zero_()
    y = torch.zeros(2, 16, 8, 8)
    out = bn(y, mode="noise")
    per_element = lambda lik: float((-torch.log2(lik["y"])).mean())  # noqa: E731
    assert per_element(out["likelihoods"]) > 0.1
    assert per_element(out["likelihoods_q"]) < 0.01
    assert not out["likelihoods_q"]["y"].requires_grad
    rounded = bn(y, mode="round")["likelihoods"]
    assert torch.allclose(out["likelihoods_q"]["y"], rounded["y"])


def test_iframe_training_feeds_the_controller_the_rounded_rate():
    """With learning rates 0 the weights stay put, so the value the controller received must equal the
    round-mode (file) bpp of the same batch, not the noisy one."""
    from tests._training_helpers import fit_on_batches, tiny_module

    m = tiny_module("smoke_iframe", ["stage.warmup_steps=10", "stage.lr=0", "stage.aux_lr=0"])
    fed = []
    update = m.rate_controller.update
    m.rate_controller.update = lambda bpp: fed.append(bpp) or update(bpp)
    torch.manual_seed(0)
    x = torch.rand(2, 1, 3, 64, 64)
    fit_on_batches(m, [x], max_steps=1)
    with torch.no_grad():
        rounded = m.codec(x[:, 0], mode="round")
        noisy = m.codec(x[:, 0], mode="noise")
    want = float(losses.bpp(rounded.likelihoods, 64 * 64).mean())
    assert len(fed) == 1 and fed[0] == pytest.approx(want, rel=1e-4)
    assert abs(float(losses.bpp(noisy.likelihoods, 64 * 64).mean()) - want) > 0.05 * want  # not the noisy one


# ------------------------------------------------------------------------------------------------ 2. controller


class ToyPlant:
    """A model whose rate responds to lambda_R with lag and noise: the rate relaxes (time constant `tau` steps)
    towards a / lambda^0.6, plus 5% multiplicative noise; `floor` forces a stretch of collapse (rate ~0)."""

    def __init__(self, a: float = 1.0, tau: float = 30.0, seed: int = 0):
        self.a, self.tau = a, tau
        self.rate = a
        self.gen = torch.Generator().manual_seed(seed)

    def step(self, lam: float, collapsed: bool = False) -> float:
        goal = 1e-4 if collapsed else self.a / lam**0.6
        self.rate += (goal - self.rate) / self.tau
        noise = 1.0 + 0.05 * float(torch.randn((), generator=self.gen))
        return max(self.rate * noise, 0.0)


def _run(ctrl, plant, steps, collapse=range(0)):
    trace = []
    for i in range(steps):
        trace.append(plant.step(ctrl.lambda_r, collapsed=i in collapse))
        ctrl.update(trace[-1])
    return trace


def _controller(target, lam0):
    return ProportionalRateController(
        target_bpp=target,
        lambda_init=lam0,
        k_p=0.01,
        ema_decay=0.99,
        lambda_min=1e-2,
        lambda_max=1e4,
        max_relative_error=1.0,
    )


@pytest.mark.parametrize("lam0", [0.5, 500.0], ids=["from_above", "from_below"])
def test_controller_settles_within_3_percent(lam0):
    """conf/rate/proportional.yaml's gains: from a rate 3x above or 16x below the target the EMA settles within
    +-3% of it and stays there."""
    target = 0.13
    ctrl = _controller(target, lam0)
    plant = ToyPlant()
    _run(ctrl, plant, 4000)
    window = []
    for _ in range(1000):
        plant.step(ctrl.lambda_r)
        ctrl.update(plant.rate)
        window.append(ctrl.bpp_ema)
    assert all(abs(b - target) <= 0.03 * target for b in window), (min(window), max(window))


def test_controller_recovers_promptly_after_a_stretch_at_its_bound():
    """1500 steps of collapsed latents (rate ~0) push lambda_R to its lower clamp; the clamp keeps it from winding
    up, so after the collapse ends the rate is back within +-3% of target within 2500 steps. (The climb from the
    clamp back to the operating lambda_R (~30, 3000x above it) takes at least ln(3000) / k_p = 800 steps at the
    clipped error; on the way the plant overshoots, since at lambda_min it would code ~16 bpp.)"""
    target = 0.13
    ctrl = _controller(target, 5.0)
    plant = ToyPlant()
    _run(ctrl, plant, 3000)
    _run(ctrl, plant, 1500, collapse=range(1500))
    assert ctrl.lambda_r == ctrl.lambda_min
    _run(ctrl, plant, 2500)
    tail = []
    for _ in range(300):
        ctrl.update(plant.step(ctrl.lambda_r))
        tail.append(ctrl.bpp_ema)
    assert all(abs(b - target) <= 0.03 * target for b in tail), (min(tail), max(tail))


def test_two_level_controller_hifics_values_and_early_schedule():
    """conf/rate/two_level.yaml: 640 above / 5 below the target, and for the first 50k steps a target x 0.20/0.14
    and a rate weight x 1/2; the state (including the step count) round-trips."""
    from omegaconf import OmegaConf

    from tests._training_helpers import CONF

    cfg = OmegaConf.load(CONF / "rate" / "two_level.yaml")
    ctrl = TwoLevelRateController(
        lambda_a=cfg.lambda_a,
        lambda_b=cfg.lambda_b,
        target_bpp=0.14,
        ema_decay=cfg.ema_decay,
        schedule_steps=cfg.schedule_steps,
        target_factor=cfg.target_factor,
        lambda_factor=cfg.lambda_factor,
    )
    assert (ctrl.lambda_a, ctrl.lambda_b) == (640.0, 5.0)
    assert ctrl.current_target() == pytest.approx(0.20)
    assert ctrl.update(0.19) == 2.5  # below the early target 0.20: lambda_b / 2
    assert ctrl.update(0.21) == 320.0
    ctrl.steps = 50000
    assert ctrl.current_target() == pytest.approx(0.14)
    assert ctrl.update(0.19) == 640.0 and ctrl.update(0.13) == 5.0
    clone = TwoLevelRateController(
        lambda_a=640.0,
        lambda_b=5.0,
        target_bpp=0.14,
        ema_decay=0.0,
        schedule_steps=50000,
        target_factor=0.2 / 0.14,
        lambda_factor=0.5,
    )
    clone.load_state_dict(ctrl.state_dict())
    assert clone.steps == 50002 and clone.update(0.2) == 640.0


# ------------------------------------------------------------------------------------------------ 3. loss


def test_iframe_loss_composition_by_hand():
    """L = C * (lambda_R * R + C_D * 255^2 * MSE) + C_P * G + w_lpips * P, with P outside C."""

    class ConstPerceptual(torch.nn.Module):
        def forward(self, a, b):
            return (a - b).abs().mean() * 0 + 0.25

    class ConstD(torch.nn.Module):
        def forward(self, x, cond):
            return torch.full((x.shape[0], 1, 2, 2), 0.5)

    w = hifi_weights()
    obj = IFrameObjective(w, ConstPerceptual())
    x = torch.zeros(1, 3, 4, 4)
    x_hat = torch.full((1, 3, 4, 4), 0.1)
    lik = {"y": torch.full((1, 2, 1, 1), 0.5), "z": torch.full((1, 1, 1, 1), 0.25)}  # 2 + 2 bits = 4 bits
    out = FrameOut("I", x_hat, likelihoods=lik, likelihoods_q=lik, y_hat=torch.zeros(1, 2, 1, 1))
    terms = obj(x, out, lambda_r=7.0, discriminator=ConstD())
    bpp = 4.0 / 16
    mse = 0.01
    g = math.log1p(math.exp(-0.5))  # softplus(-0.5)
    want = 0.1 * 2**-5 * (7.0 * bpp + 0.75 * 65025.0 * mse) + 0.15 * g + 1.0 * 0.25
    assert float(terms.loss) == pytest.approx(want, rel=1e-6)
    assert float(terms.bpp_q) == pytest.approx(bpp)


def test_pframe_loss_averages_p_frames_and_adds_flow_inside_c():
    w = hifi_weights(w_lpips=0.0)
    obj = PFrameObjective(w, None, conditional_d=True, flow_relative=False, flow_rate_lambda=None)
    clip = torch.zeros(1, 3, 3, 4, 4)
    lik = {"flow_y": torch.full((1, 1, 1, 1), 0.5)}  # 1 bit
    outs = [FrameOut("I", None)]
    for v, f in ((0.1, 1.0), (0.3, 3.0)):
        flow_hat = torch.zeros(1, 2, 4, 4)
        flow_ref = torch.zeros(1, 2, 4, 4)
        flow_ref[:, 0] = f  # EPE f px, Charbonnier ~ f / 2 per component mean
        outs.append(
            FrameOut(
                "P",
                torch.full((1, 3, 4, 4), v),
                likelihoods=lik,
                likelihoods_q=lik,
                flow_hat=flow_hat,
                flow_ref=flow_ref,
            )
        )
    terms = obj(clip, outs, lambda_r=2.0, w_flow=10.0)
    mse = (0.01 + 0.09) / 2
    eps = 1e-3  # Charbonnier: channel x is off by f px, channel y by 0 (costs eps)
    flow = ((math.sqrt(1 + eps**2) + eps) / 2 + (math.sqrt(9 + eps**2) + eps) / 2) / 2
    want = 0.1 * 2**-5 * (2.0 * (1 / 16) + 0.75 * 65025.0 * mse + 10.0 * flow)
    assert float(terms.loss) == pytest.approx(want, rel=1e-4)
    assert float(terms.flow_epe) == pytest.approx(2.0)


def test_flow_rate_lambda_prices_the_flow_bits_apart_from_the_controllers_lambda():
    """stage.flow_loss.rate_lambda: the flow latent's bits weigh flow_rate_lambda, the residual's lambda_R;
    the rounded rate the controller reads is unchanged. By hand: 1 flow bit and 3 residual bits on 16 pixels."""
    w = hifi_weights(w_lpips=0.0)
    clip = torch.zeros(1, 2, 3, 4, 4)
    lik = {"flow_y": torch.full((1, 1, 1, 1), 0.5), "res_y": torch.full((1, 3, 1, 1), 0.5)}
    outs = [
        FrameOut("I", None),
        FrameOut("P", torch.full((1, 3, 4, 4), 0.1), likelihoods=lik, likelihoods_q=lik),
    ]
    mse = 0.01
    for rate_lambda, flow_weight in ((None, 50.0), (4.0, 4.0)):
        terms = PFrameObjective(
            w, None, conditional_d=True, flow_relative=False, flow_rate_lambda=rate_lambda
        )(clip, outs, lambda_r=50.0)
        want = 0.1 * 2**-5 * (50.0 * 3 / 16 + flow_weight * 1 / 16 + 0.75 * 65025.0 * mse)
        assert float(terms.loss) == pytest.approx(want, rel=1e-5)
        assert float(terms.bpp_q) == pytest.approx(4 / 16) and float(terms.bpp_flow_q) == pytest.approx(
            1 / 16
        )


# ------------------------------------------------------------------------------------------------ 4. precision


def test_warp_under_bf16_autocast_matches_float32_far_from_the_origin():
    """Coordinates above 200 px: bf16 has a spacing of 1 px there, so a sub-pixel warp would be lost."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 256)
    flow = torch.zeros(1, 2, 16, 256)
    flow[:, 0] = 0.37
    flow[:, 1] = -0.21
    sigma = torch.full((1, 1, 16, 256), 0.6)
    ref = scale_space_blur(backward_warp(x, flow), sigma)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = scale_space_blur(backward_warp(x.bfloat16(), flow.bfloat16()), sigma.bfloat16())
    assert got.dtype == torch.float32
    cols = slice(200, 250)
    # inputs rounded to bf16 are the only difference left: compare against float32 on the same rounded inputs
    ref_b = scale_space_blur(
        backward_warp(x.bfloat16().float(), flow.bfloat16().float()), sigma.bfloat16().float()
    )
    assert (got[..., cols] - ref_b[..., cols]).abs().max() < 1e-4
    assert (got[..., cols] - ref[..., cols]).abs().max() < 2e-2


def test_pframe_prediction_and_reference_stay_float32_under_autocast():
    from gvc.models.video import VideoCodec

    iframe, pframe = make_codecs()
    video = VideoCodec(iframe, pframe, {"class": "gvc.models.flow.DISFlow"}, freeze_iframe=True)
    clip = torch.stack([frames()[0][0], frames()[1][0], frames()[1][0]])[None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = video.forward_clip(clip, mode="noise")
    assert all(o.prediction.dtype == torch.float32 for o in outs[1:])
    assert all(o.flow_hat.dtype == torch.float32 for o in outs[1:])
    assert all(lik.dtype == torch.float32 for o in outs[1:] for lik in o.likelihoods.values())


# ------------------------------------------------------------------------------------------------ 5. residual


@pytest.mark.parametrize(
    "mapping, as_image, from_image",
    [
        ("unit", lambda r: r + 0.5, lambda x: x - 0.5),  # unit gain: the I-frame codec's own error
        ("affine", lambda r: (r + 1) / 2, lambda x: 2 * x - 1),  # older model files: twice that error
    ],
)
def test_residual_autoencoder_is_the_iframe_autoencoder_through_its_mapping(mapping, as_image, from_image):
    """Right after init_from_iframe (bottleneck copied, rounding): f_res(r) = from_image(f_I(as_image(r)))
    exactly; with "unit" a residual codec starts with exactly the I-frame codec's error."""
    iframe, pframe = make_codecs(residual_mapping=mapping)
    pframe.init_from_iframe(iframe, copy_bottleneck=True)
    torch.manual_seed(3)
    r = (torch.rand(1, 3, 64, 64) * 2 - 1) * 0.5
    with torch.no_grad():
        y = pframe.res_encoder(r)
        y_hat = pframe.res_bottleneck(y, mode="round")["y_hat"]
        y_free = torch.randn_like(y_hat)  # any free latent: its branch starts at zero
        f_res = pframe.synthesize_residual(y_hat, y_free, (0, 0))
        f_i = iframe(as_image(r), mode="round").x_hat
    assert torch.allclose(f_res, from_image(f_i), atol=1e-5)
    i_err = float((f_i - as_image(r)).pow(2).mean().sqrt())
    res_err = float((f_res - r).pow(2).mean().sqrt())
    assert res_err == pytest.approx(i_err * (1.0 if mapping == "unit" else 2.0), rel=1e-3)


# ------------------------------------------------------------------------------------------------ 6. flow


def test_flow_warmup_codes_the_prediction_alone():
    iframe, pframe = make_codecs()
    x_ref, x, flow_ref = frames()
    out = pframe(x, x_ref, flow_ref, mode="noise", residual=False)
    assert torch.equal(out.x_hat, out.prediction)
    assert set(out.likelihoods) == {"flow_y", "flow_z"} and out.d_latent is None
    out.x_hat.sum().backward()
    assert all(p.grad is None for p in pframe.res_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pframe.flow_generator.parameters())


def test_flow_weight_holds_through_warmup_then_anneals_over_a_share_of_the_stage():
    cfg = schedule.resolve_flow_anneal(
        {
            "enabled": True,
            "start": 10.0,
            "end": 0.1,
            "anneal": "exp",
            "anneal_share": 0.4,
            "anneal_steps": None,
        },
        warmup_steps=100,
        max_steps=1000,
    )
    assert cfg["anneal_steps"] == 400 and cfg["begin"] == 100
    w = [schedule.flow_weight(s, cfg) for s in (0, 100, 300, 500, 900)]
    assert w[0] == w[1] == pytest.approx(10.0)
    assert w[2] == pytest.approx(1.0) and w[3] == w[4] == pytest.approx(0.1)


def test_pframe_training_logs_flow_epe_and_holds_the_controller_in_warmup(tmp_path):
    from tests._training_helpers import compose_cfg, fast_overrides, per_step, read_metrics, run_train

    cfg = compose_cfg(
        "smoke_pframe",
        fast_overrides(tmp_path, 4)
        + [
            "stage.unroll=[[4,2]]",
            "stage.warmup_steps=4",
            "++stage.flow_warmup_steps=2",
            "data.max_clip_length=2",
        ],
    )
    run_train(cfg)
    rows = read_metrics(tmp_path)
    epe, warm, lam = (per_step(rows, k) for k in ("train/flow_epe", "train/flow_warmup", "train/lambda_r"))
    assert sorted(epe) == [1, 2, 3, 4] and all(v > 0 for v in epe.values())
    assert [warm[s] for s in (1, 2, 3, 4)] == [1.0, 1.0, 0.0, 0.0]
    assert lam[1] == lam[2] == cfg.rate.lambda_init and lam[4] != lam[2]


# ------------------------------------------------------------------------------------------------ 8. free latent


@pytest.mark.parametrize("flag", [True, False])
def test_free_latent_gradient_switch(flag):
    iframe, pframe = make_codecs(free_latent_grad=flag)
    with torch.no_grad():
        pframe.res_generator.free_conv.weight.normal_(0, 0.1)  # a trained (non-zero) free-latent branch
    iframe.g_a.requires_grad_(False)
    pred = torch.rand(1, 3, 64, 64, requires_grad=True)
    y_free = pframe.free_latent(pred)
    y_hat = torch.zeros(1, pframe.config["latent_channels"], 4, 4)
    pframe.synthesize_residual(y_hat, y_free, (0, 0)).sum().backward()
    reached = pred.grad is not None and pred.grad.abs().sum() > 0
    assert reached == flag


def test_perceptual_crop_sees_the_same_window_of_both_frames():
    """loss.perceptual_crop: one random s x s window per call, identical for x_hat and x."""
    seen = []

    class Record(torch.nn.Module):
        def forward(self, a, b):
            seen.append((a.shape, torch.equal(a, b + 1)))
            return a.sum() * 0

    obj = IFrameObjective(hifi_weights(perceptual_crop=16), Record())
    x = torch.rand(1, 3, 40, 48)
    lik = {"y": torch.full((1, 1, 1, 1), 0.5)}
    out = FrameOut("I", x + 1, likelihoods=lik, likelihoods_q=lik, y_hat=torch.zeros(1, 1, 1, 1))
    for _ in range(3):
        obj(x, out, 1.0)
    assert all(shape[-2:] == (16, 16) and same for shape, same in seen)
