"""Train the two-tower retrieval model and publish a versioned artefact.

    python scripts/train_retrieval.py --data synthetic          # or --data FOLDER (docs/data.md)
    python scripts/train_retrieval.py --data online-retail --epochs 4 --dim 64 --seed 0

The same as ``python -m offline.retrieval.publish``.
"""

from __future__ import annotations

from offline.retrieval.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
