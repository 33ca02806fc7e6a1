"""Train one stage of gvc: ``python train.py +experiment=smoke_iframe`` (see conf/train.yaml).

The program is gvc/train.py (``python -m gvc.train`` and ``gvc-train`` run the same with an installed gvc):
it composes conf/ through Hydra, checks the overrides (one ``error:`` line and exit status 2 for a user error)
and trains. Re-running with the same ``paths.output_dir=DIR`` resumes from DIR's last.ckpt.
"""

import sys

from gvc.train import main

if __name__ == "__main__":
    sys.exit(main())
