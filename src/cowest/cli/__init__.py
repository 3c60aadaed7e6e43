"""The `cowest` command line: `core` is its frame, each other module a group of commands that register with it."""

# in the order `cowest --help` lists them: the method's commands first
from . import stages, results, assets, check, serve  # noqa: F401,I001  (each registers its commands)
from .core import app, main

__all__ = ["app", "main"]
