"""One local Ray for the engine tests (`ray.init(num_cpus=2)`, ~8 s to start), started by the first test that asks
for it; `test_ray_two_nodes.py`, which runs last, replaces it with a two-node cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import coding_recipe, run_recipe

N = 200  # sample cases of the runs the engine tests compare


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local engine's run of the flagship recipe on `N` sample cases, which the Ray runs are compared with."""
    out = tmp_path_factory.mktemp("local_engine")
    run_recipe(coding_recipe(f"source.n={N}"), out)
    return out
