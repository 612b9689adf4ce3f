"""``python -m simulators.dlms``: see `simulators.dlms.cli`."""

import sys

from simulators.dlms.cli import main

sys.exit(main())
