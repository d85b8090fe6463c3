import sys

from incident_ops.cli import main

sys.exit(main())
