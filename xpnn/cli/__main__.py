"""``python -m xpnn.cli``: the same as the ``xpnn`` command."""

import sys

from xpnn.cli import main

sys.exit(main())
