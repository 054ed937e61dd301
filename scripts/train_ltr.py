"""Train the learned ranking model (LightGBM lambdarank) on a validation cut of the training
period and write var/models/ltr/<version>/ + LATEST.

Examples:
    python scripts/train_ltr.py                                   # synthetic data, seconds
    python scripts/train_ltr.py --data online-retail
    python scripts/train_ltr.py --data online-retail --bert-dir var/models/ranker --users 300

The protocol and the features are in offline.ranker.ltr and shared.ranking_features. The same
as ``python -m offline.ranker.ltr``.
"""

from __future__ import annotations

import sys

from offline.ranker.ltr import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
