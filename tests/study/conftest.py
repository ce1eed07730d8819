"""One Ray cluster for every Ray test of the session: Ray's own multi-node harness, three nodes, loopback only.

Starting Ray costs ten seconds or more, so the fault, equivalence and cluster tests share one cluster
of a head and two worker nodes of one CPU each. A test may remove a worker node: later tests must not
count on all three.
"""

from __future__ import annotations

import pytest

#: the harness's nodes notice a dead peer within about 2 s (Ray's default is tens of seconds)
FAST_HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                      "health_check_failure_threshold": 4}
OBJECT_STORE_BYTES = 80 * 2**20


@pytest.fixture(scope="session")
def ray_cluster():
    """(the harness, its two worker nodes), with this process connected as a driver."""
    from dlcompat.study.executors.ray import local_cluster_token, quiet_ray

    quiet_ray(local=True)  # before Ray is imported: quiet, loopback only
    import ray
    from ray.cluster_utils import Cluster

    local_cluster_token()  # a machine where Ray never ran has none, and node by node nothing makes it

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "include_dashboard": False,
        "_system_config": FAST_HEALTH_CHECKS})
    try:
        workers = [cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()
