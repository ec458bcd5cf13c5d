"""``python -m realtime`` runs the ``step-realtime`` command."""

import sys

from realtime.cli import main

sys.exit(main())
