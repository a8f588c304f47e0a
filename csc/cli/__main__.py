"""`python -m obsq.csc.cli`: the `obsq` command (component and benchmark processes are started this way)."""

import sys

from obsq.csc.cli import main

sys.exit(main())
