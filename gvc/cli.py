"""The `gvc` command: encode, decode, info (gvc.codec.cli), prepare-clips (gvc.data.prepare), export
(gvc.training.export: checkpoint -> .gvcm model file).

Subcommand modules are imported only when their command runs, so the codec commands never import Lightning or
Hydra. Every gvc error (gvc.errors.GVCError) is printed as `error: <message>` with exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gvc.errors import GVCError

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

    parser = argparse.ArgumentParser(
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
    """Entry point of the `gvc` console script; returns the exit code (2 on a gvc error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
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
    except GVCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
