"""`python -m gateway.cli`: the `warden` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
