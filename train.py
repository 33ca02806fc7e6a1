"""Train one stage of gvc: ``python train.py +experiment=smoke_iframe`` (see conf/train.yaml).

Only this file knows Hydra: it composes the config and hands it, with hydra.utils.instantiate, to
:func:`gvc.training.run.train`. Re-running with the same ``paths.output_dir=DIR`` resumes from DIR's last.ckpt.
"""

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from gvc.errors import GVCError
from gvc.training.run import train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = train(cfg, instantiate)
    except GVCError as e:  # our errors say what to do: no traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"finished at step {result['step']} (lambda_R {result['lambda_r']:.4g}); checkpoint: {result['checkpoint']}; "
        f"model file: {result['model_file']}"
    )


if __name__ == "__main__":
    main()
