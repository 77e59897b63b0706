"""The package's imports go downward only, between layers, with no cycles.

The layers, bottom up (ARCHITECTURE.md draws the same map):

  0  errors, records         typed values every layer may use
  1  game/                   the compiled tree and the exact maths on it
  2  simulated/, meta_solvers/
  3  oracles/                best responses (exact; rl/)
  4  backends/               where best responses and simulated games run
  5  evaluation/, runs/      run metrics and verification; the run directory
  6  psro/                   the loop, its config, views and variants
  7  compat/                 stock psro_v2 adapters and the stock baseline
  8  run, the package root   the command and the public face

A module may import its own layer's modules and any lower layer's, never a
higher layer's; two layers on one rank do not import each other. The test
reads every import statement (function-level ones included) with `ast`.
"""

from __future__ import annotations

import ast
import os

import openspiel_psro_ext

PACKAGE = "openspiel_psro_ext"
ROOT = os.path.dirname(openspiel_psro_ext.__file__)
RANKS = {
  "errors": 0,
  "records": 0,
  "game": 1,
  "simulated": 2,
  "meta_solvers": 2,
  "oracles": 3,
  "backends": 4,
  "evaluation": 5,
  "runs": 5,
  "psro": 6,
  "compat": 7,
  "run": 8,
  "": 8,  # the package root's `__init__`
}


def _modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of the package."""
  found = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(folder, name)
      parts = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      found[".".join([PACKAGE, *parts])] = path
  return found


def _imports(path: str, modules: dict[str, str]) -> set[str]:
  """The package modules `path` imports (a `from x import y` of a submodule
  counts as importing it)."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith(PACKAGE))
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
      for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        out.add(sub if sub in modules else node.module)
  return out


def _layer(module: str) -> str:
  parts = module.split(".")[1:]
  return parts[0] if parts else ""


def test_every_module_belongs_to_a_layer():
  unknown = sorted(m for m in _modules() if _layer(m) not in RANKS)
  assert not unknown, f"modules outside the layer map {unknown}: add the layer to RANKS."


def test_the_package_root_holds_only_the_face():
  root_files = sorted(f for f in os.listdir(ROOT) if f.endswith(".py"))
  assert root_files == ["__init__.py", "errors.py", "run.py"]


def test_imports_go_downward_only():
  modules = _modules()
  upward = []
  for module, path in modules.items():
    here = _layer(module)
    for target in _imports(path, modules):
      there = _layer(target)
      if there == here or target == PACKAGE:
        continue
      if RANKS[there] >= RANKS[here]:
        upward.append(f"{module} -> {target}")
  assert not upward, "imports from a lower layer to a higher one (or across a rank):\n" + "\n".join(
    sorted(upward)
  )


def test_no_import_cycles():
  modules = _modules()
  graph = {m: sorted(_imports(p, modules) & set(modules)) for m, p in modules.items()}
  # A package's `__init__` re-exporting its own submodules is not a cycle.
  graph = {m: [t for t in ts if not t.startswith(m + ".")] for m, ts in graph.items()}
  state: dict[str, int] = {}
  cycles = []

  def visit(node: str, path: list[str]) -> None:
    state[node] = 1
    for nxt in graph[node]:
      if state.get(nxt) == 1:
        cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
      elif nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = 2

  for node in graph:
    if node not in state:
      visit(node, [node])
  assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_loop_stays_small_and_oracles_know_no_variant():
  loop = os.path.join(ROOT, "psro", "loop.py")
  tree = ast.parse(open(loop, encoding="utf-8").read())
  (psro_class,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PSRO"]
  assert psro_class.end_lineno - psro_class.lineno + 1 <= 250  # docstrings included
  base = open(os.path.join(ROOT, "oracles", "base.py"), encoding="utf-8").read()
  for token in ("getattr(", "p2sro", "jpsro", "anytime", "xdo", "neupl"):
    assert token not in base.lower(), token
