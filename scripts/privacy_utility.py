"""Utility cost of differential privacy for the popularity fallback (NDCG@10 per epsilon).
The protocol is in ``offline.evaluation.privacy_utility`` (its docstring).

    python scripts/privacy_utility.py --runs 20 --write-doc docs/privacy.md \\
        --retrieval-dir var/models/retrieval/<online-retail version>
"""

from __future__ import annotations

from offline.evaluation.privacy_utility import main

if __name__ == "__main__":
    raise SystemExit(main())
