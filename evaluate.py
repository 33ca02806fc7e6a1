"""Evaluate gvc model files against standard codecs: ``python evaluate.py videos=[a.y4m] models=[m.gvcm]``.

Arguments are Hydra overrides of conf/evaluate.yaml (``key=value``, ``+key=value``, ``eval_data=mcl_jcv``).
Only this file knows Hydra: it composes the config and hands a plain dict to :func:`gvc.eval.run.evaluate`.
Any bad input (override syntax, unknown key, bad value, missing file) prints one ``error:`` line, exit status 2.
"""

import sys
from pathlib import Path

CONF = Path(__file__).resolve().parent / "conf"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        print(f"\nconfig: {CONF / 'evaluate.yaml'} (every key is documented there)")
        return 0
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="evaluate"):
            cfg = compose(config_name="evaluate", overrides=argv)
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # Hydra / OmegaConf errors: bad override syntax, unknown keys, bad interpolation
        print(f"error: {_one_line(err)} (arguments: {' '.join(argv)})", file=sys.stderr)
        return 2
    plain.pop("hydra", None)
    plain["dataset"] = plain.pop("eval_data", None)

    from gvc.errors import GVCError
    from gvc.eval.run import evaluate

    try:
        out = Path(str(plain["output_dir"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
        results = evaluate(plain)
    except GVCError as err:  # our errors say what to do: no traceback
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (FileExistsError, NotADirectoryError, PermissionError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "error: interrupted; re-run the same command to continue (finished points are kept)",
            file=sys.stderr,
        )
        return 130
    print(f"wrote {plain['output_dir']}/report.md ({len(results['points'])} points; log: evaluate.log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
