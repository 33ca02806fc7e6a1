"""The one frame pipeline with its latent-coding strategies (gvc.models.latents) and the one GOP loop
(VideoCodec.step): decoding runs no encoder, encoding runs each encoder once per frame (the bit estimate comes
from that pass), and training, encoding and decoding give the same frames."""

import dataclasses

import pytest
import torch

from gvc.codec.coder import decode_video, encode_video
from gvc.models.latents import DecodeLatents, EncodeLatents, TrainLatents
from gvc.models.video import GOPState
from tests.models.test_video_model import clip, smoke_model


class _Forbidden(torch.nn.Module):
    def forward(self, *a, **k):
        raise AssertionError("an encoder ran while decoding")


def _coded(model, x):
    """Encode the clip x (1, T, 3, H, W) frame by frame with step + EncodeLatents -> FrameOuts."""
    state, outs = GOPState(), []
    with torch.no_grad():
        for t in range(x.shape[1]):
            outs.append(model.step(x[:, t], state, EncodeLatents()))
    return outs


def test_decode_strategy_never_calls_the_analysis():
    """What this proves: with DecodeLatents the pipelines never call the closures that would compute a latent:
    E_I (for the I-frame; in P-frames it legitimately computes the free latent from the prediction), E_flow,
    E_res and the flow estimator are replaced by modules that raise, and the frames still decode to the
    encoder's reconstructions bit-exactly."""
    model = smoke_model().eval()
    model.update(force=True)
    x = clip(3, seed=2)
    enc = _coded(model, x)
    e_i = model.iframe.g_a.net
    model.pframe.flow_encoder.net = _Forbidden()
    model.pframe.res_encoder.net = _Forbidden()
    model.estimate_flow = _Forbidden()
    state = GOPState()
    with torch.no_grad():
        for t, e in enumerate(enc):
            intra = e.frame_type == "I"
            model.iframe.g_a.net = _Forbidden() if intra else e_i
            names = ("",) if intra else ("flow", "res")
            state.shift = None if intra else e.shift
            out = model.step(None, state, DecodeLatents.from_packet(names, e.strings, e.shapes))
            assert out.frame_type == e.frame_type and torch.equal(out.x_hat, e.x_hat), t
    assert [e.frame_type for e in enc] == ["I", "P", "P"]


def test_encoding_runs_each_encoder_once_and_estimates_from_that_pass(tmp_path):
    """What this proves: encode_video (estimate on) runs the flow estimator, E_flow and E_res once per P-frame
    and E_I once per frame (the I-frame, or a P-frame's free latent): no second forward for the estimate;
    decode_video runs none of them but E_I for the free latent."""
    model = smoke_model().eval()
    model.update(force=True)
    calls = {"g_a": 0, "flow_encoder": 0, "res_encoder": 0, "flow": 0}
    for name, mod in (
        ("g_a", model.iframe.g_a),
        ("flow_encoder", model.pframe.flow_encoder),
        ("res_encoder", model.pframe.res_encoder),
    ):
        mod.register_forward_hook(lambda *a, name=name: calls.__setitem__(name, calls[name] + 1))
    est = model.flow_estimator
    orig = est.forward

    def counted(*a, **k):
        calls["flow"] += 1
        return orig(*a, **k)

    est.forward = counted
    from gvc.data import sample_clips

    path = tmp_path / "a.gvc"
    # model.iframe.g_a also runs inside the P-frame (free latent y_free = E_I(prediction)): one call per frame
    stats = encode_video(sample_clips()["carphone_pristine"], model, path, frames=4, gop=0)
    assert [f.frame_type for f in stats.frames] == ["I", "P", "P", "P"]
    assert calls == {"g_a": 4, "flow_encoder": 3, "res_encoder": 3, "flow": 3}
    assert all(f.estimated_bits > 0 for f in stats.frames)
    calls.update(g_a=0, flow_encoder=0, res_encoder=0, flow=0)
    assert len(list(decode_video(path, model))) == 4
    assert calls == {"g_a": 3, "flow_encoder": 0, "res_encoder": 0, "flow": 0}  # decode: E_I only for y_free


def test_train_round_encode_and_decode_give_the_same_frames():
    """What this proves: step with TrainLatents("round") (forward_clip in eval mode), EncodeLatents and the
    decoder's step agree: one pipeline, so the training reconstruction is the file's (float tolerance), and
    the encoder's rounded-likelihood estimate equals the training pipeline's likelihoods_q."""
    model = smoke_model().eval()
    model.update(force=True)
    x = clip(3, seed=3)
    with torch.no_grad():
        train = model.forward_clip(x, mode="round")
        state, enc = GOPState(), []
        for t in range(3):
            enc.append(model.step(x[:, t], state, EncodeLatents()))
    for t in range(3):
        assert (train[t].x_hat.clamp(0, 1) - enc[t].x_hat).abs().max() <= 1e-5, t
        assert set(train[t].likelihoods_q) == set(enc[t].likelihoods_q)
        bits_train = sum(float(-v.double().log2().sum()) for v in train[t].likelihoods_q.values())
        assert abs(enc[t].estimated_bits() - bits_train) <= 1e-3 * bits_train, t
    assert (
        isinstance(TrainLatents().for_frozen(), TrainLatents) and TrainLatents().for_frozen().mode == "round"
    )


def test_frame_outputs_do_not_change_after_return():
    """FrameOut is frozen: fields and likelihood maps cannot be set; replace / cropped give a new one."""
    model = smoke_model()
    model.eval()
    x = clip(t=2)
    out = model.forward_clip(x, mode="round")[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.x_hat = out.x_hat * 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        out.likelihoods["res_y"] = out.likelihoods["res_y"]  # type: ignore[index]
    with pytest.raises(TypeError):
        out["x_hat"] = None  # type: ignore[index]
    small = out.cropped(16, 8)
    assert small.x_hat.shape[-2:] == (16, 8) and out.x_hat.shape[-2:] == x.shape[-2:]
    assert small.likelihoods is out.likelihoods and out["flow_hat"] is out.flow_hat


def test_one_frame_coder_intra_only_is_gop_one():
    """An intra-only model goes through the same FrameCoder as a video model: GOP 1, every packet an I-frame."""
    from gvc.codec.coder import FrameCoder

    model = smoke_model()
    model.update(force=True)
    intra = model.iframe
    x = clip(t=3)
    coder = FrameCoder(intra, None, gop=0)
    packets = [coder.encode(x[:, t], estimate=True)[0] for t in range(3)]
    assert [p.frame_type for p in packets] == ["I"] * 3 and [p.index for p in packets] == [0, 1, 2]
    assert coder.state.period == 1
    decoder = FrameCoder(intra, None)
    h, w = x.shape[-2:]
    for t, p in enumerate(packets):
        want = intra.code(x[:, t], TrainLatents("round")).x_hat.clamp(0, 1)
        assert (decoder.decode(p, w, h) - want).abs().max() <= 1e-5, t
