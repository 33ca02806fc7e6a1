"""VideoCodec: low-delay I/P unrolling with a frozen I-frame codec, activation checkpointing, frame-wise coding
that reproduces the training-time forward pass, and the model-file round trip."""

import json

import torch
from omegaconf import OmegaConf

from gvc import config_dir
from gvc.data.datasets import make_synthetic_clip
from gvc.models.iframe import IFrameCodec
from gvc.models.video import VideoCodec
from tests._training_helpers import dis_flow

CONF = config_dir() / "model" / "smoke.yaml"


def smoke_model(seed: int = 0, **kw) -> VideoCodec:
    """The smoke VideoCodec built from conf/model/smoke.yaml (DIS 'fast' to keep tests quick)."""
    torch.manual_seed(seed)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    model = VideoCodec(cfg["iframe"], cfg["pframe"], {**cfg["flow"], "preset": "fast"}, **kw)
    model.pframe.init_from_iframe(model.iframe)
    return model


def clip(t: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    return make_synthetic_clip(t, size, size, max_flow=2.0, seed=seed)[0][None]


def loss_of(outs, x) -> torch.Tensor:
    """Distortion + rate over the clip (touches every trained part of the P-frame codec)."""
    loss = 0.0
    for t, o in enumerate(outs):
        loss = loss + 255.0**2 * (o.x_hat - x[:, t]).square().mean()
        loss = loss + 0.01 * sum((-v.log2()).sum() for v in o.likelihoods.values())
    return loss


def test_forward_clip_gradients_reach_pframe_not_frozen_iframe():
    model = smoke_model()
    model.train()
    assert not model.iframe.training  # frozen: stays in eval mode
    x = clip(3)
    outs = model.forward_clip(x, mode="noise")
    assert [o.frame_type for o in outs] == ["I", "P", "P"]
    assert all(o.x_hat.shape == (1, 3, 64, 64) for o in outs)
    assert outs[1].flow_ref.shape == (1, 2, 64, 64) and not outs[1].flow_ref.requires_grad
    loss_of(outs, x).backward()
    assert all(p.grad is None for p in model.iframe.parameters())
    for name in (
        "flow_encoder",
        "flow_generator",
        "flow_bottleneck",
        "res_encoder",
        "res_generator",
        "res_bottleneck",
    ):
        grads = [p.grad for p in getattr(model.pframe, name).parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name
    # frame 2's loss reaches frame 1's P-frame (through the reference) unless the reference is detached
    model.zero_grad()
    outs = model.forward_clip(x, shifts=[(0, 0)] * 3, detach_reference=False)
    g_ref = torch.autograd.grad((outs[2].x_hat - x[:, 2]).square().sum(), outs[1].x_hat, allow_unused=True)[0]
    assert g_ref is not None and g_ref.abs().sum() > 0
    outs = model.forward_clip(x, shifts=[(0, 0)] * 3, detach_reference=True)
    g_ref = torch.autograd.grad((outs[2].x_hat - x[:, 2]).square().sum(), outs[1].x_hat, allow_unused=True)[0]
    assert g_ref is None


def test_activation_checkpointing_gives_same_loss_and_grads():
    x = clip(3)
    results = []
    for ckpt in (False, True):
        model = smoke_model(checkpoint_pframes=ckpt)
        model.train()
        torch.manual_seed(123)  # same quantization noise and random shifts in both runs
        loss = loss_of(model.forward_clip(x, mode="noise"), x)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.pframe.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (l0, g0), (l1, g1) = results
    assert torch.allclose(l0, l1, rtol=1e-6)
    assert g0.keys() == g1.keys() and len(g0) > 20
    for n in g0:
        assert torch.allclose(g0[n], g1[n], rtol=1e-4, atol=1e-6), n


def test_shifts_random_in_training_deterministic_in_eval():
    model = smoke_model()
    x = clip(4)
    model.eval()
    with torch.no_grad():
        outs = model.forward_clip(x, mode="round")
    assert [o.shift for o in outs[1:]] == [model.shift_for_frame(t) for t in (1, 2, 3)]
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        drawn = [[o.shift for o in model.forward_clip(x)[1:]] for _ in range(3)]
    assert len({tuple(d) for d in drawn}) > 1  # random per frame in training
    off = smoke_model(seed=0)
    off.pframe.config["random_shift"] = False
    assert off.shift_for_frame(5) == (0, 0)


def test_frame_coding_reproduces_forward_and_decodes_from_model_file(tmp_path):
    """compress_frame/decompress_frame over I, P, P: the decoder's frames equal the encoder's reconstructions
    and forward_clip(mode="round") in eval mode (float tolerance); a model file written by gvc.codec loads back
    into a VideoCodec that decodes the same packets identically."""
    from gvc.codec.modelfile import load_model_file, save_model_file

    model = smoke_model()
    model.eval()
    save_model_file(tmp_path / "m.gvcm", model)  # calls update(force=True)
    assert json.loads(json.dumps(model.config))["flow"]["_target_"] == "gvc.models.flow.DISFlow"
    x = clip(3, seed=1)
    packets, enc = [], []
    ref = None
    for t in range(3):
        out = model.compress_frame(x[:, t], ref, frame_index=t)
        packets.append((out.strings, out.shapes, out.shift))
        enc.append(out.x_hat)
        ref = out.x_hat
    loaded = load_model_file(tmp_path / "m.gvcm")
    assert isinstance(loaded, VideoCodec) and loaded.config == model.config
    for decoder in (model, loaded):
        ref = None
        for t, (strings, shape, shift) in enumerate(packets):
            ref = decoder.decompress_frame(strings, shape, ref, shift=shift).x_hat
            assert torch.equal(ref, enc[t]), t
    with torch.no_grad():
        outs = model.forward_clip(x, mode="round")
    for t in range(3):
        assert (outs[t].x_hat.clamp(0, 1) - enc[t]).abs().max() <= 1e-5, t
    assert len(packets[1][0]) == 4 and len(packets[0][0]) == 2  # [flow_y, flow_z, res_y, res_z] vs [y, z]
    assert [p[2] for p in packets] == [(0, 0), model.shift_for_frame(1), model.shift_for_frame(2)]


def test_accepts_modules_and_keeps_flow_out_of_state_dict():
    base = smoke_model()
    est = dis_flow("ultrafast")
    iframe = IFrameCodec(**base.config["iframe"])  # a fresh, trainable one
    model = VideoCodec(iframe, base.pframe, est, freeze_iframe=False)
    assert model.flow_estimator is est and model.config["flow"]["preset"] == "ultrafast"
    assert all(p.requires_grad for p in model.iframe.parameters())
    assert not any(k.startswith("_flow") or "flow_estimator" in k for k in model.state_dict())
    assert model.pframe.free_encoder is model.iframe.g_a
    assert model.size_multiple == 64 and model.shift_period == 16
