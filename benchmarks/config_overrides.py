"""`FIELD=VALUE` settings on a benchmark's command line (`--set`, `--br_set`):
overrides of an oracle's `Config`, values as Python literals."""

import ast
from typing import Any


def parse(items: list[str]) -> dict[str, Any]:
  """`["num_envs=1024", "warm_start=True"]` -> `{"num_envs": 1024, "warm_start": True}`."""
  settings = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep:
      raise SystemExit(f"a setting is FIELD=VALUE (e.g. num_envs=1024); got {item!r}.")
    try:
      settings[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
      raise SystemExit(
        f"setting {key}: {value!r} is not a Python literal (quote strings: {key}='\"text\"')."
      ) from e
  return settings
