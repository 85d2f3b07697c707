"""The `ray` engine on a two-node Ray cluster on one machine (`ray.cluster_utils.Cluster`): de-identification
actors spread over both nodes write exactly what the local engine writes (nothing relies on a shared process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from datakit.rundir import RunDir
from tests.conftest import coding_recipe, run_recipe
from tests.engine.conftest import N

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[object]:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_actors_on_two_nodes_write_what_the_local_engine_writes(
    local_run: Path, two_nodes: object, tmp_path: Path
) -> None:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    # two actors of one CPU each on two nodes of one CPU each: one actor runs on each node
    assert len(nodes) == 2 and all(n["Resources"].get("CPU") == 1 for n in nodes)
    local, on_ray = local_run, tmp_path / "ray"
    overrides = (f"source.n={N}", "engine.kind=ray", "engine.batch_size=40", "engine.concurrency=2")
    run_recipe(coding_recipe(*overrides), on_ray, only=["pull", "deid"])
    deid_local = pl.read_parquet(RunDir(local).stage_dir("deid") / "part-*.parquet")
    deid_ray = pl.read_parquet(RunDir(on_ray).stage_dir("deid") / "part-*.parquet")
    assert deid_ray.equals(deid_local)
