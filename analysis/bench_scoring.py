"""`python -m analysis.bench_scoring`: the study's test scoring, one program padded to the largest N
against one program per N, on the same stacked parameters (untrained networks of the cpu preset's
architecture) and episodes. Prints each way's time (the faster of `--repeats`, compilation excluded)
and the ratio.

    python -m analysis.bench_scoring                                 # K=2 seeds, 4 episodes, N=16..128
    python -m analysis.bench_scoring --seeds 4 --episodes 8 --sizes 16,48
    python -m analysis.bench_scoring --per-n-only --sizes 16,48,128       # the study's way alone (faster)
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m analysis.bench_scoring", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--sizes", default="16,32,48,64,128")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--per-n-only", action="store_true",
                    help="time only one program per N (the study's way), e.g. to compare two commits")
    a = ap.parse_args(argv)
    sizes = tuple(int(n) for n in a.sizes.split(","))
    from envs import make_params, reset
    from jaxsched.evaluation import TEST, eval_config
    from jaxsched.policy import SchedulerNet
    from train.config import parse_args
    from train.policy_eval import PolicyEvaluator

    cfg, _ = parse_args(["--preset=cpu"])  # the study's cpu preset trains this architecture in this world
    net, base = SchedulerNet(cfg.policy()), cfg.eval_env(TEST.workload_seed)
    obs, _ = reset(jax.random.PRNGKey(0), make_params(eval_config(sizes[0], base)))
    params = [net.init(jax.random.PRNGKey(s), obs) for s in range(a.seeds)]
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *params)
    padded = PolicyEvaluator(net, sizes, a.episodes, base, first_episode=TEST.first_episode)
    alone = [PolicyEvaluator(net, (n,), a.episodes, base, first_episode=TEST.first_episode) for n in sizes]

    def run_padded():
        return jax.block_until_ready(padded._net_seeds(stacked))

    def run_alone():
        return [jax.block_until_ready(ev._net_seeds(stacked)) for ev in alone]

    ways = (("per_n", run_alone),) if a.per_n_only else (("padded", run_padded), ("per_n", run_alone))
    for _, fn in ways:  # compile
        fn()
    best = {"padded": np.inf, "per_n": np.inf}
    for _ in range(a.repeats):  # interleaved, so both see the same machine
        for name, fn in ways:
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    if a.per_n_only:
        out = {"sizes": list(sizes), "seeds": a.seeds, "episodes": a.episodes, "per_n_s": best["per_n"]}
        print(f"N={','.join(map(str, sizes))}, {a.seeds} seeds x {a.episodes} episodes: one program per N "
              f"{best['per_n']:.2f} s")
        return out
    out = {"sizes": list(sizes), "seeds": a.seeds, "episodes": a.episodes, "padded_s": best["padded"],
           "per_n_s": best["per_n"], "ratio": best["padded"] / best["per_n"]}
    print(f"N={','.join(map(str, sizes))}, {a.seeds} seeds x {a.episodes} episodes: one padded program "
          f"{best['padded']:.1f} s, one program per N {best['per_n']:.1f} s: {out['ratio']:.2f}x")
    return out


if __name__ == "__main__":
    main()
