"""Relevance-diversity curves of the reranker as the trade-off goes 0..1, for DPP and MMR.

    OPENBLAS_NUM_THREADS=1 python scripts/diversity_curves.py [--source auto|retrieval|minilm]

(a) Online Retail (UCI sample), global temporal split at the 80% time quantile: per user, the
    training purchases are the history and the test purchases not already in it are the truth.
    Candidates: the top --candidates items of the catalog for the user, never a history item.
    NDCG@k (metrics.ndcg_at_k), ILD@k over the embeddings the reranker saw
    (metrics.intra_list_diversity), novelty@k (metrics.novelty, popularity = share of training
    users who bought the item, add-one smoothed so never-bought items count).
(b) Instacart sample: no temporal split (see its README), so only category coverage@k over the
    real taxonomy (aisles and departments; metrics.category_coverage over the categories present
    among the user's candidates) and ILD@k. The history is a user's baskets; candidates exclude
    it. The reranker sees the aisle as the category (S blends category similarity in; no cap).
(c) Only when the LATEST retrieval artefact was trained on the embedded synthetic dataset: the
    same protocol as (a) on that dataset, with the artefact's candidates and vectors, plus
    category coverage@k over its leaf categories (given to the reranker).

Candidates and relevance: with --source retrieval (and by default when var/models/retrieval/
LATEST exists and was trained on Online Retail) the two-tower retrieval artefact gives the user
vector, the FAISS top-N and inner-product relevance, and its item vectors are the embeddings.
Otherwise (and always for Instacart) all-MiniLM-L6-v2 title embeddings (cached under var/) are
the embeddings and relevance is the cosine to the mean of the user's history embeddings.
Writes docs/figures/diversity_{online_retail,instacart,synthetic}.png and the tables between
the markers in docs/reranker.md; prints the tables too.
"""

from __future__ import annotations

from offline.evaluation.diversity import main

if __name__ == "__main__":
    raise SystemExit(main())
