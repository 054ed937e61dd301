"""Utility cost of differential privacy for the popularity fallback, on the real Online Retail
split: NDCG@10 of the DP popularity top-10 list at several epsilons.

Protocol: temporal split (shared.data.temporal_split, 80 % train by time); the fallback shows
every user the same list, the 10 items with the highest released popularity, ranked over the
whole catalog, without excluding past purchases (the fallback knows no user). Relevant items
of a test user are the items they bought in the test period; NDCG@10 is averaged over test
users (shared.metrics). Popularity is the number of distinct train users per item with each
user's contribution bounded to their ``k`` most recent items, released by the same OpenDP
mechanisms the gateway uses. OpenDP's CSPRNG cannot be seeded, so each cell is the mean and
standard deviation over independent releases ("runs") instead of fixed seeds.

With --retrieval-dir (a retrieval artefact trained on Online Retail), the full-pipeline
column is filled too, over the same test users and releases: a shopper whose train history
has an indexed item gets the two-tower top 10 (exact FAISS search; the BERT ranker is left
out, it measured no gain over retrieval order, docs/ranker.md); a shopper without one gets the
DP popularity list, as the orchestrator's cold-start path does. The note under the table
gives, for comparison, the same users served retrieval's own cold-start list (the retrieval
artefact's raw training counts, no DP).

    python scripts/privacy_utility.py --runs 20 --write-doc docs/privacy.md \
        --retrieval-dir var/models/retrieval/<online-retail version>
"""

from __future__ import annotations

from offline.evaluation.privacy_utility import main

if __name__ == "__main__":
    raise SystemExit(main())
