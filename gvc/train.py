"""Train one stage of gvc: ``python train.py +experiment=smoke_iframe`` (see conf/train.yaml).

The program behind train.py of the repository root, ``python -m gvc.train`` and the ``gvc-train`` command
of an installed gvc (the same arguments; the configs come from ``gvc.config_dir()``). Only this file knows
Hydra: it composes the config and hands it, with hydra.utils.instantiate, to :func:`gvc.training.run.train`.
Re-running with the same ``paths.output_dir=DIR`` resumes from DIR's last.ckpt.

Every user error (an unknown key or group, a bad value, an output dir under a file, a missing checkpoint) is ONE
`error:` line on stderr and exit status 2: the overrides are composed and checked (gvc.training.run.check_config)
before Hydra starts the run, so Hydra never prints its own error report for them.
"""

import shutil
import sys
import warnings
from pathlib import Path

from gvc import config_dir
from gvc.cli import compose_checked
from gvc.cli_errors import one_line, run_main
from gvc.errors import ConfigError, GVCError


def _task(cfg) -> None:
    """The Hydra task: train and report; user errors leave as SystemExit(2) after one `error:` line."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    from gvc.training.run import train

    def fit() -> None:
        try:
            result = train(cfg, instantiate)
        except InstantiationException as e:  # a constructor refused a value: name what it said
            cause = e.__cause__
            raise (cause if isinstance(cause, GVCError) else ConfigError(one_line(e))) from None
        except OmegaConfBaseException as e:  # e.g. an interpolation that does not resolve
            raise ConfigError(one_line(e)) from None
        print(
            f"finished at step {result['step']} (lambda_R {result['lambda_r']:.4g}); checkpoint: "
            f"{result['checkpoint']}; model file: {result['model_file']}"
        )

    rc = run_main(fit)
    if rc:
        _remove_failed_run_dir()
        raise SystemExit(rc)


#: the run folder named by paths.output_dir as composed before Hydra started, if it existed then (a resume)
_EXISTING_RUN_DIR: dict[str, Path | None] = {"path": None}


def _remove_failed_run_dir() -> None:
    """A run that stopped on a user error before writing anything of its own (no checkpoint, no model file, no
    logged value) leaves no run folder: Hydra's `.hydra/` and `train.log`, the logger ids and the empty log
    folders go, with the folder itself, unless the folder was there before the run."""
    from hydra.core.hydra_config import HydraConfig

    from gvc.training.run import LOGGER_IDS

    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    except (ValueError, AttributeError):
        return
    if not run_dir.is_dir() or run_dir == _EXISTING_RUN_DIR["path"]:
        return  # a folder that was there before (resume): not ours to remove
    setup_only = {"train.log", LOGGER_IDS}  # written before training starts; .hydra/ too
    files = [p.relative_to(run_dir) for p in run_dir.rglob("*") if not p.is_dir()]
    if all(f.parts[0] == ".hydra" or str(f) in setup_only for f in files):
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        for message in (
            # gvc keeps its frozen networks (LPIPS, optical flow) in eval mode on purpose
            r"Found \d+ module\(s\) in eval mode at the start of training",
            # ClipDataModule.on_after_batch_transfer hands the batch on to the module's hook itself
            r"You have overridden `on_after_batch_transfer` in both `LightningModule` and `LightningDataModule`",
            # Lightning 2.6 against torch 2.14's pytree API: nothing a user can change
            r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        ):
            warnings.filterwarnings("ignore", message=message)
        conf = config_dir()
        cfg = compose_checked(conf, "train", argv)
        if cfg is not None:
            from gvc.training.run import check_config

            check_config(cfg)
            out = Path(str(cfg.paths.output_dir)).resolve()
            _EXISTING_RUN_DIR["path"] = out if out.exists() else None
        import hydra

        entry = hydra.main(config_path=str(conf), config_name="train", version_base="1.3")(_task)
        sys.argv = [sys.argv[0], *argv]
        entry()
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
