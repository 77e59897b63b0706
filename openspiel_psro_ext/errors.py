"""Errors that mean "the input was wrong", as opposed to a bug.

The command line turns a `UsageError` into one line and exit code 2; any
other exception keeps its traceback, so an internal failure is never
mistaken for bad input. API callers can catch `UsageError` (a `ValueError`)
to tell the two apart too.
"""


class UsageError(ValueError):
  """Bad input: the message names the problem and the fix."""
