"""Start the whole recommender locally and show it working (called by scripts/run.sh). The
steps are described in ``devstack.run``; ``--help`` lists the options. This entry point runs it
from this checkout, so the default ``--var`` is the checkout's var/stack/ wherever it is started.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.run import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], root=Path(__file__).resolve().parent.parent))
