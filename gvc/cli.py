"""The `gvc` command: encode, decode, info (gvc.codec.cli), prepare-clips (gvc.data.prepare), export
(gvc.training.export: checkpoint -> .gvcm model file).

Subcommand modules are imported only when their command runs, so the codec commands never import Lightning or
Hydra. Every error a user can cause (a gvc error, a bad argument, a path that cannot be read or written) is
printed as ONE line `error: <message>` on stderr with exit code 2, no traceback: gvc.cli_errors (the bottom
layer, re-exported here) holds that handling for every entry point; this module adds :func:`compose_checked`,
the Hydra helper of train.py and evaluate.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gvc.cli_errors import USER_ERROR, ArgumentParser, one_line, quiet_library_warnings, run_main
from gvc.errors import ConfigError, GVCError

__all__ = [
    "USER_ERROR",
    "ArgumentParser",
    "compose_checked",
    "main",
    "one_line",
    "quiet_library_warnings",
    "run_main",
]


def compose_checked(config_dir, config_name: str, argv: Sequence[str]):
    """Compose ``config_name`` with the command-line overrides ``argv`` as @hydra.main will, and raise
    ConfigError (one line, naming the key) for what Hydra/OmegaConf would report with a traceback. Returns the
    composed DictConfig, or None when ``argv`` asks Hydra itself for something (--help, --cfg, -m sweeps, ...)."""
    if any(a.startswith("-") for a in argv):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(argv))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(one_line(e)) from None


#: lazily loaded subcommands: name -> (module, help). The module either has `add_parser(subparsers)`, which
#: registers the command and sets `func` (parsed args -> exit code or None), or a `main(argv) -> int` that gets
#: the arguments after the command name.
LAZY_COMMANDS = {
    "prepare-clips": ("gvc.data.prepare", "cut videos into uint8 clip shards for training"),
    "export": ("gvc.training.export", "write a .gvcm codec model file from a training checkpoint"),
}


def _first_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _import_command(name: str):
    module_name = LAZY_COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise GVCError(
            f"`gvc {name}` is not available: {module_name} cannot be imported ({e}); "
            "is gvc installed with its training dependencies (pip install -e .)?"
        ) from e
    if not hasattr(module, "add_parser") and not hasattr(module, "main"):
        raise GVCError(f"`gvc {name}` is not available: {module_name} has neither add_parser() nor main()")
    return module


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The full parser; a lazy command's module is imported only when `argv` selects it."""
    from gvc.codec.cli import add_parsers

    parser = ArgumentParser(
        prog="gvc",
        description="GAN-based low-delay learned video codec: encode/decode real bitstreams, "
        "prepare training clips, export model files.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parsers(sub)
    chosen = _first_command(argv)
    for name, (_, help_text) in LAZY_COMMANDS.items():
        module = _import_command(name) if name == chosen else None
        if module is not None and hasattr(module, "add_parser"):
            module.add_parser(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gvc` console script; returns the exit code (2 on a user error, see run_main)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        chosen = _first_command(argv)
        if chosen in LAZY_COMMANDS:
            module = _import_command(chosen)
            if not hasattr(module, "add_parser"):  # a module with its own main(argv): pass the rest through
                return int(module.main(argv[argv.index(chosen) + 1 :]) or 0)
        args = build_parser(argv).parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            raise GVCError(f"`gvc {args.command}` has no handler")
        return int(func(args) or 0)

    return run_main(
        run, sigterm=True
    )  # SIGTERM cleans up like Ctrl-C (README: a failed encode leaves nothing)


if __name__ == "__main__":
    sys.exit(main())
