"""Errors a user can fix (a recipe, a data file, an asset, a backend, a results folder): the CLI prints the
message as one line and exits non-zero instead of showing a traceback."""

from __future__ import annotations


class CowestError(Exception):
    """Base of every error whose message alone tells the user what to change."""


class RecipeError(CowestError, ValueError):
    """A recipe that cannot be used; the message names the file, line and field."""
