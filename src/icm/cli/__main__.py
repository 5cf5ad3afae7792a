"""`python -m icm.cli`: the `icm` command."""

from icm.cli import main

raise SystemExit(main())
