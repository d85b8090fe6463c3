"""Process A, the collector: writes service metrics and events to ToonDB.

Usage: python process_a_collector.py [--db DIR] [--interval S]
[--source simulate|replay:FILE.csv] [--scenario NAME] [--seed N] [--resume]
"""

import sys

from incident_ops.collector_process import main

if __name__ == "__main__":
    sys.exit(main())
