"""Start the whole recommender locally and show it working (called by scripts/run.sh).

The logic is ``devstack.run``; this entry point runs it from this checkout, so the default
``--var`` is the checkout's var/stack/ wherever it is started from.

Steps, each printed as it happens:
  1. prepare what is missing: the pseudonymization key ring, the retrieval index (trained in
     seconds), the BERT ranker (--quick fine-tune) and its Triton model repository, the
     feature store database seeded with the synthetic data through the pseudonymizer;
  2. start every service as its own process on loopback (Triton too), wait for health SERVING;
  3. release the DP popularity list once (privacy gateway) so the fallback has one;
  4. send a few real Recommend calls and a LogEvents through the CLI client code, print them
     and the trace tree of one request;
  5. keep serving until Ctrl-C (or exit with --demo-only), then stop every child cleanly.

Everything lives under var/stack/ (--var): children log to logs/<service>.log, spans go to
traces/<service>.jsonl, models to models/, the SQLite databases and the key ring next to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.run import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], root=Path(__file__).resolve().parent.parent))
