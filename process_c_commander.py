"""Process C, the incident commander: detects, plans, mitigates, resolves.

Usage: python process_c_commander.py [--db DIR] [--poll S] [--once]
[--require-approval] [--action-window N] [rule flags]
"""

import sys

from incident_ops.commander_process import main

if __name__ == "__main__":
    sys.exit(main())
