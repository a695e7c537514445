"""`python3 -m kvq_client ...`: see cli.py."""

import sys

from kvq_client.cli import main

sys.exit(main())
