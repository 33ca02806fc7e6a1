"""The .gvcm model file: exact reproduction, CDFs inside, and refusal of damaged, foreign or unsafe files."""

import collections
import json

import pytest
import torch
from torch import nn

from gvc.codec.modelfile import (
    FORMAT_VERSION,
    compute_model_id,
    load_model_file,
    model_id,
    read_model_file,
    save_model_file,
)
from gvc.errors import ModelFileError
from gvc.models.iframe import IFrameCodec
from tests._training_helpers import model_kwargs

TINY = {
    **model_kwargs("smoke")[0],
    "channels": [8, 8, 16, 16, 16],
    "latent_channels": 8,
    "num_residual_blocks": 1,
    "hyper_channels": 8,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = IFrameCodec(**TINY).eval()
    with torch.no_grad():  # nontrivial latents so the strings carry real content
        model.g_a.net[-1].weight.mul_(20.0)
    path = tmp_path_factory.mktemp("mf") / "tiny.gvcm"
    mid = save_model_file(path, model)
    return model, path, mid


def _rewrite(path, out, **changes):
    data = torch.load(path, weights_only=True)
    data.update(changes)
    torch.save(data, out)
    return out


def test_roundtrip_reproduces_outputs_and_strings(saved):
    model, path, mid = saved
    loaded = load_model_file(path)
    assert type(loaded) is IFrameCodec and not loaded.training
    assert loaded.config == model.config
    assert loaded.gvc_model_id == mid == model_id(model)
    assert len(mid) == 64
    # the CDF tables travel in the file: the loaded model compresses without update()
    assert loaded.bottleneck.gaussian_conditional._quantized_cdf.numel() > 0
    assert loaded.bottleneck.entropy_bottleneck._quantized_cdf.numel() > 0
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 128)
    a, b = model.compress(x), loaded.compress(x)
    assert a["strings"] == b["strings"] and sum(len(s[0]) for s in a["strings"]) > 20
    assert torch.equal(
        model.decompress(a["strings"], a["shape"])["x_hat"],
        loaded.decompress(b["strings"], b["shape"])["x_hat"],
    )
    with torch.no_grad():
        assert torch.equal(model(x, mode="round").x_hat, loaded(x, mode="round").x_hat)


def test_model_id_depends_on_weights_and_config(saved):
    model, path, mid = saved
    data = read_model_file(path)
    sd = dict(data["state_dict"])
    assert (
        compute_model_id(
            data["class_path"], json.dumps(data["config"], sort_keys=True, separators=(",", ":")), sd
        )
        == mid
    )
    key = next(iter(sd))
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] += 1e-6
    assert compute_model_id(data["class_path"], "{}", data["state_dict"]) != mid
    assert (
        compute_model_id(
            data["class_path"], json.dumps(data["config"], sort_keys=True, separators=(",", ":")), sd
        )
        != mid
    )


def test_tampered_weights_are_rejected(saved, tmp_path):
    _, path, _ = saved
    data = torch.load(path, weights_only=True)
    sd = collections.OrderedDict(data["state_dict"])
    sd["g_s.tail.weight"] = sd["g_s.tail.weight"] + 0.01  # a modified weight, recorded id left as it was
    bad = _rewrite(path, tmp_path / "t.gvcm", state_dict=sd)
    with pytest.raises(ModelFileError, match="content hash .* differs from the recorded id.*gvc export"):
        load_model_file(bad)


def test_damaged_bytes_are_rejected(saved, tmp_path):
    _, path, _ = saved
    raw = bytearray(path.read_bytes())
    for frac in (0.3, 0.6, 0.9):
        b = bytearray(raw)
        b[int(len(b) * frac)] ^= 0xFF
        bad = tmp_path / f"d{frac}.gvcm"
        bad.write_bytes(bytes(b))
        with pytest.raises(ModelFileError, match=str(bad)):
            load_model_file(bad)
    trunc = tmp_path / "trunc.gvcm"
    trunc.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ModelFileError, match="not a gvc model file"):
        load_model_file(trunc)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file.*gvc export"):
        load_model_file(tmp_path / "none.gvcm")
    junk = tmp_path / "junk.gvcm"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelFileError, match="not a gvc model file"):
        load_model_file(junk)
    other = tmp_path / "other.gvcm"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not a gvc model file"):
        load_model_file(other)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_never_executed(saved, tmp_path, capsys):
    _, path, _ = saved
    data = torch.load(path, weights_only=True)
    data["extra"] = _Evil()
    evil = tmp_path / "evil.gvcm"
    torch.save(data, evil)
    with pytest.raises(ModelFileError, match="not a gvc model file"):
        load_model_file(evil)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "class_path",
    [
        "torch.nn.Linear",
        "os.system",
        "gvc.models.iframe.torch",
        "gvc.codec.modelfile.nn.Module",
        "gvc.models.nonexistent.Foo",
        "gvc.models.layers.conv",
    ],
)
def test_class_path_restricted_to_gvc_models(saved, tmp_path, class_path):
    _, path, _ = saved
    data = read_model_file(path)
    cfg = json.dumps(data["config"], sort_keys=True, separators=(",", ":"))
    mid = compute_model_id(class_path, cfg, data["state_dict"])
    bad = _rewrite(path, tmp_path / "c.gvcm", class_path=class_path, model_id=mid)
    with pytest.raises(
        ModelFileError, match="refuses class|not a model class defined in gvc.models|does not exist"
    ):
        load_model_file(bad)


def test_incompatible_config_or_version(saved, tmp_path):
    _, path, _ = saved
    data = read_model_file(path)
    cfg = json.dumps({**data["config"], "latent_channels": 12}, sort_keys=True, separators=(",", ":"))
    mid = compute_model_id(data["class_path"], cfg, data["state_dict"])
    bad = _rewrite(path, tmp_path / "cfg.gvcm", config=cfg, model_id=mid)
    with pytest.raises(ModelFileError, match="weights do not match gvc.models.iframe.IFrameCodec"):
        load_model_file(bad)
    cfg = json.dumps({**data["config"], "no_such_kwarg": 1}, sort_keys=True, separators=(",", ":"))
    mid = compute_model_id(data["class_path"], cfg, data["state_dict"])
    bad = _rewrite(path, tmp_path / "kw.gvcm", config=cfg, model_id=mid)
    with pytest.raises(ModelFileError, match="config does not fit .*no_such_kwarg"):
        load_model_file(bad)
    newer = _rewrite(path, tmp_path / "v.gvcm", version=FORMAT_VERSION + 1)
    with pytest.raises(ModelFileError, match="version 2, this gvc reads 1; upgrade gvc"):
        load_model_file(newer)


def test_save_refuses_models_outside_gvc_models(tmp_path):
    lin = nn.Linear(2, 2)
    lin.config = {"in_features": 2, "out_features": 2}
    with pytest.raises(ModelFileError, match="refuses class 'torch.nn.modules.linear.Linear'"):
        save_model_file(tmp_path / "l.gvcm", lin)
    assert not (tmp_path / "l.gvcm").exists()


def test_an_old_model_file_without_the_later_options_loads_with_the_values_it_was_written_under(tmp_path):
    """Model files written before norm / kernel_size / stem, the flow codec's flow_*, residual_mapping,
    free_latent_grad and flow_reference existed lack those keys: build_model fills them from LEGACY_CONFIG (HiFiC's
    transform, the affine residual mapping, flow from the decoded frame), not from conf/; a flow spec of fewer keys
    is kept as given (model id) and built with DIS medium. Any other missing key is refused."""
    from gvc.codec.modelfile import build_model
    from gvc.models.config import LEGACY_CONFIG
    from gvc.models.pframe import PFrameCodec

    i_kw, p_kw = model_kwargs("smoke")
    i_kw = {**i_kw, **LEGACY_CONFIG["gvc.models.iframe.IFrameCodec"]}
    p_kw = {**p_kw, **LEGACY_CONFIG["gvc.models.pframe.PFrameCodec"]}
    old_i = {k: v for k, v in i_kw.items() if k not in ("norm", "kernel_size", "stem")}
    later = ("norm", "kernel_size", "stem", "flow_norm", "flow_kernel_size", "flow_stem", "residual_mapping")
    old_p = {k: v for k, v in p_kw.items() if k not in (*later, "free_latent_grad")}
    torch.manual_seed(0)
    model = IFrameCodec(**i_kw).eval()
    assert build_model("gvc.models.iframe.IFrameCodec", old_i).config == model.config
    # a whole old file: its config JSON (and so its model id) lacks the keys
    model.config = old_i
    path = tmp_path / "old.gvcm"
    save_model_file(path, model)
    loaded = load_model_file(path)
    assert loaded.config == IFrameCodec(**i_kw).config and loaded.config["norm"] == "channel"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))

    video = build_model(
        "gvc.models.video.VideoCodec",
        {
            "iframe": old_i,
            "pframe": old_p,
            "flow": {"class": "gvc.models.flow.DISFlow"},
            "freeze_iframe": True,
        },
    )
    assert video.config["pframe"] == PFrameCodec(**p_kw).config and video.config["pframe"][
        "residual_mapping"
    ] == ("affine")
    assert video.flow_reference == "decoded" and video.config["flow"] == {"class": "gvc.models.flow.DISFlow"}
    assert video.flow_estimator.config["preset"] == "medium"
    with pytest.raises(ModelFileError, match="latent_channels"):
        build_model(
            "gvc.models.iframe.IFrameCodec", {k: v for k, v in old_i.items() if k != "latent_channels"}
        )
