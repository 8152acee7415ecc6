"""``python -m xpnn.cli.agree``: the same as ``xpnn agree``."""

import sys

from xpnn.cli import main

sys.exit(main(["agree", *sys.argv[1:]]))
