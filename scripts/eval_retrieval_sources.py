"""Candidate sources and their fusion weights, chosen on a validation cut inside the training
period and measured once on test. The protocol is in ``offline.evaluation.retrieval_sources``.

    python scripts/eval_retrieval_sources.py --data online-retail --seed 0
"""

from __future__ import annotations

from offline.evaluation.retrieval_sources import main

if __name__ == "__main__":
    raise SystemExit(main())
