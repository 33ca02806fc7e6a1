"""What every gvc command does with a user's mistake, in the bottom layer so that every layer may import it.

Every error a user can cause (a gvc error, a bad argument, a path that cannot be read or written) is printed as
ONE line `error: <message>` on stderr with exit status 2 (:data:`USER_ERROR`), no traceback (:func:`run_main`,
:class:`ArgumentParser`, :func:`one_line`). Outputs never destroy an input, replace an existing file only when
asked (:func:`check_output`), and a command that fails or is interrupted removes the folders it created for its
output (:func:`created_folders`). A torch device is checked once, here (:func:`torch_device`).

A closed output pipe (``gvc info x.gvc | head -1``): once the command has done its work (:func:`work_complete`)
the rest of its output is dropped and it exits 0; before that it stops with status 141 (128 + SIGPIPE, what a
shell reports for a process killed by a closed pipe) and one line on stderr.

gvc.codec.cli (encode, decode, info), gvc.cli (the `gvc` command and the Hydra helper of train.py and
evaluate.py), gvc.training.export and the two scripts all use these.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from gvc.errors import ConfigError, GVCError

#: exit status of every user error
USER_ERROR = 2
#: exit status when the output pipe closed before the work was complete (128 + SIGPIPE, as a shell reports it)
BROKEN_PIPE = 141
#: exit status after SIGTERM (128 + SIGTERM, as a shell reports it)
TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, batch schedulers, container stops), raised where the command is, like Ctrl-C: the
    clean-up of a partial output and of the folders made for it runs as for SIGINT."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises :class:`Terminated` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_state = {"complete": False}


def work_complete() -> None:
    """Mark the running command's work as done: what is left is printing, and a reader that stops reading
    early (``| head``) is not an error (exit status 0)."""
    _state["complete"] = True


def quiet_library_warnings() -> None:
    """Silence warnings that third-party code prints on every command and that no user can act on (each filter
    matches one message from one module, nothing else):

    - torch_geometric (imported by compressai's registry for its point-cloud transforms, which gvc never uses)
      calls ``torch.jit.script`` at import time, and torch >= 2.10 warns that it is deprecated;
    - the lpips package builds its AlexNet with torchvision's deprecated ``pretrained=`` argument.
    """
    warnings.filterwarnings(
        "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning, module=r"torch\.jit"
    )
    for message in (
        r"The parameter 'pretrained' is deprecated",
        r"Arguments other than a weight enum or `None` for 'weights' are deprecated",
    ):
        warnings.filterwarnings(
            "ignore", message=message, category=UserWarning, module=r"torchvision\.models"
        )


def one_line(exc: BaseException) -> str:
    """An exception's message as one line: multi-line library messages joined with '; ', a trailing list
    ("Available options in 'stage':" then one option per line) joined with ', ', Hydra's search-path dump cut."""
    lines = [line.strip() for line in (str(exc).strip() or type(exc).__name__).splitlines() if line.strip()]
    cut = next((i for i, line in enumerate(lines) if line.startswith("Config search path")), len(lines))
    parts: list[str] = []
    listing = False
    for line in lines[:cut]:
        if listing:
            parts[-1] += ("" if parts[-1].endswith(":") else ",") + " " + line
        else:
            parts.append(line.rstrip("."))
            listing = line.endswith(":")
    return "; ".join(parts)


def os_error_message(e: OSError) -> str:
    """'path[ -> path2]: reason' of an OSError."""
    where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    what = e.strerror or one_line(e)
    return f"{where}: {what}" if where else what


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_main(fn: Callable[[], int | None], sigterm: bool = False) -> int:
    """Run ``fn`` and turn every user error into one `error:` line on stderr and exit status 2; a closed output
    pipe is status 0 once the work is complete, else 141 (see the module doc). With ``sigterm``, SIGTERM stops
    ``fn`` as Ctrl-C does (its outputs are cleaned up), with status 143 (the codec commands; training has its own
    SIGTERM handling: a checkpoint, then a clean stop)."""
    quiet_library_warnings()
    _state["complete"] = False
    try:
        with _sigterm_as_interrupt() if sigterm else contextlib.nullcontext():
            rc = int(fn() or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except GVCError as e:
        msg = one_line(e)
    except BrokenPipeError:
        _drop_stdout()
        if _state["complete"]:
            return 0
        with contextlib.suppress(OSError, ValueError):
            print("stopped: the output pipe closed before the work was complete", file=sys.stderr)
        return BROKEN_PIPE
    except OSError as e:
        msg = os_error_message(e)
    except Terminated:
        with contextlib.suppress(OSError, ValueError):
            print("terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    with contextlib.suppress(OSError, ValueError):
        print(f"error: {msg}", file=sys.stderr)
    return USER_ERROR


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors raised as ConfigError (printed as one `error:` line by run_main)."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def folder_problem(path: Path) -> str | None:
    """Why `path` could not be created under its nearest existing parent ("X is a file, not a folder" /
    "the folder X is not writable"), or None."""
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            if not os.access(parent, os.W_OK):
                return f"the folder {parent} is not writable"
            return None
    return None


def check_output(out: Path, inputs: dict[str, Path | None], overwrite: bool, folder_ok: bool = False) -> None:
    """Refuse an output that is one of ``inputs`` (what it is -> path), that exists without ``overwrite`` (-y), or
    whose folder cannot exist (a file in the way) or is not writable. A missing folder is created by the command
    and removed again if the command fails (:func:`created_folders`)."""
    out = Path(out)
    for what, p in inputs.items():
        if p is None:
            continue
        p = Path(p)
        same = out.exists() and p.exists() and os.path.samefile(out, p)
        if same or out.resolve() == p.resolve():
            raise GVCError(f"-o {out} is the {what}: writing it would destroy it; give another output name")
    if out.exists():
        if out.is_dir() and not folder_ok:
            raise GVCError(f"-o {out} is a folder; give a file name")
        if not overwrite:
            raise GVCError(f"-o {out} exists; add -y to overwrite it")
    problem = folder_problem(out.resolve())
    if problem:
        raise GVCError(f"-o {out}: {problem}")


@contextlib.contextmanager
def created_folders(*outputs: Path | None) -> Iterator[None]:
    """Around a command that writes ``outputs``: the folders on their paths that do not exist yet are removed
    again, deepest first and only while empty, when the command fails or is interrupted (Ctrl-C)."""
    missing: list[Path] = []
    for out in outputs:
        if out is None:
            continue
        for parent in Path(out).absolute().parents:
            if parent.exists():
                break
            missing.append(parent)
    try:
        yield
    except BaseException:
        for folder in sorted(set(missing), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only an empty folder goes; anything else written there stays
        raise


def torch_device(name: str, flag: str = "--device"):
    """``name`` as a torch.device that this machine has, else GVCError naming the devices it does have."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise GVCError(
            f"{flag} {name!r} is not a torch device ({one_line(e)}); {_devices_here(torch)}"
        ) from None
    if dev.type == "meta":
        raise GVCError(
            f"{flag} {name!r}: meta tensors hold no data and cannot code video; {_devices_here(torch)}"
        )
    if dev.type == "cpu":
        return dev
    available = (
        dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()
    )
    available = available or (dev.type == "mps" and torch.backends.mps.is_available() and not dev.index)
    if dev.type not in ("cuda", "mps"):
        try:
            torch.zeros(1, device=dev)
            available = True
        except Exception:  # noqa: BLE001 - each backend raises its own type for a missing device
            available = False
    if not available:
        raise GVCError(f"{flag} {name!r}: this machine has no such device; {_devices_here(torch)}")
    return dev


def _devices_here(torch) -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return "devices on this machine: " + ", ".join(names)
