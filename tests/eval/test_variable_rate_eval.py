"""A variable-rate model file in the evaluation (issue 26): swept over its quality level q like a baseline's CRF,
rate-matched to the targets by the baselines' bisection, its own curve and BD-rate row; single-rate model files
keep their labels. Random-init tiny models (a few hundred ms per encode), evaluate's own entry point."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from gvc.codec.bitstream import read_bitstream
from gvc.errors import ConfigError
from gvc.eval import rd
from gvc.eval import run as R
from gvc.eval.codecs import GVCCodec
from gvc.eval.measure import measure_model
from tests._training_helpers import variable_rate_model_file
from tests.eval.test_eval_run import ROOT, T, _evaluate_main, _write_mcl

LEVELS = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vr_eval")
    return {
        "vr": variable_rate_model_file(root / "vr.gvcm", LEVELS),
        "sr": variable_rate_model_file(root / "sr.gvcm", 0),
        "clip": _write_mcl(root, 1),
    }


def _cfg(files, out: Path, **over) -> dict:
    cfg = {"videos": [str(files["clip"])], "models": [str(files["vr"])], "output_dir": str(out), "frames": T,
           "baselines": {}, "anchor": "", "metrics": ["psnr"], "progress": False, "pictures": False}  # fmt: skip
    return {**cfg, **over}


def _rows(out: Path) -> list[dict]:
    with open(out / "per_video.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_sweep_is_one_row_per_level_with_rate_strictly_rising_in_q(tmp_path, files):
    """Default gvc.qualities (null): one setting per integer level, labelled <model>@q<q>, coded at that q (the q
    of every packet of its file), bpp from the file and strictly rising in q; one curve for the model."""
    out = tmp_path / "out"
    results = R.evaluate(_cfg(files, out, target_bpps=[1.0], gvc={"match_targets": False}))
    gvc = [p for p in results["points"] if p["codec"] == "gvc"]
    assert [p["setting"] for p in gvc] == [f"vr@q{q}" for q in range(LEVELS)]
    for q, p in enumerate(gvc):
        header, packets = read_bitstream(p["bitstream"])
        assert p["q"] == q and [k.quality for k in packets] == [float(q)] * T
        assert p["bpp"] == pytest.approx(
            8 * Path(p["bitstream"]).stat().st_size / (T * header.width * header.height)
        )
        assert f"--q {q} " in p["command"] + " " and p["curve"] == "gvc vr (all intra)"
    bpps = [p["bpp"] for p in gvc]
    assert all(b > a for a, b in zip(bpps, bpps[1:])), bpps
    rows = [r for r in _rows(out) if r["codec"] == "gvc"]  # the CSV a reader plots from: one row per q
    assert [(r["setting"], float(r["q"])) for r in rows] == [(f"vr@q{q}", float(q)) for q in range(LEVELS)]
    assert results["models"]["vr"]["rate_levels"] == LEVELS and results["models"]["vr"]["qualities"] == [
        0.0,
        1.0,
        2.0,
        3.0,
    ]
    # fractional levels, on the packet's grid
    out2 = tmp_path / "out2"
    results = R.evaluate(
        _cfg(files, out2, target_bpps=[1.0], gvc={"qualities": [0.5, 2.25], "match_targets": False})
    )
    gvc = [p for p in results["points"] if p["codec"] == "gvc"]
    assert [(p["setting"], p["q"]) for p in gvc] == [("vr@q0.5", 0.5), ("vr@q2.25", 2.25)]
    assert gvc[0]["bpp"] < gvc[1]["bpp"]


def test_rate_matching_lands_within_the_tolerance_or_says_why_and_single_rate_labels_stay(tmp_path, files):
    """gvc.match_targets: each variable-rate model is matched to each target by the baselines' bisection, over q
    (fractional q where no level lands within `tolerance`); a target under the model's lowest rate is flagged with
    the encoder-floor reason. A single-rate model in the same run keeps its label, its curve and its one point."""
    sweep = measure_model(files["vr"], files["clip"], tmp_path / "m1", quality=1)
    top = measure_model(files["vr"], files["clip"], tmp_path / "m2", quality=2)
    assert sweep.quality == 1.0 and top.quality == 2.0 and top.bpp > sweep.bpp
    between = (sweep.bpp * top.bpp) ** 0.5  # between two levels: neither is within 1%
    assert abs(sweep.bpp / between - 1) > 0.01 and abs(top.bpp / between - 1) > 0.01
    floor = 0.5 * sweep.bpp  # far below level 0
    out = tmp_path / "out"
    tol = 0.01
    results = R.evaluate(_cfg(files, out, models=[str(files["vr"]), str(files["sr"])], tolerance=tol,
                              target_bpps=[between, floor], gvc={"qualities": [1, 2]}))  # fmt: skip
    points = {p["setting"]: p for p in results["points"]}
    assert set(points) == {"vr@q1", "vr@q2", f"vr@{between:g}bpp", f"vr@{floor:g}bpp", "sr"}
    hit = points[f"vr@{between:g}bpp"]
    assert hit["within_tolerance"] and abs(hit["bpp"] / between - 1) <= tol
    assert abs(hit["rel_error"]) <= tol and hit["target_bpp"] == pytest.approx(between)
    assert 1 < hit["q"] < 2 and hit["q"] * 256 == int(hit["q"] * 256)  # a fractional level on the packet grid
    assert [p.quality for p in read_bitstream(hit["bitstream"])[1]] == [hit["q"]] * T
    assert hit["bpp"] == pytest.approx(
        8 * Path(hit["bitstream"]).stat().st_size / (T * sweep.width * sweep.height)
    )
    assert len(hit["tried"]) >= 3 and hit["curve"] == "gvc vr (all intra)"
    missed = points[f"vr@{floor:g}bpp"]
    assert missed["within_tolerance"] is False and missed["q"] == 0.0
    assert missed["match_reason"].startswith("encoder floor: gvc gives") and "q=0" in missed["match_reason"]
    report = (out / "report.md").read_text()
    assert f"vr@{floor:g}bpp" in report.split("### Targets not met within the tolerance")[1]
    assert "variable rate, 4 levels, swept at q [1.0, 2.0], matched to each target" in report
    # the search files are gone; the kept file decodes with the report's command
    assert not (out / "bitstreams" / files["clip"].stem / "gvc" / "search").exists()
    single = points["sr"]
    assert single["curve"] == "gvc sr (all intra)" and "q" not in single and "--q" not in single["command"]
    assert (out / "bitstreams" / files["clip"].stem / "gvc" / "sr.gvc").is_file()


@pytest.mark.ffmpeg
def test_variable_rate_model_gets_its_own_bd_rate_row_and_its_command_rewrites_the_file(tmp_path, files):
    """Beside x265 (the anchor), the variable-rate model's curve (4 levels + the targets) has enough points for
    BD-rate: its row gives a number or a reason other than too few gvc points (a random model may not overlap
    x265 in quality). The report's `gvc encode --q` command of a matched point rewrites its file byte for byte."""
    ends = [
        measure_model(files["vr"], files["clip"], tmp_path / f"e{q}", quality=q).bpp for q in (0, LEVELS - 1)
    ]
    target = (ends[0] * ends[1]) ** 0.5
    out = tmp_path / "out"
    results = R.evaluate(_cfg(files, out, target_bpps=[target], baselines={"x265": {}}, anchor="x265",
                              sweep={"x265": [20, 30, 40]}, match_gvc=False))  # fmt: skip
    curve = "gvc vr (all intra)"
    rows = [r for r in results["points"] if r["codec"] == "gvc"]
    assert len(rows) == LEVELS + 1
    flat = [{**p, **p["summary"]} for p in results["points"]]
    bpp, _ = rd.rd_curves(flat, "psnr_rgb")[curve]
    assert len(set(bpp.tolist())) >= results["bd_rate"]["min_points"]
    entry = results["bd_rate"]["table"][curve]["psnr_rgb"]
    assert (
        "value" in entry or f"{curve}:" not in entry["reason"] or "distinct point" not in entry["reason"]
    ), entry
    report = (out / "report.md").read_text()
    assert f"| {curve} |" in report.split("## BD-rate vs x265")[1]
    matched = next(p for p in rows if p.get("target_bpp"))
    assert abs(matched["rel_error"]) <= results["config"]["tolerance"] or matched["match_reason"]
    beside = report.split("## Each gvc point beside the baselines at its rate")[1].split("\n## ")[0]
    lines = [line for line in beside.splitlines() if line.startswith("| videoSRC")]
    i = next(k for k, line in enumerate(lines) if f"| {curve} {matched['setting']} |" in line)
    assert lines[i + 1].split(" | ")[1] == "x265"  # the baseline's own point at the same target
    replay = tmp_path / "replay"
    replay.mkdir()
    stem = str(Path(matched["bitstream"]).with_suffix(""))
    shell = matched["command"].replace(stem, str(replay / "x"))
    bindir = Path(sys.executable).parent
    proc = subprocess.run(shell, shell=True, capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (replay / "x.gvc").read_bytes() == Path(matched["bitstream"]).read_bytes()


def test_measure_model_quality_is_required_for_variable_and_refused_for_single_rate(tmp_path, files):
    low = measure_model(files["vr"], files["clip"], tmp_path, quality=0)
    high = measure_model(files["vr"], files["clip"], tmp_path, quality=2.5)
    assert (tmp_path / "vr@q0.gvc").is_file() and (tmp_path / "vr@q2.5.gvc").is_file()
    assert high.bpp > low.bpp and high.as_dict()["quality"] == 2.5
    with pytest.raises(ConfigError, match="variable-rate model \\(4 rate levels\\): give the quality level"):
        measure_model(files["vr"], files["clip"], tmp_path)
    with pytest.raises(ConfigError, match="codes one rate"):
        measure_model(files["sr"], files["clip"], tmp_path, quality=1)
    single = measure_model(files["sr"], files["clip"], tmp_path / "sr")
    assert single.quality is None and (tmp_path / "sr" / "sr.gvc").is_file()


@pytest.mark.parametrize(
    "qualities, message",
    [([4], "gvc.qualities [4]: model vr"), ([1, 1.001], "twice"), (["a"], "must be null")],
)
def test_bad_qualities_are_one_error_line_before_any_work(tmp_path, files, capsys, qualities, message):
    with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("]", "\\]")):
        R.Evaluator(_cfg(files, tmp_path / "out", gvc={"qualities": qualities}))
    assert not (tmp_path / "out").exists()
    assert GVCCodec([files["sr"]], qualities=[9]).labels == ["sr"]  # single-rate models ignore the key
    main = _evaluate_main()
    arg = "[" + ",".join(str(q) for q in qualities) + "]"
    rc = main([f"videos=[{files['clip']}]", f"models=[{files['vr']}]", f"gvc.qualities={arg}",
               f"output_dir={tmp_path / 'cli'}", "progress=false", "metrics=[psnr]"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "gvc.qualities" in err, err
    assert not (tmp_path / "cli").exists()
