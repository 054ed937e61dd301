"""Offline evaluation of the whole pipeline, stage by stage, on one temporal split. The
protocol is in ``offline.evaluation.pipeline`` (its docstring).

    python scripts/evaluate.py --data online-retail --retrieval-dir DIR --ranker-dir DIR
"""

from __future__ import annotations

from pathlib import Path

from offline.evaluation.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main(root=Path(__file__).resolve().parent.parent))
