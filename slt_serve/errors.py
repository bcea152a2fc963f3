"""The one exception type a user is meant to read.

Anything raised as `SltError` is printed by the CLI as a single line (no
traceback) and turned into a 4xx by the API: its message must say what was
wrong and what to do about it.
"""


class SltError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""


class ApiError(SltError):
    """A request the HTTP API refuses: an HTTP status and a stable code beside the message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}
