"""Offline evaluation of the whole pipeline, stage by stage, on one temporal split.

    python scripts/evaluate.py --dataset online-retail|synthetic [--path FILE]   # or
    python -m offline.evaluation.pipeline ...
        [--retrieval-dir DIR] [--ranker-dir DIR] [--users 150] [--candidates 100]
        [--tradeoffs 0.25,0.5,0.75] [--record docs/evaluation.md]

Protocol: global temporal split at the 80% time quantile; a shopper's TRAIN history (most
recent first) drives every method; the truth is the set of items the shopper interacted with
in the TEST period; retrieval ranks the FULL catalog (FAISS, exact). Users with both train
history and test items, a seeded sample of --users of them. Compared on the same users:

- popularity           training-period popularity (the fallback list)
- retrieval            two-tower + FAISS order
- + BERT ranker        the top --candidates retrieval candidates ordered by the cross-encoder
- + BERT blend(w)      ordered by w * z(BERT) + (1 - w) * z(retrieval score)
- + DPP(t) / + MMR(t)  the blended relevance at --ranker-weight (the orchestrator's default)
                       diversified at trade-off t (services.reranker)

Metrics (shared.metrics): Precision/Recall/NDCG/HitRate/MRR @10 and @50, item coverage@10,
ILD@10 over MiniLM title embeddings (independent of the retrieval vectors the reranker uses),
category coverage@10 (leaf categories; derived from titles on Online Retail), novelty@10.
Writes a Markdown table (with --record) and a PNG of NDCG@10 against ILD@10 to docs/figures/.
The artefacts must have been trained on the same dataset: scripts/train_retrieval.py and
scripts/train_ranker.py.
"""

from __future__ import annotations

from pathlib import Path

from offline.evaluation.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main(root=Path(__file__).resolve().parent.parent))
