"""Evaluate gvc model files against standard codecs: ``python evaluate.py videos=[a.y4m] models=[m.gvcm]``.

The program behind evaluate.py of the repository root, ``python -m gvc.evaluate`` and the
``gvc-evaluate`` command of an installed gvc (the same arguments; the configs come from ``gvc.config_dir()``).

Arguments are Hydra overrides of conf/evaluate.yaml (``key=value``, ``+key=value``, ``~key``,
``eval_data=mcl_jcv``). Only this file knows Hydra: it composes the config and hands a plain dict to
:func:`gvc.eval.run.evaluate`; the composed config is saved as ``output_dir/config.yaml``. Any bad input
(override syntax, unknown key, bad value, missing file, unwritable output) prints one ``error:`` line and exits
with status 2. Re-running the same command continues where an interrupted run stopped.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

from gvc import config_dir

#: how report.md records a run of this module (the repository's evaluate.py records `python evaluate.py`)
PROGRAM = ("python", "-m", "gvc.evaluate")


def _main(argv: list[str], program: Sequence[str]) -> int:
    from gvc.errors import ConfigError

    conf = config_dir()
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        print(f"\nconfig: {conf / 'evaluate.yaml'} (every key is documented there)")
        return 0
    from gvc.cli import compose_checked

    try:
        cfg = compose_checked(conf, "evaluate", argv)
    except ConfigError as err:
        raise ConfigError(f"{err} (arguments: {' '.join(argv)})") from None
    if cfg is None:
        raise ConfigError(f"evaluate.py takes key=value overrides only, not Hydra flags: {' '.join(argv)}")
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(" ".join(str(err).split())) from None
    plain.pop("hydra", None)
    plain["dataset"] = plain.pop("eval_data", None)
    from gvc.cli_errors import torch_device, work_complete

    torch_device(str(plain.get("device")), "device")  # one `error:` line, before anything is written

    import shlex

    from gvc.eval.run import Evaluator

    command_line = shlex.join([*program, *argv])  # recorded in report.md
    # checks every value, model file and codec before anything is written
    evaluator = Evaluator(plain, command_line)
    out = Path(str(plain["output_dir"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    results = evaluator.run()
    work_complete()
    print(
        f"wrote {out}/report.md ({len(results['points'])} points; progress and summary in {out}/evaluate.log)"
    )
    return 0


def main(argv: list[str] | None = None, program: Sequence[str] = PROGRAM) -> int:
    """Run an evaluation; ``program`` is the command report.md names (before the arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from gvc.cli_errors import run_main  # one `error:` line and exit status 2 for every user error

    return run_main(lambda: _main(argv, program))


if __name__ == "__main__":
    sys.exit(main())
