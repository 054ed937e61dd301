"""Relevance-diversity curves of DPP and MMR as the trade-off goes 0..1 (Online Retail,
Instacart, synthetic). The protocol is in ``offline.evaluation.diversity`` (its docstring).

    OPENBLAS_NUM_THREADS=1 python scripts/diversity_curves.py [--source auto|retrieval|minilm]
"""

from __future__ import annotations

from offline.evaluation.diversity import main

if __name__ == "__main__":
    raise SystemExit(main())
