"""The Python loop around the jitted PPO chunks: K seeds at once, logging, evaluation, checkpoints.

`run(config, run_dir)` trains `config.num_seeds` independent seeds in one
compiled program: the runner state of every seed is stacked on a leading axis
and each chunk is `vmap(update_chunk)`, up to `updates_per_chunk` updates per
call (Stoix style: jitted chunks inside a Python loop). The count is an
argument of the one compiled program, so the short chunks before evaluations,
checkpoints and stop points cost no recompilation. Between chunks the loop
logs, evaluates and checkpoints, each seed into its own run directory:

* one seed: `run_dir/` holds the orbax steps, `history.jsonl`, `summary.json`,
  `run.json`, the learning curve and wandb's files;
* K seeds: `run_dir/run.json` describes the group and `run_dir/seed<s>/` is
  each seed's directory, exactly what a one-seed run with `--seed=s` writes
  (it resumes, evaluates and analyses on its own).

Schedules are keyed on the update count, never on chunks or wall time:
evaluation every `eval_every` updates and at the last one, checkpoints at
evaluations, every `checkpoint_every` updates, at `stop_after` and when the
process is asked to stop (SIGTERM / SIGINT: checkpoint at the next chunk
boundary, exit 0, print the resume command). So a run that is interrupted
and resumed, any number of times, evaluates and checkpoints at the same
updates as an uninterrupted one and ends with the same parameters.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from train.checkpoint import Checkpointer, CheckpointError, LayoutError, restore_runner, set_aside
from train.checkpoint import steps as checkpoint_steps
from train.config import PPOConfig
from train.devices import data_sharding, runner_shardings
from train.learner import RunnerState, hyper_from, make_train
from train.policy_eval import PolicyEvaluator
from train.tracking import Tracker, jsonable, write_run_file


class StopRequest:
    """SIGTERM / SIGINT while a run trains: stop at the next chunk boundary, checkpointed.

    A context manager: the handlers are installed on entry and the previous ones restored on exit,
    so a caller's own handling (a test runner, a notebook) is left as it was."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.signal is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        print(f"\n{self.signal}: checkpointing at the next chunk boundary, then exiting", file=sys.stderr, flush=True)

    def __enter__(self):
        try:
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        except ValueError:  # not the main thread: no handlers
            self._previous = {}
        return self

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            signal.signal(s, h)
        return False


def seed_dirs(config: PPOConfig, run_dir: str | None) -> list[str | None]:
    if run_dir is None:
        return [None] * config.num_seeds
    if config.num_seeds == 1:
        return [run_dir]
    return [os.path.join(run_dir, f"seed{s}") for s in config.seeds]


def seed_config(config: PPOConfig, seed: int, run_dir: str | None) -> PPOConfig:
    """What seed `seed` of a K-seed run is on its own: a one-seed run (its dir resumes alone)."""
    if config.num_seeds == 1:
        return config.replace(resume=run_dir if config.resume else None)
    group = config.wandb_group or (os.path.basename(os.path.dirname(run_dir)) if run_dir else None)
    name = f"{config.wandb_name}-seed{seed}" if config.wandb_name else (f"{group}-seed{seed}" if group else None)
    return config.replace(seed=seed, num_seeds=1, wandb_name=name, wandb_group=group,
                          resume=run_dir if config.resume else None)


def common_steps(dirs: list[str]) -> list[int]:
    """Checkpoint steps every seed directory has, oldest first."""
    both = set.intersection(*[set(checkpoint_steps(d)) for d in dirs])
    if not both:
        raise CheckpointError(f"the seed directories share no checkpoint step ({', '.join(dirs)})")
    return sorted(both)


def restore_seeds(dirs: list[str], target) -> tuple[int, list]:
    """(step, runner state per seed) at the newest step every seed can restore; an unreadable step
    falls back to an older common one, saying so on stderr."""
    errors, tried = [], []
    for step in reversed(common_steps(dirs)):
        try:
            parts = [restore_runner(d, target, step)[1] for d in dirs]
        except LayoutError:
            raise
        except CheckpointError as e:
            errors.append(str(e))
            tried.append(step)
            continue
        if errors:
            moved = [set_aside(d, s) for s in tried for d in dirs if os.path.isdir(os.path.join(d, str(s)))]
            print(f"warning: resume: fell back to step {step}; newer steps unreadable ({'; '.join(errors)}); "
                  f"set aside as {', '.join(moved)}", file=sys.stderr)
        return step, parts
    raise CheckpointError("resume: no step is readable in every seed directory (" + "; ".join(errors) + ")")


def over_seeds(fn, mode: str):
    """`fn` over the leading seed axis: batched (`vmap`: the fastest) or one seed after another
    inside the same program (`map`: each seed runs exactly the one-seed computation, so seed i's
    numbers are bit-identical to a one-seed run's)."""
    def one(tree):  # a single seed: the plain program, no batching
        out = fn(jax.tree.map(lambda x: x[0], tree))
        return jax.tree.map(lambda x: x[None], out)

    def batched(tree):
        if isinstance(tree, RunnerState):
            # every seed holds the same hyperparameters (run() and the bench set them from one config):
            # passed unbatched, the learner's lax.cond on the SRR weights stays a branch (skipping the SRR
            # terms at weight 0) instead of becoming a select that computes both sides for every seed
            hyper = jax.tree.map(lambda x: x[0], tree.hyper)
            return jax.vmap(lambda r: fn(r._replace(hyper=hyper)))(tree._replace(hyper=None))
        return jax.vmap(fn)(tree)

    if mode == "vmap":
        return lambda tree: one(tree) if jax.tree.leaves(tree)[0].shape[0] == 1 else batched(tree)
    return lambda tree: one(tree) if jax.tree.leaves(tree)[0].shape[0] == 1 else jax.lax.map(fn, tree)


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def next_stop(done: int, stop: int, config: PPOConfig) -> int:
    """The next update at which the loop must pause (chunk end, evaluation, checkpoint, stop)."""
    n = min(config.updates_per_chunk, stop - done)
    for every in (config.eval_every, config.checkpoint_every):
        if every:
            n = min(n, every - done % every)
    return done + n


def run(config: PPOConfig, run_dir: str | None = None, explicit: dict | None = None,
        stop_request: StopRequest | None = None) -> dict:
    """Train (or continue, when `config.resume` is set) and return the summary.

    One seed: the summary dict (with `params`). K seeds: {"run_dir", "seeds": [summary per seed],
    "params": stacked parameters}.
    """
    config.validate()
    explicit = explicit or {}
    k = config.num_seeds
    dirs = seed_dirs(config, run_dir)
    process0 = jax.process_index() == 0
    resuming = bool(config.resume)
    if resuming:
        newest = common_steps(dirs)[-1]
        if newest >= config.total_updates:
            return _already_finished(config, run_dir, dirs, newest)
    elif run_dir and process0:
        os.makedirs(run_dir, exist_ok=True)
        write_run_file(run_dir, config=config.to_dict(), seeds=list(config.seeds))
        if k > 1:  # each seed's directory describes itself too (it resumes and evaluates alone)
            for s, d in zip(config.seeds, dirs, strict=True):
                os.makedirs(d, exist_ok=True)
                write_run_file(d, config=seed_config(config, s, d).to_dict(), seeds=[s], group=run_dir)
    trackers = None
    if not resuming:  # before the program is built: a sweep agent may set options through wandb.config
        trackers = [Tracker(seed_config(config, s, d), d, explicit, active=process0)
                    for s, d in zip(config.seeds, dirs, strict=True)]
        if k == 1:
            config = trackers[0].config
    sharding = data_sharding(config)
    trainer = make_train(config, sharding)
    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in config.seeds])  # host data: same on every process
    init = jax.vmap(trainer.init)
    shardings = runner_shardings(jax.eval_shape(init, keys), sharding, seeds_axis=True)
    runner = jax.jit(init, out_shardings=shardings)(keys)
    done = 0
    if resuming:
        one = jax.eval_shape(lambda r: unstack(r, 0), runner)
        if shardings is not None:
            one = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=_drop_seed_axis(s)),
                               one, shardings)
        done, parts = restore_seeds(dirs, one)
        runner = jax.device_put(stack(parts), shardings) if shardings is not None else stack(parts)
        # options given now win for the hyperparameters that are data (lr, SRR weights, entropy bonus)
        runner = runner._replace(hyper=jax.tree.map(lambda v: jnp.full((k,), v), hyper_from(config)))
        print(f"resumed {run_dir} at update {done}" + (f" ({k} seeds)" if k > 1 else ""), file=sys.stderr)
        trackers = [Tracker(seed_config(config, s, d), d, explicit, active=process0, resume_from=done)
                    for s, d in zip(config.seeds, dirs, strict=True)]
    ckpts = [Checkpointer(d, config.best_metric, config.keep_best) if d else None for d in dirs]
    evaluator = PolicyEvaluator(trainer.net, config.eval_servers, config.eval_seeds, config.eval_env())
    # one program for every chunk length up to updates_per_chunk (the count is an argument, not a shape)
    length = config.updates_per_chunk
    traces = []

    def chunk_program(runner, n):
        # traced once per run whatever the chunk lengths; a second trace means the runner changed between
        # chunks and the program recompiles (chex's assert_max_traces keys on the source, so it would count
        # the traces of every run in a process: a per-run counter instead)
        traces.append(1)
        if len(traces) == 2:
            print("warning: train.loop: the chunk program was traced again (the runner state changed shape, dtype or "
                  "sharding between chunks); each new trace recompiles", file=sys.stderr)
        return over_seeds(lambda r: trainer.update_chunk(r, n, length), config.seed_batching)(runner)

    compiled_chunk = jax.jit(chunk_program, donate_argnums=0)

    def chunk(runner, n):
        runner, last, stacked = compiled_chunk(runner, np.int32(n))
        return runner, last, jax.tree.map(lambda x: x[:, :n], stacked)  # [seeds, n] real rows

    stop = config.total_updates if not config.stop_after else min(config.total_updates, config.stop_after)
    bar = _progress(config, done) if process0 else None
    eval_metrics: list[dict] = [{} for _ in range(k)]
    lasts: list[dict] = [{} for _ in range(k)]
    t_start = time.perf_counter()
    stopped_by = None
    while done < stop:
        target = next_stop(done, stop, config)
        n = target - done
        t0 = time.perf_counter()
        runner, _, stacked = chunk(runner, n)
        stacked = jax.device_get(stacked)
        dt = time.perf_counter() - t0
        done = target
        final = done >= config.total_updates
        stopped_by = stop_request.signal if stop_request is not None else None
        evaluate = final or (config.eval_every and done % config.eval_every == 0)
        save = evaluate or stopped_by or done >= stop or (config.checkpoint_every and done % config.checkpoint_every == 0)
        new_eval = evaluator.seeds_stacked(host_local(runner.train_state.params)) if evaluate else [{} for _ in range(k)]
        for i in range(k):
            last = _chunk_metrics(jax.tree.map(lambda x, i=i: x[i], stacked))
            last["perf/decisions_per_s"] = k * n * config.decisions_per_update / dt
            last["perf/decisions"] = done * config.decisions_per_update
            last["perf/wall_s"] = time.perf_counter() - t_start
            if evaluate:
                eval_metrics[i] = new_eval[i]
                last.update(new_eval[i])
            lasts[i] = last
            # the history row first, then the checkpoint: a kill between the two leaves a row that the
            # resume (from the previous step) drops and recomputes; the other order would lose the row
            trackers[i].log(last, step=done)
            if save and ckpts[i]:
                one = unstack(runner, i)
                ckpts[i].save(done, one, one.train_state.params, seed_config(config, config.seeds[i], dirs[i]).replace(
                    resume=None).to_dict(), new_eval[i])
        if bar is not None:
            bar.show(done, n, lasts, eval_metrics)
        if stopped_by:
            break
    if bar is not None:
        bar.close()
    for c in ckpts:
        if c:
            c.close()
    summaries = []
    for i, s in enumerate(config.seeds):
        summary = {"run_dir": dirs[i], "updates": done, "finished": done >= config.total_updates,
                   "config": seed_config(config, s, dirs[i]).replace(resume=None).to_dict(),
                   "final": {kk: jsonable(v) for kk, v in lasts[i].items()},
                   "eval": eval_metrics[i]}
        if process0:
            trackers[i].write_summary(summary)
            _learning_curve(trackers[i])
        trackers[i].finish()
        summaries.append(summary)
    if process0:
        if any(eval_metrics):
            print(format_eval(eval_metrics, config.eval_servers, config.seeds))
        if stopped_by or (done < config.total_updates):
            why = stopped_by or f"stop_after={config.stop_after}"
            print(f"stopped at update {done} of {config.total_updates} ({why}); continue with: "
                  f"python -m train.ppo --resume {run_dir}", file=sys.stderr)
        elif run_dir:
            target = run_dir if k == 1 else os.path.join(run_dir, f"seed{config.seeds[0]}")
            print(f"checkpoints: {run_dir}  (evaluate: python -m train.evaluate --checkpoint {target})")
    params = host_local(runner.train_state.params)
    if k == 1:
        return {**summaries[0], "params": unstack(params, 0)}
    return {"run_dir": run_dir, "updates": done, "seeds": summaries, "params": params}


def host_local(tree):
    """Replicated global arrays as this process's NumPy copies (several processes: the evaluator's
    programs run on this process's devices alone); one process: unchanged."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(np.asarray, tree)


def _drop_seed_axis(sharding):
    from jax.sharding import NamedSharding, PartitionSpec

    spec = tuple(sharding.spec)[1:] if len(sharding.spec) else ()
    return NamedSharding(sharding.mesh, PartitionSpec(*spec))


def _already_finished(config: PPOConfig, run_dir, dirs, done: int) -> dict:
    import json

    print(f"{run_dir}: already finished at update {done} of {config.total_updates}; nothing to do "
          "(give a larger --total_updates to extend it)", file=sys.stderr)
    summaries = []
    for d in dirs:
        path = os.path.join(d, "summary.json")
        summaries.append(json.load(open(path)) if os.path.exists(path) else {"run_dir": d, "updates": done})
    if len(dirs) == 1:
        return summaries[0]
    return {"run_dir": run_dir, "updates": done, "seeds": summaries}


def _chunk_metrics(stacked: dict) -> dict:
    """One chunk's metrics: the last update's, with the training means taken over every episode that
    ended in the chunk (NaN when none did)."""
    last = {kk: float(np.asarray(v)[-1]) for kk, v in stacked.items()}
    eps = np.asarray(stacked["train/episodes"], np.float64)
    for kk in ("train/mean_response", "train/episode_return"):
        vals = np.nan_to_num(np.asarray(stacked[kk], np.float64))
        last[kk] = float(np.sum(vals * eps) / eps.sum()) if eps.sum() > 0 else float("nan")
    last["train/episodes"] = float(eps.sum())
    return last


class _Progress:
    """A tqdm bar (or one line per chunk) that says what each number is."""

    def __init__(self, config: PPOConfig, done: int):
        self.config = config
        self.metric = config.best_metric
        self.bar = None
        if config.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=config.total_updates, initial=done, unit="update", dynamic_ncols=True, file=sys.stderr)

    def _eval_text(self, eval_metrics) -> str:
        vals = [e[self.metric] for e in eval_metrics if self.metric in e]
        if not vals:
            return ""
        what = _describe(self.metric)
        return f"{what} {np.mean(vals):.3f}" + (f" (mean of {len(vals)} seeds)" if len(vals) > 1 else "")

    def show(self, done, n, lasts, eval_metrics):
        resp = np.nanmean([x["train/mean_response"] for x in lasts]) if any(
            np.isfinite(x["train/mean_response"]) for x in lasts) else float("nan")
        resp_text = f"{resp:.1f} s" if np.isfinite(resp) else "-"
        ev = self._eval_text(eval_metrics)
        dps = lasts[0]["perf/decisions_per_s"]
        if self.bar is None:
            print(f"update {done}/{self.config.total_updates}  decisions/s {dps:,.0f}  train mean response {resp_text}  "
                  f"entropy {np.mean([x['loss/entropy'] for x in lasts]):.3f}" + (f"  {ev}" if ev else "")
                  + f"  ({lasts[0]['perf/wall_s']:.0f} s)", file=sys.stderr, flush=True)
        else:
            post = {"dec/s": f"{dps:,.0f}", "train resp": resp_text}
            if ev:
                post["eval"] = ev
            self.bar.set_postfix(post)
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _progress(config, done):
    return _Progress(config, done)


def _describe(metric: str) -> str:
    """'eval/16/norm_mean_response' -> 'mean response / round-robin's at N=16'."""
    parts = metric.split("/")
    if len(parts) == 3 and parts[0] == "eval":
        name = parts[2]
        for prefix, ref in (("norm_", "round-robin's"), ("vs_eft_", "EFT's")):
            if name.startswith(prefix):
                return f"{name[len(prefix):].replace('_', ' ')} / {ref} at N={parts[1]}"
        return f"{name.replace('_', ' ')} at N={parts[1]}"
    return metric


def format_eval(eval_metrics: list[dict], sizes, seeds) -> str:
    """The final evaluation as a table (one block per seed when there are several)."""
    lines = []
    for metrics, seed in zip(eval_metrics, seeds, strict=True):
        if not metrics:
            continue
        if len(seeds) > 1:
            lines.append(f"seed {seed}:")
        lines.append(f"{'N':>4}{'mean resp (s)':>15}{'P95 resp (s)':>14}{'makespan (s)':>14}"
                     f"{'mean resp / RR':>16}{'mean resp / EFT':>17}")
        for n in sizes:
            lines.append(f"{n:>4}{metrics[f'eval/{n}/mean_response']:>15.1f}{metrics[f'eval/{n}/p95_response']:>14.1f}"
                         f"{metrics[f'eval/{n}/makespan']:>14.1f}{metrics[f'eval/{n}/norm_mean_response']:>16.3f}"
                         f"{metrics[f'eval/{n}/vs_eft_mean_response']:>17.3f}")
    if lines:
        lines.append("(ratios: mean over the evaluation episodes of the per-episode ratio, same episodes for every policy)")
    return "\n".join(lines)


def _learning_curve(tracker: Tracker) -> None:
    """`curve.png` in the run directory: training and evaluation mean response against updates."""
    if not tracker.run_dir:
        return
    rows = tracker.history()
    if not rows:
        return
    from train.plots import plot_learning_curve

    plot_learning_curve(rows, os.path.join(tracker.run_dir, "curve.png"), tracker.config.best_metric)
