"""Process B: index the runbook folder into ToonDB, then keep watching it.

Usage: python process_b_indexer.py [--db DIR] [--runbooks DIR] [--once]
[--poll SECONDS]
"""

import sys

from incident_ops.indexing.process import main

if __name__ == "__main__":
    sys.exit(main())
