"""Offline quality of retrieval alone on a real temporal split, against popularity.

    python scripts/eval_retrieval.py --dataset online-retail --seeds 0 1 2

For each seed: train the two-tower model on the TRAIN side of shared.data.temporal_split
(80% time quantile), then for every user with train history and test items rank the FULL
catalog from the user's train history and score the test items with shared.metrics
(Recall/HitRate/NDCG@50/100/200). Popularity = the most interacted train items, the same list
for everyone. Prints mean and standard deviation over seeds; JSON goes to var/eval/.
"""

from __future__ import annotations

from offline.evaluation.retrieval import main

if __name__ == "__main__":
    raise SystemExit(main())
