"""The one exception type a user is meant to read.

Anything raised as `SltError` is printed by the CLI as a single line (no
traceback) and turned into a 4xx by the API: its message must say what was
wrong and what to do about it.
"""


class SltError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""
