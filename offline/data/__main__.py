import sys

from offline.data.cli import main

sys.exit(main())
