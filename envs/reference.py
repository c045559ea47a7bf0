"""Reference simulator: a plain-Python, event-driven implementation of docs/environment.md.

It shares only data with the JAX env (`Instance`, `WorkflowSpec`, the catalog, the
feature name tables), never step logic, so differential tests compare two
independent code paths. Everything is float64 Python arithmetic; NumPy only
assembles the observation arrays. Clarity beats speed here.
"""

from __future__ import annotations

import heapq
import operator
from dataclasses import dataclass, field

import numpy as np

from envs import features as F
from envs.instance import Instance
from envs.types import DagView, Observation

__all__ = ["InvalidActionError", "RefObservation", "ReferenceSim", "run_episode"]


class InvalidActionError(ValueError):
    """An action outside the action mask (the JAX env would remap it; the reference refuses)."""


@dataclass
class RefObservation:
    task: np.ndarray  # float32 [len(TASK_FEATURES) + n_models]
    servers: np.ndarray  # float32 [max_servers, len(SERVER_FEATURES) + n_gpu_types]
    nodes: np.ndarray  # float32 [max_tasks, len(NODE_FEATURES) + n_models]
    senders: np.ndarray  # int32 [max_edges]: edge k runs senders[k] -> receivers[k], (parent, child) order
    receivers: np.ndarray  # int32 [max_edges]; padding edges are (max_tasks, max_tasks)
    n_edges: int
    node_mask: np.ndarray  # bool [max_tasks]
    current: int  # task index in its workflow
    action_mask: np.ndarray  # bool [max_servers]
    globals: np.ndarray  # float32 [len(GLOBAL_FEATURES)]

    def as_observation(self):
        """The same arrays as the JAX env's `Observation` pytree (NumPy leaves), so jittable
        policies can act on the reference simulator."""
        dag = DagView(nodes=self.nodes, senders=self.senders, receivers=self.receivers,
                      n_edges=np.int32(self.n_edges), node_mask=self.node_mask, current=np.int32(self.current))
        return Observation(task=self.task, servers=self.servers, dag=dag, action_mask=self.action_mask,
                           globals=self.globals)

    @property
    def adjacency(self) -> np.ndarray:
        """bool [max_tasks, max_tasks], [p, c] when p is a parent of c."""
        t = self.nodes.shape[0]
        a = np.zeros((t + 1, t + 1), bool)
        a[self.senders, self.receivers] = True
        return a[:t, :t]


@dataclass
class WindowDemand:
    """What `ReferenceSim.window_demand` counts (see there)."""

    model: dict[int, int] = field(default_factory=dict)  # pending tasks per model
    key: dict[tuple[str, int], int] = field(default_factory=dict)  # pending tasks per (app, model)
    app_prefix: dict[str, float] = field(default_factory=dict)  # prefix tokens of each open app
    model_replicas: dict[int, int] = field(default_factory=dict)  # servers holding the model
    key_replicas: dict[tuple[str, int], int] = field(default_factory=dict)  # servers caching the key

    def model_share(self, m: int) -> float:
        return min(1.0, self.model.get(m, 0) / max(self.model_replicas.get(m, 1), 1))

    def key_share(self, key: tuple[str, int]) -> float:
        return min(1.0, self.key.get(key, 0) / max(self.key_replicas.get(key, 1), 1))


@dataclass
class _Server:
    gpu: int
    resident: dict[int, int]  # model -> last-use stamp (decision number; -1 for the initial model)
    cache: dict[tuple[str, int], int] = field(default_factory=dict)  # (app, model) -> last-use stamp
    free_at: float = 0.0
    finishes: list[float] = field(default_factory=list)  # finish time of every task placed here
    busy: float = 0.0
    # Every task placed here, in FCFS order: (true start, expected duration, (workflow, task)).
    placed: list[tuple[float, float, tuple[int, int]]] = field(default_factory=list)


@dataclass
class _Workflow:
    arrival: float
    admit: float | None = None  # None until the workflow gets a window slot
    finish: list[float | None] = field(default_factory=list)
    server: list[int | None] = field(default_factory=list)
    n_assigned: int = 0
    done_step: int | None = None


class ReferenceSim:
    """Event-driven simulator of one `Instance`; see docs/environment.md for every rule."""

    def __init__(self, inst: Instance, max_servers: int | None = None, max_tasks: int = 16,
                 max_edges: int | None = None):
        self.inst = inst
        self.n_servers = inst.n_servers
        self.max_servers = self.n_servers if max_servers is None else int(max_servers)
        self.max_tasks = int(max_tasks)
        if self.max_servers < self.n_servers:
            raise ValueError(f"max_servers={self.max_servers} < n_servers={self.n_servers}")
        if len(inst.arrivals) != len(inst.workflows):
            raise ValueError("one arrival per workflow is required")
        if len(inst.initial_models) != self.n_servers:
            raise ValueError("one initial model per server is required")
        for i, w in enumerate(inst.workflows):
            if not 1 <= w.n_tasks <= self.max_tasks:
                raise ValueError(f"workflow {i} has {w.n_tasks} tasks; need 1..max_tasks={self.max_tasks}")
            for c, ps in enumerate(w.parents):
                if any(not 0 <= p < c for p in ps):
                    raise ValueError(f"workflow {i} task {c}: parents must precede the task ({ps})")
        most = max((sum(len(ps) for ps in w.parents) for w in inst.workflows), default=0)
        # edge slots of the DAG view: pass the JAX env's (`params.bank.edges.shape[1]`) to compare arrays
        self.max_edges = int(max_edges) if max_edges is not None else max(8, -(-most // 8) * 8)
        if self.max_edges < most:
            raise ValueError(f"max_edges={self.max_edges} is below a workflow's {most} edges")
        self.n_models = len(inst.models)
        self.n_gpus = len(inst.gpus)
        self.cap = [inst.mem_headroom * g.mem_gb for g in inst.gpus]  # usable memory per GPU type
        # Static per-workflow structure: children, depth, expected remaining critical path.
        pmax = max(g.prefill_tps_8b for g in inst.gpus)
        dmax = max(g.decode_tps_8b for g in inst.gpus)
        self._children: list[list[list[int]]] = []
        self._depth: list[list[int]] = []
        self._path: list[list[float]] = []
        self._lower: list[float] = []  # slowdown's denominator: critical path with true lengths, from arrival
        for w in inst.workflows:
            n = w.n_tasks
            children: list[list[int]] = [[] for _ in range(n)]
            depth = [0] * n
            for c in range(n):
                for p in w.parents[c]:
                    children[p].append(c)
                depth[c] = 1 + max(depth[p] for p in w.parents[c]) if w.parents[c] else 0
            def critical_path(outputs, w=w, n=n, children=children):
                rem = [0.0] * n
                for c in reversed(range(n)):
                    pb = inst.models[w.models[c]].params_b
                    dur = (w.tool_delay[c] + w.input_tokens[c] / (pmax * 8.0 / pb)
                           + outputs[c] / (dmax * 8.0 / pb) + inst.task_overhead_s)
                    rem[c] = dur + max((rem[k] for k in children[c]), default=0.0)
                return rem

            self._children.append(children)
            self._depth.append(depth)
            self._path.append(critical_path(w.expected_output_tokens))
            self._lower.append(max(critical_path(w.output_tokens)))
        self.reset()

    # ------------------------------------------------------------------ rates

    def fits(self, model: int, gpu: int) -> bool:
        return self.inst.models[model].mem_gb <= self.cap[gpu]

    def prefill_rate(self, model: int, gpu: int) -> float:
        return self.inst.gpus[gpu].prefill_tps_8b * 8.0 / self.inst.models[model].params_b

    def decode_rate(self, model: int, gpu: int) -> float:
        return self.inst.gpus[gpu].decode_tps_8b * 8.0 / self.inst.models[model].params_b

    def load_time(self, model: int, gpu: int) -> float:
        return self.inst.models[model].mem_gb / self.inst.gpus[gpu].load_gbps

    # ------------------------------------------------------------------ episode

    def reset(self) -> RefObservation:
        inst = self.inst
        self.servers = [_Server(gpu=g, resident={m: -1})
                        for g, m in zip(inst.server_gpus, inst.initial_models, strict=True)]
        self.wfs = [_Workflow(arrival=float(a), finish=[None] * w.n_tasks, server=[None] * w.n_tasks)
                    for a, w in zip(inst.arrivals, inst.workflows, strict=True)]
        # The first `window` workflows get slots at reset, admitted at their arrival.
        self._next_admit = min(inst.window, len(self.wfs))
        for w in self.wfs[: self._next_admit]:
            w.admit = w.arrival
        self.decisions: list[dict] = []
        self.responses: dict[int, float] = {}
        self.rewards: list[float] = []
        self._integrated_to = 0.0  # the reward integral has been paid over [0, _integrated_to]
        self._done = False
        self._last_time = 0.0
        self._pending = self._earliest()
        return self.observe()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def current(self) -> tuple[int, int] | None:
        """(workflow number, task index) of the pending decision; None once the episode is done."""
        return None if self._pending is None else (self._pending[1], self._pending[2])

    @property
    def clock(self) -> float:
        """Ready time of the pending decision (the last decision's time once done)."""
        return self._last_time if self._pending is None else self._pending[0]

    def ready_time(self, wi: int, c: int) -> float:
        w, spec = self.wfs[wi], self.inst.workflows[wi]
        return max([w.admit] + [w.finish[p] for p in spec.parents[c]]) + spec.tool_delay[c]

    def ready_candidates(self) -> list[tuple[float, int, int]]:
        """Every available task (admitted workflow, unassigned, all parents assigned) in decision order."""
        heap: list[tuple[float, int, int]] = []
        for wi, w in enumerate(self.wfs):
            if w.admit is None or w.done_step is not None:
                continue
            spec = self.inst.workflows[wi]
            for c in range(spec.n_tasks):
                if w.finish[c] is None and all(w.finish[p] is not None for p in spec.parents[c]):
                    heapq.heappush(heap, (self.ready_time(wi, c), wi, c))
        return [heapq.heappop(heap) for _ in range(len(heap))]

    def _earliest(self) -> tuple[float, int, int] | None:
        if all(w.done_step is not None for w in self.wfs):
            return None
        cands = self.ready_candidates()
        assert cands, "no available task although workflows remain (window of 0 slots?)"
        return cands[0]

    def force_next(self, workflow: int, task: int, tol: float = 1e-3) -> None:
        """Test hook for float32 near-ties: make (workflow, task) the pending decision.

        Allowed only for an available task ready within `tol` of the earliest; the clock becomes its
        ready time. Rewards already returned are not revised; the next step's integral starts where
        the last one ended, so no stretch of time is paid twice or skipped.
        """
        cands = self.ready_candidates()
        if not cands:
            raise ValueError("no pending decision (episode done)")
        for r, wi, c in cands:
            if (wi, c) == (workflow, task):
                if abs(r - cands[0][0]) > tol:
                    raise ValueError(f"task {(workflow, task)} is ready at {r}, not within {tol} of {cands[0][0]}")
                self._pending = (r, wi, c)
                return
        raise ValueError(f"task {(workflow, task)} is not available")

    # ------------------------------------------------------------------ placement cost model

    def _parent_split(self, wi: int, c: int, s: int) -> tuple[float, float, int, int]:
        """(local parent tokens, non-local parent tokens, n local, n non-local) of task c if placed on s.

        A parent is local only when it ran on s with c's model: its output is in that model's KV
        cache there. Any other parent's output is prefilled (spec v2)."""
        w, spec = self.wfs[wi], self.inst.workflows[wi]
        loc = rem = 0.0
        nl = nr = 0
        for p in spec.parents[c]:
            if w.server[p] == s and spec.models[p] == spec.models[c]:
                loc += spec.output_tokens[p]
                nl += 1
            else:
                rem += spec.output_tokens[p]
                nr += 1
        return loc, rem, nl, nr

    def window_demand(self) -> WindowDemand:
        """Pending work (unassigned tasks of arrived, admitted workflows, the pending decision's task
        excluded) per model and per prefix key, and how many servers hold each model and key."""
        clock, wi, c = self._pending
        d = WindowDemand()
        for xi, x in enumerate(self.wfs):
            if x.admit is None or x.done_step is not None or x.arrival > clock:
                continue
            xs = self.inst.workflows[xi]
            d.app_prefix[xs.app] = xs.prefix_tokens
            for j in range(xs.n_tasks):
                if x.finish[j] is None and (xi, j) != (wi, c):
                    d.model[xs.models[j]] = d.model.get(xs.models[j], 0) + 1
                    d.key[(xs.app, xs.models[j])] = d.key.get((xs.app, xs.models[j]), 0) + 1
        for srv in self.servers:
            for x in srv.resident:
                d.model_replicas[x] = d.model_replicas.get(x, 0) + 1
            for key in srv.cache:
                d.key_replicas[key] = d.key_replicas.get(key, 0) + 1
        return d

    def evict_reload(self, s: int, evicted: list[int], demand: WindowDemand) -> float:
        """Reload seconds on server s of the evicted models, each scaled by min(1, pending / replicas)."""
        g = self.servers[s].gpu
        return sum(demand.model_share(x) * self.load_time(x, g) for x in evicted)

    def _would_evict(self, s: int, m: int) -> list[int]:
        """Models that loading `m` on server s evicts (least recently used first), without doing it."""
        srv = self.servers[s]
        if m in srv.resident:
            return []
        used = sum(self.inst.models[x].mem_gb for x in srv.resident)
        out = []
        for victim in sorted(srv.resident, key=srv.resident.__getitem__):
            if used + self.inst.models[m].mem_gb <= self.cap[srv.gpu]:
                break
            out.append(victim)
            used -= self.inst.models[victim].mem_gb
        return out

    def _would_drop(self, s: int, key: tuple[str, int], evicted: list[int]) -> list[tuple[str, int]]:
        """Prefix keys that placing a task with `key` on server s drops: the evicted models' keys,
        then the least recently used key if `key` misses a full cache."""
        cache = self.servers[s].cache
        dropped = [k for k in cache if k[1] in evicted]
        left = {k: v for k, v in cache.items() if k not in dropped}
        if self.inst.prefix_cache_slots > 0 and key not in left and len(left) >= self.inst.prefix_cache_slots:
            dropped.append(min(left, key=left.__getitem__))
        return dropped

    def expected_finishes(self, s: int, clock: float) -> tuple[float, dict[tuple[int, int], float]]:
        """What the information rule lets the observation know of server s at `clock`:
        (expected drain time, {(workflow, task): expected finish} of its unfinished tasks).

        Unfinished = true finish > clock; they are the last tasks placed on s (FCFS). They count with
        their expected durations from the first one's start (known: its predecessors have finished),
        each floored at the clock. The observation tracks a server's last `queue_cap` placements: when
        all of them are unfinished, the estimate starts from the clock instead, and older unfinished
        tasks are expected to end now."""
        srv, cap = self.servers[s], self.inst.queue_cap
        tracked = list(zip(srv.placed[-cap:], srv.finishes[-cap:], strict=True))
        unfinished = [rec for rec, f in tracked if f > clock]
        if not unfinished:
            return clock, {}
        at = clock if len(unfinished) >= cap else unfinished[0][0]
        out = {}
        for _, expected, task in unfinished:
            at += expected
            out[task] = max(clock, at)
        return max(clock, at), out

    def known_finish(self, wi: int, c: int, clock: float) -> float:
        """An assigned task's finish as the observation may know it at `clock`: the true finish once
        it has finished, else the expected one (`expected_finishes`)."""
        w = self.wfs[wi]
        if w.finish[c] <= clock:
            return w.finish[c]
        return self.expected_finishes(w.server[c], clock)[1].get((wi, c), clock)

    def known_ready(self, wi: int, c: int, clock: float) -> float:
        """An available task's ready time as the observation may know it at `clock` (its parents'
        finishes per `known_finish`; the true ready time once they have all finished)."""
        w, spec = self.wfs[wi], self.inst.workflows[wi]
        return max([w.admit] + [self.known_finish(wi, p, clock) for p in spec.parents[c]]) + spec.tool_delay[c]

    # Public read-only views of the static workflow structure and the residency rule (planners use them).

    def children(self, wi: int, c: int) -> list[int]:
        return list(self._children[wi][c])

    def path_remaining(self, wi: int, c: int) -> float:
        """Expected critical path from task c on (fastest GPU, hot caches), as the observation's."""
        return self._path[wi][c]

    def fit_together(self, s: int, models) -> bool:
        """Whether these models can all be resident on server s at once."""
        return sum(self.inst.models[m].mem_gb for m in set(models)) <= self.cap[self.servers[s].gpu]

    def would_evict(self, s: int, m: int) -> list[int]:
        """Models that loading m on server s would evict (least recently used first); nothing changes."""
        return self._would_evict(s, m)

    def is_local(self, wi: int, p: int, c: int, s: int) -> bool:
        """Whether parent p's output is in the KV cache that task c would use on server s."""
        spec = self.inst.workflows[wi]
        return self.wfs[wi].server[p] == s and spec.models[p] == spec.models[c]

    def expected_output(self, wi: int, c: int, clock: float) -> float:
        """An assigned task's output tokens as the observation may know them: true once finished."""
        spec, w = self.inst.workflows[wi], self.wfs[wi]
        return spec.output_tokens[c] if w.finish[c] <= clock else spec.expected_output_tokens[c]

    def _start(self, wi: int, c: int, s: int, free_at: float | None = None) -> float:
        """start = max(free_at_s, max(admit, max_p(finish_p + [other server] * latency)) + tool_delay).

        The parents have finished (the task is ready), so their true finishes are known; `free_at`
        replaces the server's true one (the observation passes its expected drain time)."""
        w, spec = self.wfs[wi], self.inst.workflows[wi]
        lat = self.inst.net_latency_s
        inputs_at = max([w.admit] + [w.finish[p] + (lat if w.server[p] != s else 0.0) for p in spec.parents[c]])
        return max(self.servers[s].free_at if free_at is None else free_at, inputs_at + spec.tool_delay[c])

    def _check_action(self, action) -> int:
        try:
            s = operator.index(action)
        except TypeError:
            raise InvalidActionError(f"action {action!r} is not an integer server index") from None
        if not 0 <= s < self.max_servers:
            raise InvalidActionError(f"server {s} is out of range [0, {self.max_servers})")
        if s >= self.n_servers:
            raise InvalidActionError(f"server {s} is inactive (padding; {self.n_servers} active servers)")
        wi, c = self.current
        m = self.inst.workflows[wi].models[c]
        g = self.servers[s].gpu
        if not self.fits(m, g):
            raise InvalidActionError(
                f"server {s}: model {self.inst.models[m].name} ({self.inst.models[m].mem_gb} GB) does not fit "
                f"{self.inst.gpus[g].name} ({self.cap[g]:.3f} GB usable)")
        return s

    # ------------------------------------------------------------------ step

    def step(self, action: int) -> tuple[RefObservation | None, float, bool, dict]:
        if self._done:
            raise RuntimeError("step() on a finished episode; call reset()")
        s = self._check_action(action)
        inst = self.inst
        t, wi, c = self._pending
        k = len(self.decisions)
        w, spec = self.wfs[wi], inst.workflows[wi]
        srv = self.servers[s]
        g, m, app = srv.gpu, spec.models[c], spec.app
        prefill, decode = self.prefill_rate(m, g), self.decode_rate(m, g)

        # Reward integral up to this decision: [0, t_0] at step 0; otherwise empty unless force_next moved the clock.
        open_before = [x for x in range(len(self.wfs)) if self.wfs[x].done_step is None]
        integral = self._integrate(self._integrated_to, t, open_before)
        self._integrated_to = max(self._integrated_to, t)

        start = self._start(wi, c, s)  # uses free_at and parent placement, before any update
        _, remote_tok, _, _ = self._parent_split(wi, c, s)

        # 1. residency: load on a miss, evicting least recently used models and their prefix keys;
        # 2. prefix hit test; 3. refresh or insert the key, evicting the LRU key when full.
        key = (app, m)
        load = 0.0 if m in srv.resident else self.load_time(m, g)
        evicted = self._would_evict(s, m)
        dropped = self._would_drop(s, key, evicted)
        hit = key in srv.cache  # evictions never touch this key: its model stays, and a miss is a miss
        for victim in evicted:
            del srv.resident[victim]
        for old in dropped:
            del srv.cache[old]
        srv.resident[m] = k
        if inst.prefix_cache_slots > 0:
            srv.cache[key] = k

        prefix_tok = 0 if hit else spec.prefix_tokens
        duration = (load + (spec.input_tokens[c] + prefix_tok + remote_tok) / prefill
                    + spec.output_tokens[c] / decode + inst.task_overhead_s)
        finish = start + duration
        expected = duration + (spec.expected_output_tokens[c] - spec.output_tokens[c]) / decode
        srv.free_at = finish
        srv.finishes.append(finish)
        srv.placed.append((start, expected, (wi, c)))
        srv.busy += duration
        w.finish[c], w.server[c] = finish, s
        w.n_assigned += 1

        decision = dict(
            seq=k, workflow=wi, task=c, server=s, decision_time=t, start=start, finish=finish,
            load_s=load, prefix_hit=hit, prefix_s=prefix_tok / prefill, remote_s=remote_tok / prefill,
            prefill_s=spec.input_tokens[c] / prefill, decode_s=spec.output_tokens[c] / decode,
            n_evicted=len(evicted), n_kept=len(srv.resident) - 1,
        )
        self.decisions.append(decision)
        self._last_time = t

        completion = 0.0
        if w.n_assigned == spec.n_tasks:  # last task assigned: record, free the slot, admit the next workflow
            w.done_step = k
            max_finish = max(w.finish)
            self.responses[wi] = max_finish - w.arrival
            completion = max_finish - t
            if self._next_admit < len(self.wfs):
                nxt = self.wfs[self._next_admit]
                nxt.admit = max(nxt.arrival, t)
                self._next_admit += 1

        self._pending = self._earliest()
        done = self._pending is None
        t_next = t if done else self._pending[0]
        open_after = [x for x in range(len(self.wfs)) if self.wfs[x].done_step is None]
        # ∫ over [t_k, t_{k+1}], kept contiguous with what earlier steps paid so no stretch is paid twice.
        integral += self._integrate(self._integrated_to, t_next, open_after)
        self._integrated_to = max(self._integrated_to, t_next)
        reward = -(integral + completion) / inst.reward_scale
        self.rewards.append(reward)

        info: dict = {"decision": decision, "episode_done": done}
        if done:
            self._done = True
            info.update(self.metrics())
            return None, reward, True, info
        return self.observe(), reward, False, info

    def _integrate(self, t0: float, t1: float, open_wfs: list[int]) -> float:
        """∫_{t0}^{t1} open(τ) dτ by an event sweep over arrivals, for the given not-yet-assigned workflows."""
        if t1 <= t0:
            return 0.0
        n_open = 0
        events: list[float] = []
        for x in open_wfs:
            a = self.wfs[x].arrival
            if a <= t0:
                n_open += 1
            elif a < t1:
                events.append(a)
        events.sort()
        total, last = 0.0, t0
        for a in events:
            total += n_open * (a - last)
            n_open += 1
            last = a
        return total + n_open * (t1 - last)

    def metrics(self) -> dict:
        """Episode metrics (final once every task is assigned)."""
        resp = [self.responses[i] for i in sorted(self.responses)]
        makespan = max((d["finish"] for d in self.decisions), default=0.0)
        busy = sum(srv.busy for srv in self.servers)
        slow = [self.responses[i] / self._lower[i] for i in sorted(self.responses)]
        return dict(
            mean_response=float(np.mean(resp)) if resp else 0.0,
            mean_slowdown=float(np.mean(slow)) if slow else 0.0,
            p95_response=float(np.percentile(resp, 95)) if resp else 0.0,
            makespan=makespan,
            utilization=busy / (self.n_servers * makespan) if makespan > 0 else 0.0,
            episode_return=float(sum(self.rewards)),
        )

    # ------------------------------------------------------------------ observation

    def observe(self) -> RefObservation:
        """Observation of the pending decision (docs/environment.md, envs/features.py)."""
        if self._pending is None:
            raise RuntimeError("no pending decision: the episode is done")
        inst = self.inst
        clock, wi, c = self._pending
        w, spec = self.wfs[wi], inst.workflows[wi]
        m = spec.models[c]
        model = inst.models[m]
        M, G = self.n_models, self.n_gpus

        task = np.zeros(F.task_dim(M), np.float64)
        T = F.TASK
        task[T["input_ktok"]] = spec.input_tokens[c] / 1000.0
        task[T["expected_output_ktok"]] = spec.expected_output_tokens[c] / 1000.0
        task[T["prefix_ktok"]] = spec.prefix_tokens / 1000.0
        task[T["tool_delay_s"]] = spec.tool_delay[c]
        task[T["parent_output_ktok"]] = sum(spec.output_tokens[p] for p in spec.parents[c]) / 1000.0
        task[T["n_parents"]] = len(spec.parents[c])
        task[T["n_children"]] = len(self._children[wi][c])
        task[T["depth"]] = self._depth[wi][c]
        task[T["path_remaining_s"]] = self._path[wi][c]
        task[T["workflow_age_s"]] = clock - w.arrival
        task[T["tasks_left"]] = spec.n_tasks - w.n_assigned
        task[T["model_mem_gb"]] = model.mem_gb
        task[len(F.TASK_FEATURES) + m] = 1.0

        demand = self.window_demand()
        children = self._children[wi][c]
        co_parents = {p for j in children for p in spec.parents[j] if p != c and w.finish[p] is not None}

        servers = np.zeros((self.max_servers, F.server_dim(G)), np.float64)
        mask = np.zeros(self.max_servers, bool)
        S = F.SERVER
        for s, srv in enumerate(self.servers):
            g = srv.gpu
            fits = self.fits(m, g)
            mask[s] = fits
            prefill, decode = self.prefill_rate(m, g), self.decode_rate(m, g)
            resident = m in srv.resident
            hit = (spec.app, m) in srv.cache
            loc, rem, nl, _ = self._parent_split(wi, c, s)
            load = 0.0 if resident else self.load_time(m, g)
            free = self.expected_finishes(s, clock)[0]
            start = self._start(wi, c, s, free_at=free)
            est = (load + (spec.input_tokens[c] + (0 if hit else spec.prefix_tokens) + rem) / prefill
                   + spec.expected_output_tokens[c] / decode + inst.task_overhead_s)
            row = servers[s]
            row[S["active"]] = 1.0
            row[S["fits"]] = float(fits)
            row[S["prefill_ktps"]] = prefill / 1000.0
            row[S["decode_ktps"]] = decode / 1000.0
            row[S["mem_gb"]] = inst.gpus[g].mem_gb
            row[S["free_mem_gb"]] = self.cap[g] - sum(inst.models[x].mem_gb for x in srv.resident)
            row[S["wait_s"]] = free - clock
            row[S["resident"]] = float(resident)
            row[S["prefix_hit"]] = float(hit)
            row[S["local_parent_ktok"]] = loc / 1000.0
            row[S["remote_parent_ktok"]] = rem / 1000.0
            row[S["n_local_parents"]] = nl
            row[S["load_s"]] = load
            row[S["est_start_s"]] = start - clock
            row[S["est_finish_s"]] = start + est - clock
            row[S["queue_len"]] = min(inst.queue_cap, sum(1 for f in srv.finishes if f > clock))
            row[S["n_resident"]] = len(srv.resident)
            evicted = self._would_evict(s, m)
            row[S["evict_reload_s"]] = self.evict_reload(s, evicted, demand)
            row[S["prefix_churn_ktok"]] = sum(
                demand.key_share(key) * demand.app_prefix.get(key[0], 0.0)
                for key in self._would_drop(s, (spec.app, m), evicted)) / 1000.0
            row[S["child_colocated_ktok"]] = sum(
                self.expected_output(wi, p, clock) for p in co_parents if w.server[p] == s) / 1000.0
            row[len(F.SERVER_FEATURES) + g] = 1.0

        nodes = np.zeros((self.max_tasks, F.node_dim(M)), np.float64)
        edges = []
        node_mask = np.zeros(self.max_tasks, bool)
        N = F.NODE
        for j in range(spec.n_tasks):
            row = nodes[j]
            assigned = w.finish[j] is not None
            row[N["assigned"]] = float(assigned)
            row[N["current"]] = float(j == c)
            row[N["input_ktok"]] = spec.input_tokens[j] / 1000.0
            row[N["expected_output_ktok"]] = spec.expected_output_tokens[j] / 1000.0
            row[N["tool_delay_s"]] = spec.tool_delay[j]
            row[N["finish_in_s"]] = self.known_finish(wi, j, clock) - clock if assigned else 0.0
            row[N["path_remaining_s"]] = self._path[wi][j]
            row[len(F.NODE_FEATURES) + spec.models[j]] = 1.0
            node_mask[j] = True
            for p in spec.parents[j]:
                edges.append((p, j))
        edges.sort()
        senders = np.full(self.max_edges, self.max_tasks, np.int32)
        receivers = np.full(self.max_edges, self.max_tasks, np.int32)
        for k, (p, j) in enumerate(edges):
            senders[k], receivers[k] = p, j

        glob = np.zeros(len(F.GLOBAL_FEATURES), np.float64)
        Gl = F.GLOBAL
        glob[Gl["clock_s"]] = clock
        glob[Gl["open_workflows"]] = sum(1 for x in self.wfs if x.arrival <= clock and x.done_step is None)
        glob[Gl["queued_workflows"]] = sum(1 for x in self.wfs if x.arrival <= clock and x.admit is None)
        glob[Gl["rho"]] = inst.rho
        glob[Gl["n_active"]] = self.n_servers
        glob[Gl["decision_index"]] = len(self.decisions)
        glob[Gl["workflows_left"]] = sum(1 for x in self.wfs if x.done_step is None)

        return RefObservation(
            task=task.astype(np.float32), servers=servers.astype(np.float32), nodes=nodes.astype(np.float32),
            senders=senders, receivers=receivers, n_edges=len(edges), node_mask=node_mask, current=c, action_mask=mask,
            globals=glob.astype(np.float32),
        )


def run_episode(inst: Instance, policy, max_servers: int | None = None, max_tasks: int = 16,
                max_edges: int | None = None) -> dict:
    """Run `policy(obs, sim) -> server index` to the end; the final info dict plus the schedule."""
    sim = ReferenceSim(inst, max_servers=max_servers, max_tasks=max_tasks, max_edges=max_edges)
    obs = sim.reset()
    while True:
        obs, _, done, info = sim.step(policy(obs, sim))
        if done:
            return {**info, "decisions": list(sim.decisions), "responses": dict(sim.responses)}
