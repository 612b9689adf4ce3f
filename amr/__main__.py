"""`python -m amr` runs the command line."""

from amr.cli import main

raise SystemExit(main())
