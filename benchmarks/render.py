"""The one renderer of BENCHMARKS.md: a benchmark's section, put in place of exactly that section.

A section is a benchmark's figures (its own `markdown(...)`, from a fresh run or from its recorded result
benchmarks/results/<name>.json) and its analysis, written by hand in benchmarks/notes/<name>.md and kept apart
from the figures so that a re-render keeps it. The notes go where the figures have a line NOTES_AT, else at the
end. `write` replaces the section with the same `## ` heading line (a new one is appended) and leaves every other
byte of the file as it was; paths of the machine a bench ran on become paths relative to the repository.

    python benchmarks/render.py [NAME ...] [--out BENCHMARKS.md]   # re-render recorded results (default: all)
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
NOTES = HERE / "notes"
RESULTS = HERE / "results"
NOTES_AT = "<!-- notes -->"  # a line of a bench's figures: its notes go here
#: recorded results (RESULTS/<name>.json) -> the bench module whose `markdown(result)` renders them, in the
#: order of BENCHMARKS.md; a module with `markdown_pending()` has a section while nothing is recorded
RECORDED = {
    "bench_compile": "bench_compile",
    "bench_ddp": "bench_ddp",
    "bench_iframe_parity": "bench_iframe_parity",
    "bench_trainer_parity": "bench_trainer_parity",
    "bench_flow_codec": "bench_flow_codec",
    "bench_rd_full": "bench_operating_points",
    "bench_rd_c3": "bench_operating_points",
    "bench_rd_quick": "bench_operating_points",
    "bench_ip_budget": "bench_ip_budget",
    "gpu_learn": "gpu_learn",
    "bench_variable_rate": "bench_variable_rate",
    "bench_crop_size": "bench_crop_size",
    "bench_augment": "bench_augment",
    "bench_ssf_yardstick": "bench_ssf_yardstick",
    "bench_flow_pretrain": "bench_flow_pretrain",
}

#: an absolute checkout root in a recorded command: the folder above its `.venv/bin/python` or `outputs/`
_ROOT_IN_COMMAND = re.compile(r"(?<![\w.])(/[^\s'\"=`]*?)/(?:\.venv/bin/python[0-9.]*|outputs/)")


def repo_relative(text: str) -> str:
    """`text` with paths relative to the repository: this checkout's root (and that of the machine a recorded
    result ran on, found before its `.venv/bin/python` or `outputs/`) is dropped, and the interpreter becomes
    `python`. Other absolute paths stay."""
    roots = {str(ROOT), *_ROOT_IN_COMMAND.findall(text)}
    for exe in (sys.executable, *(f"{r}/.venv/bin/python" for r in roots)):
        text = re.sub(rf"(?<![\w/.]){re.escape(exe)}[0-9.]*(?=\s|$)", "python", text)
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(f"{root}/", "")
    return text


def section(name: str, figures: str, notes_dir: Path = NOTES) -> str:
    """The section of bench `name`: its figures with notes_dir/<name>.md (when present) at NOTES_AT or at the
    end, paths made relative to the repository; ends with one newline."""
    path = notes_dir / f"{name}.md"
    notes = path.read_text().strip("\n") if path.is_file() else ""
    if f"{NOTES_AT}\n" in figures:
        before, after = figures.split(f"{NOTES_AT}\n", 1)
        text = before + (f"{notes}\n{after}" if notes else after.lstrip("\n"))
    else:
        text = figures.rstrip("\n") + (f"\n\n{notes}" if notes else "")
    return repo_relative(text.rstrip("\n") + "\n")


def _headings(doc: str) -> list[tuple[int, str]]:
    """(offset, line) of every `## ` heading of a markdown text, outside code fences."""
    out, fence, pos = [], False, 0
    for line in doc.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("## "):
            out.append((pos, line.rstrip("\n")))
        pos += len(line)
    return out


def replace_section(doc: str, text: str) -> str:
    """`doc` with the section whose heading line is `text`'s first line replaced by `text` (one section, one
    blank line before the next heading), or `text` appended; every other byte unchanged."""
    heads = _headings(text)
    if len(heads) != 1 or heads[0][0] != 0:
        raise ValueError(f"a section is one '## ' heading and its body, got {[h for _, h in heads]}")
    text = text.rstrip("\n") + "\n"
    title, starts = heads[0][1], _headings(doc)
    for i, (start, line) in enumerate(starts):
        if line == title:
            end = starts[i + 1][0] if i + 1 < len(starts) else len(doc)
            return doc[:start] + text + ("\n" if end < len(doc) else "") + doc[end:]
    return (doc.rstrip("\n") + "\n\n" if doc.strip() else "") + text


def write_doc(path: Path, doc: str) -> None:
    """Write `doc` to `path` under a temporary name, then rename (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(doc)
    tmp.replace(path)


def write(name: str, figures: str, out: Path = BENCHMARKS, notes_dir: Path = NOTES) -> str:
    """Put bench `name`'s section (`section`; figures of several `## ` sections: each) into the markdown file
    `out`; returns the text put in."""
    text = section(name, figures, notes_dir)
    old = out.read_text() if out.exists() else ""
    starts = [start for start, _ in _headings(text)] + [len(text)]
    new = old
    for a, b in zip(starts, starts[1:]):
        new = replace_section(new, text[a:b])
    if new != old:
        write_doc(out, new)
    return text


def set_header(out: Path, header: str) -> None:
    """Replace what stands before the first `## ` heading of `out` (title, date, machine) by `header`."""
    doc = out.read_text() if out.exists() else ""
    heads = _headings(doc)
    rest = doc[heads[0][0] :] if heads else ""
    write_doc(out, header.rstrip("\n") + "\n\n" + rest)


def recorded_figures(name: str, results: Path = RESULTS) -> str | None:
    """The figures of recorded result `name` (RESULTS/<name>.json) rendered by its bench; None when nothing is
    recorded and the bench has no section for that."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    bench = importlib.import_module(RECORDED[name])
    path = results / f"{name}.json"
    if path.is_file():
        return bench.markdown(json.loads(path.read_text()))
    return bench.markdown_pending() if hasattr(bench, "markdown_pending") else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"recorded results, of {', '.join(RECORDED)} (default all)")
    p.add_argument("--out", type=Path, default=BENCHMARKS)
    args = p.parse_args(argv)
    if unknown := set(args.names) - set(RECORDED):
        p.error(f"no recorded result named {', '.join(sorted(unknown))}")
    for name in args.names or RECORDED:
        figures = recorded_figures(name)
        if figures is not None:
            write(name, figures, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
