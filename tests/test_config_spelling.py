"""One source for config values and one spelling of class names: `_target_` everywhere a component is named;
model files written with the older spelling ("class" in the flow spec) still load, keep their model id and decode
their streams; the loss weights have no Python-side defaults."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gvc import config_dir
from gvc.codec.coder import decode_video, encode_video
from gvc.codec.modelfile import load_model_file, model_id, save_model_file
from gvc.data import sample_clips
from gvc.errors import ConfigError
from gvc.models.flow import DISFlow, flow_spec
from gvc.models.iframe import IFrameCodec
from gvc.models.pframe import PFrameCodec
from gvc.models.video import VideoCodec
from gvc.objectives import LossWeights
from tests._training_helpers import dis_flow

ROOT = Path(__file__).resolve().parents[1]


def _smoke(flow_spec_dict) -> VideoCodec:
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "smoke.yaml"), resolve=True)
    torch.manual_seed(0)
    iframe = IFrameCodec(**{k: v for k, v in cfg["iframe"].items() if k != "_target_"})
    pframe = PFrameCodec(**{k: v for k, v in cfg["pframe"].items() if k != "_target_"})
    pframe.init_from_iframe(iframe)
    return VideoCodec(iframe, pframe, flow_spec_dict).eval()


def test_target_is_the_one_spelling_of_built_specs():
    assert flow_spec(dis_flow("fast")) == {"_target_": "gvc.models.flow.DISFlow", **dis_flow("fast").config}
    model = VideoCodec(_smoke(None).iframe, _smoke(None).pframe, dis_flow("fast"))
    assert (
        model.config["flow"]["_target_"] == "gvc.models.flow.DISFlow" and "class" not in model.config["flow"]
    )
    assert _smoke(None).config["flow"] == {"_target_": "gvc.models.flow.DISFlow"}
    with pytest.raises(ValueError, match="must be gvc.models.iframe.IFrameCodec"):
        VideoCodec({"_target_": "gvc.models.pframe.PFrameCodec"}, {}, None)


def test_old_spelling_model_file_keeps_its_id_and_decodes(tmp_path):
    """What this proves: a model whose flow spec says "class" (model files before `_target_`) is saved, loaded
    back with the same config and model id (the id hashes the config, so rewriting the spelling would orphan its
    streams), builds its DIS estimator, and its stream decodes to the encoder's frames."""
    old = _smoke({"class": "gvc.models.flow.DISFlow", "preset": "fast"})
    path = tmp_path / "old.gvcm"
    save_model_file(path, old)
    loaded = load_model_file(path)
    assert loaded.config["flow"] == {"class": "gvc.models.flow.DISFlow", "preset": "fast"}
    assert model_id(loaded) == model_id(old)
    assert isinstance(loaded.flow_estimator, DISFlow) and loaded.flow_estimator.config["preset"] == "fast"
    new = _smoke({"_target_": "gvc.models.flow.DISFlow", "preset": "fast"})
    assert model_id(new) != model_id(old)  # same weights, other spelling: another config, another id
    stream = tmp_path / "a.gvc"
    encode_video(sample_clips()["carphone_pristine"], old, stream, frames=2)
    a = list(decode_video(stream, old))
    b = list(decode_video(stream, loaded))
    assert len(a) == 2 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert json.loads(json.dumps(loaded.config)) == loaded.config


def test_loss_weights_come_only_from_the_yaml():
    """LossWeights has no defaults: every value comes from conf/loss/*.yaml, and a missing key is named."""
    cfg = OmegaConf.to_container(OmegaConf.load(config_dir() / "loss" / "gan.yaml"))
    w = LossWeights.from_config(cfg)
    assert (w.C, w.C_D, w.C_P, w.mse_scale, w.gan) == (
        cfg["C"],
        cfg["C_D"],
        cfg["C_P"],
        cfg["mse_scale"],
        True,
    )
    with pytest.raises(TypeError):
        LossWeights()
    del cfg["C_P"]
    with pytest.raises(ConfigError, match=r"loss\.C_P is missing"):
        LossWeights.from_config(cfg)
