"""Multi-process training on JAX's own engine (`jax.distributed`).

`initialize_distributed()` connects this process to the others: with no
arguments JAX detects the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU);
`--coordinator_address`, `--num_processes` and `--process_id` (or the
environment variables JAXSCHED_COORDINATOR, JAXSCHED_NUM_PROCESSES,
JAXSCHED_PROCESS_ID) set it by hand.
"""

from __future__ import annotations

import os

import jax


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    coordinator_address = coordinator_address or os.environ.get("JAXSCHED_COORDINATOR")
    if num_processes is None and os.environ.get("JAXSCHED_NUM_PROCESSES"):
        num_processes = int(os.environ["JAXSCHED_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAXSCHED_PROCESS_ID"):
        process_id = int(os.environ["JAXSCHED_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
