"""The README's commands parse as written, so the README cannot drift from the code.

Every `python train.py ...`, `python evaluate.py ...` and `gvc ...` line of the README's ```bash blocks
(continuation lines joined, comments cut, `torchrun`/`srun` launchers dropped) is checked the way the command
itself checks its arguments before doing any work: train.py and evaluate.py compose their Hydra config with the
overrides (what `--cfg job` prints), and train.py also runs its start-up value checks (`check_config`, with a real
file standing in for the stage-1 model the README says to give); `gvc` parses its argparse arguments. No file is
read, no model trained: this is fast and offline.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gvc import config_dir
from gvc.cli import build_parser, compose_checked

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONF = config_dir()


def _bash_lines(text: str) -> list[str]:
    """Logical lines of the ```bash blocks: continuations joined, comments and leading prompts cut."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if line.startswith("#"):
                continue
            line = re.sub(r"\s+#\s.*$", "", line)  # a trailing comment (` # ...`)
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line:
                lines.append(line)
    return lines


def readme_commands() -> list[tuple[str, list[str]]]:
    """(program, arguments) of each train.py / evaluate.py / gvc command in the README."""
    out = []
    for line in _bash_lines(README.read_text()):
        words = shlex.split(line)
        for i, w in enumerate(words):
            if w in ("train.py", "evaluate.py"):
                out.append((w, words[i + 1 :]))
                break
            if w == "gvc" and (i == 0 or words[i - 1].endswith("/bin")):
                out.append(("gvc", words[i + 1 :]))
                break
    return out


COMMANDS = readme_commands()


def test_the_readme_has_the_commands():
    programs = [p for p, _ in COMMANDS]
    assert (
        programs.count("train.py") >= 8 and programs.count("evaluate.py") >= 2 and programs.count("gvc") >= 6
    )


@pytest.fixture(scope="module")
def stage1_model(tmp_path_factory) -> Path:
    """A real stage-1 model file (the tiny smoke I-frame codec): what the README says stage.iframe_ckpt takes."""
    import torch
    from omegaconf import OmegaConf

    from gvc.codec.modelfile import save_model_file
    from gvc.models.iframe import IFrameCodec

    kwargs = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "smoke.yaml"), resolve=True)["iframe"]
    kwargs.pop("_target_")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("stage1") / "model.gvcm"
    save_model_file(path, IFrameCodec(**kwargs))
    return path


@pytest.mark.parametrize("program, args", COMMANDS, ids=[" ".join([p, *a])[:90] for p, a in COMMANDS])
def test_readme_command_parses(program, args, tmp_path, stage1_model):
    if program == "gvc":
        build_parser(args).parse_args(args)  # ConfigError (one `error:` line for a user) if it does not parse
        return
    if program == "evaluate.py":
        assert compose_checked(CONF, "evaluate", args) is not None
        return
    # train.py: the stage-1 model the README tells the user to give, as a real file
    stand_in = stage1_model
    args = [f"stage.iframe_ckpt={stand_in}" if a.startswith("stage.iframe_ckpt=") else a for a in args]
    cfg = compose_checked(CONF, "train", [*args, f"paths.output_dir={tmp_path / 'run'}"])
    assert cfg is not None
    from gvc.training.run import check_config

    check_config(cfg)
