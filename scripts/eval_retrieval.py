"""Offline quality of retrieval alone on a real temporal split, against popularity. The
protocol is in ``offline.evaluation.retrieval`` (its docstring).

    python scripts/eval_retrieval.py --data online-retail --seeds 0 1 2
"""

from __future__ import annotations

from offline.evaluation.retrieval import main

if __name__ == "__main__":
    raise SystemExit(main())
