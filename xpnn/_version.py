"""The version of xpnn, in one place (``xpnn.__version__``; the package metadata reads it)."""

__version__ = "0.2.0"
