"""``python -m smtpcore``: the command line."""

import sys

from smtpcore.cli import main

sys.exit(main())
