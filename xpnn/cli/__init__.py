"""The ``xpnn`` command: ``main`` parses the command line and runs it."""

from xpnn.cli.main import main

__all__ = ["main"]
