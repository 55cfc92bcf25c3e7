"""edgecnn's version, at the bottom of the house: every room may read it without importing the package root."""

__version__ = "0.2.0"
