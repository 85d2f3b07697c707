"""A stage's slice of the recipe: the keys its config hash covers are the only keys it may read.

A stage declares `hashed` keys (dotted recipe keys: `deid`, `split.source_column`; `*` for the whole recipe but
`engine`) and `unhashed` keys, which it may read but which never change what it writes (`engine` and the worker
counts decide where and how fast work runs; `keys` is hashed through the key's id). Its config hash is the hashed
slice (`recipe_slice`) plus what the stage derives from it (file digests, code-set and model versions). While it
runs it sees the recipe through a `RecipeView`, which raises on any other key: a stage that starts reading a key
without hashing it fails every test that runs it, instead of silently re-using a stale output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from datakit.errors import StageError

if TYPE_CHECKING:
    from datakit.recipe import Recipe

WHOLE = "*"
ALWAYS_READABLE = ("engine",)  # where work runs: no stage's output depends on it
# the keys each of Recipe's own methods reads (a view lets a stage call a method that reads only declared keys)
METHOD_READS: dict[str, tuple[str, ...]] = {
    "required_columns": ("task", "text", "split.source_column"),
    "extra_columns": ("text", "split.source_column"),
    "canonical": (WHOLE,),
    "hash": (WHOLE,),
}

Tree = dict[str, Any]  # key -> True (the whole value) or a Tree of its readable sub-keys


def tree(keys: Iterable[str]) -> Tree:
    out: Tree = {}
    for key in keys:
        node = out
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is True:
                break
            node = node.setdefault(part, {})
        else:
            node[last] = True
    return out


def covers(allowed: Tree, key: str) -> bool:
    node: Any = allowed
    if node.get(WHOLE) is True:
        return True
    for part in key.split("."):
        if node is True:
            return True
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _drop(data: Any, key: str) -> None:
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(data, dict) or part not in data:
            return
        data = data[part]
    if isinstance(data, dict):
        data.pop(last, None)


def recipe_slice(recipe: Recipe, hashed: Iterable[str], unhashed: Iterable[str] = ()) -> dict[str, Any]:
    """The values of the hashed keys (dotted keys as written), without the unhashed sub-keys among them."""
    hashed = tuple(hashed)
    if WHOLE in hashed:
        out = recipe.canonical()
    else:
        out = {}
        for key in hashed:
            value: Any = recipe
            for part in key.split("."):
                value = getattr(value, part)
            out[key] = _dump(value)
    for key in unhashed:
        head, _, rest = key.partition(".")
        if WHOLE in hashed:
            _drop(out, key)
        elif rest and head in out:
            _drop(out[head], rest)
    return out


class RecipeView:
    """The recipe as one stage may read it: declared keys only (a sub-view where only some sub-keys are)."""

    def __init__(self, obj: Any, allowed: Tree, stage: str, path: str = "") -> None:
        self._obj, self._allowed, self._stage, self._path = obj, allowed, stage, path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = f"{self._path}{name}"
        if not self._path and name in METHOD_READS:
            missing = [k for k in METHOD_READS[name] if not covers(self._allowed, k)]
            if missing:
                raise self._undeclared(f"{key}() (which reads {', '.join(missing)})")
            return getattr(self._obj, name)
        node: Any = True if self._allowed.get(WHOLE) is True else self._allowed.get(name)
        if node is None:
            raise self._undeclared(key)
        value = getattr(self._obj, name)
        return value if node is True else RecipeView(value, node, self._stage, f"{key}.")

    def _undeclared(self, what: str) -> StageError:
        return StageError(
            f"stage '{self._stage}' read recipe key {what}, which its declaration does not name: add it to the "
            "stage's hashed keys (or unhashed, if it cannot change the output) in datakit/pipeline.py"
        )


def view(recipe: Recipe, stage: str, hashed: Iterable[str], unhashed: Iterable[str] = ()) -> Recipe:
    """`recipe` as `stage` may read it, typed as the recipe it stands for."""
    return cast("Recipe", RecipeView(recipe, tree([*hashed, *unhashed, *ALWAYS_READABLE]), stage))
