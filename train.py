"""Train one stage of gvc: ``python train.py +experiment=smoke_iframe`` (see conf/train.yaml).

Only this file knows Hydra: it composes the config and hands it, with hydra.utils.instantiate, to
:func:`gvc.training.run.train`. Re-running with the same ``paths.output_dir=DIR`` resumes from DIR's last.ckpt.

Every user error (an unknown key or group, a bad value, an output dir under a file, a missing checkpoint) is ONE
`error:` line on stderr and exit status 2: the overrides are composed and checked (gvc.training.run.check_config)
before Hydra starts the run, so Hydra never prints its own error report for them.
"""

import sys
import warnings
from pathlib import Path

from gvc.cli import compose_checked, one_line, run_main
from gvc.errors import ConfigError, GVCError

CONF = Path(__file__).resolve().parent / "conf"


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
        raise SystemExit(rc)


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
        cfg = compose_checked(CONF, "train", argv)
        if cfg is not None:
            from gvc.training.run import check_config

            check_config(cfg)
        import hydra

        entry = hydra.main(config_path=str(CONF), config_name="train", version_base="1.3")(_task)
        sys.argv = [sys.argv[0], *argv]
        entry()
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
