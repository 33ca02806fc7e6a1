"""conf `compile` / `channels_last` (gvc.training.speed): same parameters, same checkpoints, same training."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from gvc.errors import ConfigError
from gvc.training.speed import COMPILE_TARGETS, plain_copy, to_channels_last
from tests._training_helpers import compose_cfg, fit_on_batches, tiny_module


def _frames(n: int, seed: int = 0, b: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 1, 3, 64, 64, generator=g) for _ in range(n)]


def _checkpoint_state(module) -> dict:
    """The model part of a Lightning checkpoint as Trainer.save_checkpoint writes it (state_dict, then our hook)."""
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    return ckpt["state_dict"]


@pytest.mark.parametrize(
    "experiment, overrides",
    [("smoke_iframe", []), ("smoke_pframe", ["stage.iframe_ckpt=null", "stage.allow_random_iframe=true"])],
)
def test_compile_keeps_checkpoint_keys_and_export_is_plain(experiment, overrides):
    torch.manual_seed(0)
    eager = tiny_module(experiment, overrides)
    torch.manual_seed(0)
    compiled = tiny_module(experiment, [*overrides, "compile=true"])
    stage = compiled.stage_cfg["name"]
    for name in COMPILE_TARGETS[stage]:  # every heavy network really is compiled, in place
        assert compiled.get_submodule(name)._compiled_call_impl is not None, name
        assert eager.get_submodule(name)._compiled_call_impl is None, name
    sd_c, sd_e = _checkpoint_state(compiled), _checkpoint_state(eager)
    assert list(sd_c) == list(sd_e)  # same keys, same order: no "_orig_mod." prefixes
    eager.load_state_dict(compiled.state_dict(), strict=True)  # loadable without compile
    # the exported codec (.gvcm) is a plain copy: no compiled forward pointing back at the training module
    exported = compiled.export_codec()
    assert all(m._compiled_call_impl is None for m in exported.modules())
    assert exported.state_dict().keys() == eager.export_codec().state_dict().keys()


def test_compile_unsupported_raises_config_error(monkeypatch, tmp_path):
    import torch._dynamo

    from gvc.training.run import check_config

    cfg = compose_cfg("smoke_iframe", [f"paths.output_dir={tmp_path}", "compile=true"])
    check_config(cfg)  # supported here (gcc present)
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    with pytest.raises(ConfigError, match="compile=false"):
        check_config(cfg)


def test_to_channels_last_layouts():
    frames = torch.rand(2, 3, 8, 8)
    clips = torch.rand(2, 3, 3, 8, 8)
    out_f, out_c = to_channels_last([frames, clips])
    assert out_f.is_contiguous(memory_format=torch.channels_last) and torch.equal(out_f, frames)
    assert torch.equal(out_c, clips)
    assert out_c[:, 1].stride()[1:] == (1, 8 * 3, 3)  # every frame of the clip is NHWC (channels innermost)


class _Record(L.Callback):
    """Losses of every step and whether the frames reached training_step in NHWC."""

    def __init__(self):
        self.g, self.d, self.nhwc = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.nhwc.append(pl_module._frames(batch).stride(1) == 1)  # channels innermost

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.g.append(float(trainer.callback_metrics["train/g_loss"]))
        self.d.append(float(trainer.callback_metrics["train/d_loss"]))


def test_channels_last_training_steps_match_eager():
    runs = {}
    for cl in (False, True):
        torch.manual_seed(0)
        m = tiny_module("smoke_iframe", ["stage.warmup_steps=0", f"channels_last={str(cl).lower()}"])
        conv = next(p for p in m.codec.parameters() if p.dim() == 4)  # E_I's first conv (C, 3, k, k)
        assert conv.is_contiguous(memory_format=torch.channels_last) == cl
        rec = _Record()
        torch.manual_seed(1)
        fit_on_batches(m, _frames(2), max_steps=2, callbacks=[rec])
        runs[cl] = (rec, m)
    eager, nhwc = runs[False][0], runs[True][0]
    assert eager.nhwc == [False, False] and nhwc.nhwc == [True, True]
    # two full G + D steps (the second after an Adam update of both) give the same losses
    torch.testing.assert_close(nhwc.g, eager.g, rtol=1e-4, atol=0)
    torch.testing.assert_close(nhwc.d, eager.d, rtol=1e-4, atol=0)
    m_nhwc = runs[True][1]
    assert next(p for p in m_nhwc.codec.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last
    )  # the optimizer step kept the layout
    exported = plain_copy(m_nhwc.codec)
    assert all(p.is_contiguous() for p in exported.parameters())


@pytest.mark.slow
def test_compiled_training_step_matches_eager():
    """One G + D step of the compiled smoke I-frame module (inductor on CPU: ~1 min to compile) equals eager."""
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        m = tiny_module("smoke_iframe", ["stage.warmup_steps=0", f"compile={str(compiled).lower()}"])
        rec = _Record()
        torch.manual_seed(1)
        fit_on_batches(m, _frames(1), max_steps=1, callbacks=[rec])
        runs[compiled] = rec
    torch.testing.assert_close(runs[True].g, runs[False].g, rtol=1e-4, atol=0)
    torch.testing.assert_close(runs[True].d, runs[False].d, rtol=1e-4, atol=0)
