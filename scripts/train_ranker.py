"""Fine-tune the BERT cross-encoder ranker and write var/models/ranker/<version>/ + LATEST.

Examples:
    python scripts/train_ranker.py --quick                       # synthetic data, ~1 minute CPU
    python scripts/train_ranker.py --data online-retail --max-length 48 --eval-users 200
    python scripts/train_ranker.py --data online-retail --max-length 48 --resume
    python scripts/train_ranker.py --data online-retail --max-length 48 --curve 250,1000
    python scripts/train_ranker.py --promote VERSION             # serve a written version

A new version moves LATEST only when its order of the evaluation lists is not measurably worse
than the served version's (the publish gate; exit 3 when refused, --no-gate to skip it).

The GPU is used when torch sees one. --resume continues from the run's last checkpoint
(var/models/ranker/_checkpoints/<dataset>-<source>-seed<seed>/checkpoint.pt). The same as
``python -m offline.ranker.training``.
"""

from __future__ import annotations

import logging
import sys

from offline.ranker.training import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
