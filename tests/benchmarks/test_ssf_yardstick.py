"""bench_ssf_yardstick codes compressai's ScaleSpaceFlow through a real file: the bits it reports are the file's,
and decoding the file (the model and the file alone) gives what the encoder's closed loop and the model's own
forward pass reconstruct (an untrained ssf2020 on 3 consecutive frames of carphone: one I-frame, two P-frames)."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ssf():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_ssf_yardstick

    return bench_ssf_yardstick


@pytest.fixture(scope="module")
def coded(ssf, tmp_path_factory):
    """(model file, 3-frame clip, work folder) of an untrained, seeded ssf2020 with its CDF tables."""
    from compressai.models.video import ScaleSpaceFlow

    from gvc.data import open_video, sample_clips
    from gvc.data.io import write_y4m

    tmp = tmp_path_factory.mktemp("ssf")
    clip = tmp / "three.y4m"
    with open_video(sample_clips()["carphone_pristine"]) as r:
        write_y4m(clip, r.iter_yuv(0, 3), r.fps, matrix=r.colour["matrix"], full_range=r.colour["full_range"])
    torch.manual_seed(0)
    net = ScaleSpaceFlow().eval()
    net.update(force=True)
    model = tmp / "ssf.pt"
    torch.save(net.state_dict(), model)
    return model, clip, tmp


def test_ssf_bits_are_the_files_and_the_decoder_reproduces_the_encoder(ssf, coded):
    from gvc.eval.metrics import MetricSuite

    model, clip, tmp = coded
    got = ssf.measure_ssf(model, clip, tmp / "coded", MetricSuite(("psnr",)))
    size = (tmp / "coded" / "ssf.ssf").stat().st_size
    pixels = 3 * 176 * 144
    assert got["bpp"] == pytest.approx(8 * size / pixels)
    assert got["frame_types"] == ["I", "P", "P"]
    assert sum(got["frame_bits"]) == 8 * size - 8 * ssf._HEAD.size
    lengths = 8 * ssf._LEN.size * (2 + 4 + 4)  # key frame: y, z; each P-frame: motion y, z, residual y, z
    assert got["payload_bpp"] * pixels == pytest.approx(sum(got["frame_bits"]) - lengths)
    assert all(b > 8 * 4 * ssf._LEN.size for b in got["frame_bits"])
    assert got["decode_mismatch"] == 0.0
    assert 3.0 < got["summary"]["psnr_y"] < 60.0


def test_decoding_the_file_gives_the_forward_reconstruction(ssf, coded):
    """The decoder's frames equal ScaleSpaceFlow.forward in eval mode (y rounded about its means, z about the
    medians: what the strings carry), frame by frame through the P-frame recurrence."""
    from gvc.codec.coder import pad_frame, padded_size
    from gvc.data.io import open_video

    model, clip, tmp = coded
    net = ssf.load_ssf(model)
    with open_video(clip) as r:
        pw, ph = padded_size(r.width, r.height, ssf.SSF_MULTIPLE)
        frames = [pad_frame(x[None].float(), pw, ph) for x in r.iter_rgb(0, 3)]
    assert (pw, ph) == (256, 256)
    stream = tmp / "roundtrip.ssf"
    recs, _ = ssf.encode_ssf(net, frames, 176, 144, stream)
    dec, width, height = ssf.decode_ssf(net, stream)
    with torch.no_grad():
        fwd = net(frames)["x_hat"]
    assert (width, height) == (176, 144) and len(dec) == len(fwd) == 3
    for a, b, c in zip(dec, recs, fwd):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="trailing bytes"):
        stream.write_bytes(stream.read_bytes() + b"\0")
        ssf.decode_ssf(net, stream)


def test_versus_interpolates_between_measured_points_and_bounds_outside_them(ssf):
    curve = [(0.1, 20.0), (0.4, 24.0)]
    inside = ssf.versus(0.2, 23.0, curve, 0.0)  # the curve at 0.2 bpp: 20 + 4 * log(2) / log(4) = 22
    assert inside["diff"] == pytest.approx(1.0) and inside["verdict"] == "met"
    assert ssf.versus(0.2, 23.0, curve, 1.5)["verdict"] == "MISSED"
    # below the curve's range: its lowest-rate point (more bits) floors the difference where the curve rises
    below = ssf.versus(0.05, 21.0, curve, 0.0)
    assert below == {"diff": None, "bound": [">=", 1.0], "verdict": "met (bound)", "dominates": False}
    assert ssf.versus(0.05, 19.0, curve, 0.0)["verdict"] == "not bracketed"
    # the curve falls: no floor; that gvc's point beats every measured one is said beside the verdict
    falls = ssf.versus(0.05, 21.0, [(0.1, 19.0), (0.4, 18.0)], 0.0)
    assert falls["verdict"] == "not bracketed" and falls["dominates"]
    assert ssf._verdict(falls) == "not bracketed; fewer bits and higher PSNR-Y than every measured point"
    # above it: a point at fewer bits and more PSNR-Y caps it
    above = ssf.versus(0.5, 23.0, curve, 0.0)
    assert above == {"diff": None, "bound": ["<=", -1.0], "verdict": "MISSED (dominated)", "dominates": False}
    assert ssf.versus(0.5, 25.0, curve, 0.0)["verdict"] == "not bracketed"
