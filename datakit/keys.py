"""The secret key behind every keyed hash datakit writes (identifier HMACs, metadata fingerprints).

Resolution order: the `DATAKIT_SECRET` environment variable, then the file named by the recipe's
`keys.secret_file`, then — only when the recipe says `keys.demo = true` — a fixed, published demo key, which
every output that used it names as such. Without any of these, stages that need a key refuse to run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from datakit.errors import RecipeError
from datakit.recipe import Keys, Recipe

if TYPE_CHECKING:
    import polars as pl

DEMO_KEY = b"datakit-demo-key-not-secret-do-not-use-for-real-data"
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class SecretKey:
    key: bytes
    origin: str  # "env:DATAKIT_SECRET", "file:<path>", "demo"

    @property
    def is_demo(self) -> bool:
        return self.origin == "demo"

    @property
    def key_id(self) -> str:
        """A public identifier of the key (so two runs can be seen to share one) that reveals nothing of it."""
        return hmac.new(self.key, b"datakit-key-id", hashlib.sha256).hexdigest()[:12]

    def hmac_hex(self, values: pl.Series, purpose: str, length: int = 32) -> pl.Series:
        """Keyed HMAC-SHA256 of each value, domain-separated by `purpose`; nulls stay null."""
        import polars as pl

        prefix = f"{purpose}\x1f".encode()
        out = [
            None if v is None else hmac.new(self.key, prefix + v.encode(), hashlib.sha256).hexdigest()[:length]
            for v in values.cast(pl.String).to_list()
        ]
        return pl.Series(values.name, out, dtype=pl.String)


def load_key(recipe: Recipe) -> SecretKey:
    """The recipe's key; read once per process for the same environment value, key settings and source kind."""
    return _load(os.environ.get("DATAKIT_SECRET") or None, recipe.keys, recipe.source.kind)


@lru_cache(maxsize=8)
def _load(env: str | None, keys: Keys, source_kind: str) -> SecretKey:
    if env:
        return _checked(env.encode(), "env:DATAKIT_SECRET")
    if keys.secret_file:
        path = Path(keys.secret_file).expanduser()
        if not path.is_file():
            raise RecipeError(f"keys.secret_file '{path}' does not exist")
        return _checked(path.read_bytes().strip(), f"file:{path}")
    if keys.demo:
        if source_kind != "sample" and not keys.allow_demo_for_real_data:
            raise RecipeError(
                f"the published demo key (keys.demo = true) keys only the embedded sample, not a {source_kind} source: "
                "ids keyed with a public key are re-identified by trying every value. Set DATAKIT_SECRET (16+ "
                "bytes) or keys.secret_file; for public data such as the IU reports pass --allow-demo-key"
            )
        return SecretKey(DEMO_KEY, "demo")
    raise RecipeError(
        "no secret key: set DATAKIT_SECRET, or name a key file in the recipe (keys.secret_file), "
        "or set keys.demo = true for sample data only"
    )


def _checked(key: bytes, origin: str) -> SecretKey:
    if len(key) < MIN_KEY_BYTES:
        raise RecipeError(f"the secret key from {origin.split(':')[0]} is shorter than {MIN_KEY_BYTES} bytes")
    return SecretKey(key, origin)
