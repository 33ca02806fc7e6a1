"""Evaluate gvc model files against standard codecs: ``python evaluate.py videos=[a.y4m] models=[m.gvcm]``.

The program is gvc/evaluate.py (``python -m gvc.evaluate`` and ``gvc-evaluate`` run the same with an installed
gvc): arguments are Hydra overrides of conf/evaluate.yaml; ``python evaluate.py --help`` says more.
"""

import sys

from gvc import evaluate

PROGRAM = ("python", "evaluate.py")  # the command report.md records


def main(argv: list[str] | None = None) -> int:
    return evaluate.main(argv, program=PROGRAM)


if __name__ == "__main__":
    sys.exit(main())
