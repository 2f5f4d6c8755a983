"""Errors the CLI reports as one line and exit code 2 (bad input, not bugs)."""


class BenchError(Exception):
    """A user-facing failure: bad input, missing data or hardware; message is one line."""


class GpuRequiredError(BenchError):
    """A GPU was asked for and none is present."""
