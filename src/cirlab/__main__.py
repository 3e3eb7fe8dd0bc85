"""Allow ``python -m cirlab``."""

from cirlab.cli import main

raise SystemExit(main())
