"""benchmarks/render.py, the one renderer of BENCHMARKS.md: it replaces exactly one section, keeps the analysis
notes (benchmarks/notes/<name>.md) and every other byte, and writes paths relative to the repository."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_flow_codec  # noqa: E402
import render  # noqa: E402

TITLE = "## The flow codec alone (bench_flow_codec)"
HEAD = "# gvc benchmarks\n\n- Date: then\n\n"
BEFORE = "## A (x)\n\nfirst | table |\n\n"
AFTER = "## B (y)\n\n```\n## not a heading: inside a code block\n```\n\nlast\n"


def result(epe: float) -> dict:
    """A recorded bench_flow_codec result of one run on one clip; the machine line names an absolute path."""
    clip = {"flow_bpp": 0.0123, "epe": epe, "zero_motion_epe": 2.0, "block_mean_epe": 0.3}
    run = {"weight": 3.0, "flow_normalizer": 2.0, "steps": 1000, "clips": {"bikes": clip}}
    machine = f"box; command {ROOT}/.venv/bin/python benchmarks/bench_flow_codec.py"
    return {"machine": machine, "runs": {"w3/n2@1000": run}, "budgets": [1000]}


def test_one_section_is_replaced_and_the_rest_and_the_notes_survive(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bench_flow_codec").with_suffix(".md").write_text(
        "What this says:\n- **kept** across re-renders.\n"
    )
    recorded = tmp_path / "bench_flow_codec.json"
    recorded.write_text(json.dumps(result(epe=1.5)))
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(HEAD + BEFORE + f"{TITLE}\n\nold figures | 9.99 |\n\n" + AFTER)

    figures = bench_flow_codec.markdown(json.loads(recorded.read_text()))
    render.write("bench_flow_codec", figures, md, notes)
    doc = md.read_text()
    assert doc.startswith(HEAD + BEFORE + TITLE + "\n") and doc.endswith("\n\n" + AFTER)
    body = doc[len(HEAD + BEFORE) : -len(AFTER)]
    assert "old figures" not in body and "| 1.50 | 2.00 | 0.75x |" in body
    assert body.endswith("every held-out clip.\n\nWhat this says:\n- **kept** across re-renders.\n\n")
    assert str(ROOT) not in doc and "command python benchmarks/bench_flow_codec.py" in doc

    render.write("bench_flow_codec", figures, md, notes)  # a re-render of the same result changes nothing
    assert md.read_text() == doc
    render.write("bench_flow_codec", bench_flow_codec.markdown(result(epe=1.0)), md, notes)
    again = md.read_text()
    assert again == doc.replace("| 1.50 | 2.00 | 0.75x |", "| 1.00 | 2.00 | 0.50x |")


def test_notes_go_where_the_figures_mark_them_and_a_new_section_is_appended(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    figures = f"## New (z)\n\nGoal check: met\n\n{render.NOTES_AT}\n\nCommands:\n"
    assert render.section("z", figures, notes) == "## New (z)\n\nGoal check: met\n\nCommands:\n"
    (notes / "z").with_suffix(".md").write_text("\nWhat this says: why.\n\n")
    assert (
        render.section("z", figures, notes)
        == "## New (z)\n\nGoal check: met\n\nWhat this says: why.\n\nCommands:\n"
    )
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(HEAD + BEFORE + AFTER)
    render.write("z", figures, md, notes)
    assert md.read_text() == HEAD + BEFORE + AFTER + "\n" + render.section("z", figures, notes)
    with pytest.raises(ValueError, match="one '## ' heading"):
        render.replace_section(HEAD, "no heading\n")


def test_the_committed_benchmarks_md_is_its_recorded_results_rendered(tmp_path):
    """Every section rendered from benchmarks/results/*.json with its notes is what BENCHMARKS.md holds: the
    analysis lives in benchmarks/notes/, so a re-render loses nothing (and no absolute path is left)."""
    md = tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "BENCHMARKS.md", md)
    assert render.main(["--out", str(md)]) == 0
    assert md.read_text() == (ROOT / "BENCHMARKS.md").read_text()
