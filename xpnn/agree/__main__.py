"""``python -m xpnn.agree``: the same as ``xpnn agree``."""

import sys

from xpnn.agree.command import main

sys.exit(main())
