"""Train one stage of gvc: ``python train.py +experiment=smoke_iframe`` (see conf/train.yaml).

Only this file knows Hydra: it composes the config and hands it, with hydra.utils.instantiate, to
:func:`gvc.training.run.train`. Re-running with the same ``paths.output_dir=DIR`` resumes from DIR's last.ckpt.
"""

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from gvc.training.run import train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    result = train(cfg, instantiate)
    print(
        f"finished at step {result['step']} (lambda_R {result['lambda_r']:.4g}); checkpoint: {result['checkpoint']}; "
        f"model file: {result['model_file']}"
    )


if __name__ == "__main__":
    main()
