"""Multi-process training on JAX's own engine (`jax.distributed`), and a launcher for one machine.

Across nodes (SLURM, Open MPI, Kubernetes, Cloud TPU) every process runs
`python -m train.ppo --distributed=true ...` and JAX detects the cluster; on
anything else give `--coordinator_address=host:port --num_processes=P
--process_id=i` (or JAXSCHED_COORDINATOR / JAXSCHED_NUM_PROCESSES /
JAXSCHED_PROCESS_ID). The env batch is then sharded over every device of every
process; process 0 alone logs and writes summaries, all of them write their
shards of each checkpoint (orbax, multi-process).

On one machine, for tests and for several processes per host:

    python -m train.launch --processes 2 --devices-per-process 2 -- --preset cpu-quick --total_updates=4

starts P copies of `python -m train.ppo <options>` wired to a coordinator on
127.0.0.1, gives each D devices (CPU: `--xla_force_host_platform_device_count=D`;
`--platform gpu`: a slice of CUDA_VISIBLE_DEVICES), passes process 0's output
through and prefixes the others' with `[p<i>]`. If one process fails the others
are stopped; SIGTERM / SIGINT are passed on (each process checkpoints at its next
chunk boundary and exits, as a single-process run does). Exit status: the first
non-zero one of the processes, else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ENV_COORDINATOR, ENV_PROCESSES, ENV_PROCESS_ID = "JAXSCHED_COORDINATOR", "JAXSCHED_NUM_PROCESSES", "JAXSCHED_PROCESS_ID"
KILL_AFTER_S = 30.0  # how long the others get to stop after SIGTERM once one process has failed


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """`jax.distributed.initialize`, with explicit values, the JAXSCHED_* variables, or JAX's own
    cluster detection (None everywhere). Must run before JAX touches a device."""
    import jax

    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    if not num_processes and os.environ.get(ENV_PROCESSES):
        num_processes = int(os.environ[ENV_PROCESSES])
    if (process_id is None or process_id < 0) and os.environ.get(ENV_PROCESS_ID):
        process_id = int(os.environ[ENV_PROCESS_ID])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes or None,
                               process_id=None if process_id is None or process_id < 0 else process_id)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(i: int, processes: int, devices: int, platform: str, port: int, base: dict | None = None) -> dict:
    """The environment of process i: where the coordinator is and which devices are its own."""
    env = dict(os.environ if base is None else base)
    env.update({ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_PROCESSES: str(processes), ENV_PROCESS_ID: str(i)})
    if platform == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i * devices + d) for d in range(devices))
    return env


def _relay(stream, out, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        out.write(prefix + line)
        out.flush()
    stream.close()


def launch(processes: int, devices: int, train_args: list[str], platform: str = "cpu",
           module: str = "train.ppo") -> int:
    """Run P processes of `python -m <module> <train_args> --distributed=true`; their exit status."""
    port = free_port()
    procs, relays = [], []
    for i in range(processes):
        env = process_env(i, processes, devices, platform, port)
        cmd = [sys.executable, "-m", module, *train_args, "--distributed=true"]
        pipe = None if i == 0 else subprocess.PIPE
        p = subprocess.Popen(cmd, env=env, stdout=pipe, stderr=subprocess.STDOUT if i else None, text=True)
        procs.append(p)
        if i:
            t = threading.Thread(target=_relay, args=(p.stdout, sys.stderr, f"[p{i}] "), daemon=True)
            t.start()
            relays.append(t)

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    status, stopped_at = 0, None
    try:
        while [p.poll() for p in procs].count(None):  # poll every process: any() would stop at the first live one
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed and not status:
                status = failed[0]
                print(f"train.launch: a process exited with status {status}; stopping the others", file=sys.stderr)
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > KILL_AFTER_S:
                # SIGTERM asks train.ppo for a checkpoint-and-stop, which a process blocked in a collective with
                # a dead peer never gets to: after the grace period it is killed
                for p in procs:
                    if p.poll() is None:
                        print(f"train.launch: process {procs.index(p)} ignored SIGTERM for {KILL_AFTER_S:.0f} s; "
                              "killing it", file=sys.stderr)
                        p.kill()
                stopped_at = None
            time.sleep(0.2)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    for t in relays:
        t.join(timeout=5)
    return status or next((p.returncode for p in procs if p.returncode), 0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        cut = argv.index("--")
        ours, train_args = argv[:cut], argv[cut + 1:]
    else:
        ours, train_args = argv, []
    ap = argparse.ArgumentParser(prog="python -m train.launch",
                                 description="Start P processes of `python -m train.ppo` on this machine, "
                                             "connected by jax.distributed (options after `--` go to train.ppo).")
    ap.add_argument("--processes", type=int, default=2, help="how many processes (default 2)")
    ap.add_argument("--devices-per-process", type=int, default=1, help="devices each process owns (default 1)")
    ap.add_argument("--platform", choices=("cpu", "gpu"), default="cpu",
                    help="cpu: split the host into XLA CPU devices; gpu: give each process a slice of the GPUs")
    ap.add_argument("--module", default="train.ppo", help=argparse.SUPPRESS)
    a = ap.parse_args(ours)
    if a.processes < 1:
        ap.error(f"--processes: must be >= 1, got {a.processes}")
    if a.devices_per_process < 1:
        ap.error(f"--devices-per-process: must be >= 1, got {a.devices_per_process}")
    bad = [x for x in train_args if x.split("=")[0] in ("--distributed", "--coordinator_address", "--num_processes",
                                                          "--process_id")]
    if bad:
        ap.error(f"{bad[0].split('=')[0]}: the launcher sets it; leave it out of the train.ppo options")
    return launch(a.processes, a.devices_per_process, train_args, a.platform, a.module)


if __name__ == "__main__":
    raise SystemExit(main())
