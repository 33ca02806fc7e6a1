"""Every citation of a document points into the repository.

Scanned: the repository's text files (tracked, or new and not ignored). A citation is
- a `*.md` name: the file must exist in the repository (from the root, next to the citing file, or in docs/);
- a section number after a document, "docs/METHOD.md section 3.6" / "§3.6" (also "section 2.5, section 6" and
  "sections 1 and 3"): that number must be a numbered heading ("## 3. ...", "### 3.6 ...") of the document; in a
  `*.md` file a bare "section N" means the file itself, elsewhere the document must be named;
- a heading by name, `docs/ARCHITECTURE.md, "A frame's path"`: a heading of that document must start with it;
- an upper-case document name with a section or decision number ("NAME section 2", "NAME decision 5"): NAME.md
  must be in the repository and have that numbered heading.
"SPEC" as a word is refused outright: the internal spec is not in the repository, so docs/METHOD.md is cited.

The checker is tested on a small fake repository below, so it is known to fail on each kind of bad citation.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve()

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt", ".cfg", ".ini"}
TEXT_NAMES = {"Makefile"}
#: names of files the code WRITES (an evaluation's report), which look like documents but are not cited as such
GENERATED = {"report.md"}

_MD = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b")
_UPPER_DOC = re.compile(r"\b([A-Z][A-Z_]{2,})\s+(?=(?:sections?|§|decisions?)\s*\d)")
_SECTION = re.compile(
    r"(?:\b(?:sections?|decisions?)\s+|§\s*)(\d+(?:\.\d+)*(?:(?:\s*,\s*|\s+and\s+)\d+(?:\.\d+)*)*)", re.I
)
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_BY_NAME = re.compile(r"\.md,?\s+\"([^\"\n]{3,80})\"")
_SPEC = re.compile(r"\bSPEC\b")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)
_HEADING_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s|$)")
#: how far back (characters) a section number looks for the document it belongs to
_REACH = 80


def repo_text_files(root: Path) -> list[Path]:
    """The text files of the repository at `root`: git's tracked and new non-ignored files (or a walk)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        paths = [root / p for p in out if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if ".git" not in p.parts and ".venv" not in p.parts]
    return sorted(p for p in paths if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES))


def headings(doc: Path) -> tuple[set[str], list[str]]:
    """(numbers of the numbered headings, every heading's text) of a markdown file."""
    texts = _HEADING.findall(doc.read_text(encoding="utf-8"))
    numbers = {m.group(1) for t in texts if (m := _HEADING_NUMBER.match(t))}
    return numbers, texts


def _resolve(root: Path, citing: Path, name: str) -> Path | None:
    for base in (root, citing.parent, root / "docs"):
        p = (base / name).resolve()
        if p.is_file() and p.is_relative_to(root.resolve()):
            return p
    return None


def _upper_doc(root: Path, stem: str) -> Path | None:
    """NAME -> the repository's NAME.md (at the root or in docs/), or None."""
    found = [p for p in (root / f"{stem}.md", root / "docs" / f"{stem}.md") if p.is_file()]
    return found[0].resolve() if found else None


def _at(rel: str, text: str, pos: int) -> str:
    """'path:line' of position `pos` of `text`."""
    return f"{rel}:{text.count(chr(10), 0, pos) + 1}"


def find_bad_citations(root: Path, files: list[Path]) -> list[str]:
    """'path:line: problem' for every citation in `files` that does not resolve inside `root`."""
    root = root.resolve()
    bad: list[str] = []
    cache: dict[Path, tuple[set[str], list[str]]] = {}

    def heads(doc: Path):
        if doc not in cache:
            cache[doc] = headings(doc)
        return cache[doc]

    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        rel = f.resolve().relative_to(root).as_posix()

        # documents named in the text, by position: (start, end, resolved path or None, as written)
        docs: list[tuple[int, int, Path | None, str]] = []
        for m in _MD.finditer(text):
            name = m.group(1)
            if Path(name).name in GENERATED:
                continue
            path = _resolve(root, f, name)
            docs.append((m.start(), m.end(), path, name))
            if path is None:
                bad.append(f"{_at(rel, text, m.start())}: cites {name}, which is not in the repository")
        for m in _UPPER_DOC.finditer(text):
            path = _upper_doc(root, m.group(1))
            docs.append((m.start(), m.end(), path, m.group(1)))
            if path is None:
                bad.append(
                    f"{_at(rel, text, m.start())}: cites {m.group(1)}, which is not a document of the repository"
                )
        docs.sort()
        for m in _SPEC.finditer(text):
            bad.append(
                f"{_at(rel, text, m.start())}: cites SPEC, which is not in the repository (cite docs/METHOD.md)"
            )
        for m in _SECTION.finditer(text):
            before = [d for d in docs if d[1] <= m.start() and m.start() - d[1] <= _REACH]
            if before:
                _, _, doc, name = before[-1]
                if doc is None:
                    continue  # already reported as a missing document
            elif f.suffix == ".md":
                doc, name = f.resolve(), rel
            else:
                bad.append(f"{_at(rel, text, m.start())}: '{m.group(0).strip()}' does not name its document")
                continue
            numbers, _ = heads(doc)
            for n in _NUMBER.findall(m.group(1)):
                if n not in numbers:
                    bad.append(f"{_at(rel, text, m.start())}: {name} has no heading numbered {n}")
        for m in _BY_NAME.finditer(text):
            doc = next((d for d in reversed(docs) if d[1] <= m.start() + 3), None)
            if doc is None or doc[2] is None or doc[2].suffix != ".md":
                continue
            _, texts = heads(doc[2])
            if not any(t.startswith(m.group(1)) for t in texts):
                bad.append(f'{_at(rel, text, m.start())}: {doc[3]} has no heading "{m.group(1)}"')
    return bad


def test_every_citation_in_the_repository_resolves():
    files = [f for f in repo_text_files(ROOT) if f.resolve() != SELF]
    assert len(files) > 100
    bad = find_bad_citations(ROOT, files)
    assert not bad, "citations that point nowhere:\n" + "\n".join(bad)


def test_method_doc_has_numbered_sections():
    numbers, _ = headings(ROOT / "docs" / "METHOD.md")
    assert {"1", "2", "3", "3.6", "3.7", "3.9", "3.9.1", "8"} <= numbers


# ----------------------------------------------------------------------------- the checker itself


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "GUIDE.md").write_text(
        "# Guide\n\n## 1. Start\n\n### 1.2 Then\n\n## Plain heading\n\nSee section 1.2 and §1.\n"
    )
    (tmp_path / "README.md").write_text("# Readme\n\n## Usage\n")
    return tmp_path


GOOD = [
    "# see docs/GUIDE.md section 1.2\n",
    "# docs/GUIDE.md section 1.2, section 1\n",
    "# docs/GUIDE.md sections 1 and 1.2\n",
    "# GUIDE section 1 (upper-case name, found under docs/)\n",
    '# docs/GUIDE.md, "Plain heading"\n',
    "# README.md and the report.md an evaluation writes\n",
]

BAD = [
    ("# see docs/NOPE.md\n", "not in the repository"),
    ("# see ../shared/OTHER.md\n", "not in the repository"),
    ("# docs/GUIDE.md section 4\n", "has no heading numbered 4"),
    ("# docs/GUIDE.md section 1.2, section 7\n", "has no heading numbered 7"),
    ("# docs/GUIDE.md section 1.3\n", "has no heading numbered 1.3"),
    ('# docs/GUIDE.md, "No such heading"\n', "has no heading"),
    ("# (SP" + "EC 3)\n", "cites SPEC"),
    ("# OTHER decision 5\n", "not a document of the repository"),
    ("# GUIDE decision 5\n", "has no heading numbered 5"),
    ("# as section 2 says\n", "does not name its document"),
]


@pytest.mark.parametrize("line", GOOD)
def test_checker_accepts_good_citations(fake_repo: Path, line: str):
    f = fake_repo / "mod.py"
    f.write_text(line)
    assert find_bad_citations(fake_repo, [f, fake_repo / "docs" / "GUIDE.md"]) == []


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_checker_fails_on_bad_citations(fake_repo: Path, line: str, problem: str):
    f = fake_repo / "mod.py"
    f.write_text(line)
    bad = find_bad_citations(fake_repo, [f])
    assert bad and all(b.startswith("mod.py:1: ") for b in bad), bad
    assert any(problem in b for b in bad), bad


def test_checker_reads_bare_sections_of_a_markdown_file_as_its_own(fake_repo: Path):
    doc = fake_repo / "docs" / "GUIDE.md"
    assert find_bad_citations(fake_repo, [doc]) == []
    doc.write_text(doc.read_text() + "\nAnd §9.\n")
    assert find_bad_citations(fake_repo, [doc]) == [
        "docs/GUIDE.md:11: docs/GUIDE.md has no heading numbered 9"
    ]
