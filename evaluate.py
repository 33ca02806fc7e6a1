"""Evaluate gvc model files against standard codecs: ``python evaluate.py videos=[a.y4m] models=[m.gvcm]``.

Only this file knows Hydra; it turns the composed config into a plain dict for :func:`gvc.eval.run.evaluate`.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from gvc.errors import GVCError
from gvc.eval.run import evaluate


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    plain["dataset"] = plain.pop("eval_data", None)
    try:
        results = evaluate(plain)
    except GVCError as e:  # our errors say what to do: no traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {cfg.output_dir}/report.md ({len(results['points'])} points)")


if __name__ == "__main__":
    main()
