"""The package's import graph: no cycles, and no imports of configs/.

Every import statement of every module counts, those inside functions too
(a deferred import that closes a loop is still a loop). `from pkg import
mod` is an edge to pkg.mod, not to pkg's __init__ (Python initialises a
parent package before its modules whichever way it is imported). Read from
the source with `ast`; nothing is imported.
"""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = 'a2v_jax'


def _modules() -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every module of the package."""
  out = {}
  for path in (REPO / PACKAGE).rglob('*.py'):
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    out['.'.join(parts)] = path
  return out


def _imported_names(path: pathlib.Path, modules=()):
  """Every absolute module name an import statement of `path` imports:
  `from x import y` gives x.y when that is one of `modules`, else x."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f'{path}: relative import'
      for alias in node.names:
        full = f'{node.module}.{alias.name}'
        yield full if full in modules else node.module


def _import_graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: {n for n in _imported_names(path, modules)
                 if n in modules} - {name}
          for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as [a, b, ..., a], or None."""
  done, on_path = set(), []

  def visit(node):
    if node in on_path:
      return on_path[on_path.index(node):] + [node]
    if node in done:
      return None
    on_path.append(node)
    for dep in sorted(graph[node]):
      cycle = visit(dep)
      if cycle:
        return cycle
    on_path.pop()
    done.add(node)
    return None

  for node in sorted(graph):
    cycle = visit(node)
    if cycle:
      return cycle
  return None


def test_no_import_cycles():
  cycle = _find_cycle(_import_graph())
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_finds_a_cycle():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
  assert _find_cycle(graph) == ['a', 'b', 'c', 'a']
  assert _find_cycle({'a': {'b'}, 'b': set()}) is None


def test_library_never_imports_configs():
  offenders = sorted(
      name for name, path in _modules().items()
      if any(n == 'configs' or n.startswith('configs.')
             for n in _imported_names(path)))
  assert not offenders, f'{offenders} import configs/'
