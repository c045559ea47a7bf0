"""FATE-CP: a CP-SAT frontier planner, run on the host through the reference simulator.

At each decision it plans jointly the current task, the other available tasks
and the tasks that become ready within `horizon_s` (children whose parents are
all assigned or planned), then applies the plan's server for the current task
only; the next decision plans again with what actually happened.

The model (times in integer units of `time_unit_s`, relative to the clock):

* one optional interval per (task, candidate server); exactly one is present;
* per server, no overlap among its task intervals and its model-load intervals;
* a model that is not resident on a server gets one optional load interval
  there, present iff a planned task of that model goes there (tasks of the
  model start after it): the model-swap transition cost, paid once;
* memory: two models that do not fit together on a server are never needed
  there at once: the tasks that use a resident model end before a load that
  evicts it starts, and of two such loads, one model's tasks end before the
  other's load (pairwise; a triple that fits pairwise but not together is not
  modelled);
* precedence with locality: a planned child starts after its planned parent
  ends plus its tool delay, plus the network latency unless both share a
  server; its duration includes prefilling that parent's expected output
  unless they share a server;
* the objective: the sum over planned tasks of (end + the expected critical
  path after the task), plus, for every load, the reload time of the models it
  evicts scaled by their pending demand (FATE-lite's eviction term).

The planner sees expected output lengths only (true lengths of unfinished calls
stay hidden), as the JAX observation does. Solves are bounded in CP-SAT's
deterministic time (reproducible) and in wall-clock as a safety net; when no
solution is found in time the current task goes to the EFT server.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.features import SERVER


def _eft(obs) -> int:
    """The earliest-finish server of the observation (the fallback, and always a candidate)."""
    return int(np.argmin(np.where(obs.action_mask, obs.servers[:, SERVER["est_finish_s"]], np.inf)))


def require_ortools():
    try:
        from ortools.sat.python import cp_model  # noqa: F401
    except ImportError as e:
        raise ImportError("fate_cp needs OR-Tools: pip install -e '.[cp]'") from e


@dataclass(frozen=True)
class FateCPConfig:
    horizon_s: float = 30.0  # plan tasks expected to become ready this soon
    max_tasks: int = 5  # planned tasks per decision (the current one included)
    candidate_servers: int = 6  # per task: the best by a static finish-time estimate
    time_limit_s: float = 0.01  # deterministic-time budget per solve (CP-SAT's ~seconds)
    wall_limit_s: float = 2.0  # safety net in real seconds
    time_unit_s: float = 0.01
    evict_weight: float = 1.0

    def __post_init__(self):
        for name in ("horizon_s", "time_limit_s", "wall_limit_s", "time_unit_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FateCPConfig.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("max_tasks", "candidate_servers"):
            if getattr(self, name) < 1:
                raise ValueError(f"FateCPConfig.{name}: must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class PlannedTask:
    workflow: int
    task: int
    server: int
    start_s: float  # relative to the clock at the decision
    end_s: float


@dataclass(frozen=True)
class PlannedLoad:
    server: int
    model: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class CPPlan:
    """One solve: its status and, when one was found, every planned task and model load (current task first)."""

    status: str  # optimal | feasible | infeasible | invalid | timeout
    tasks: tuple[PlannedTask, ...] = ()
    loads: tuple[PlannedLoad, ...] = ()

    @property
    def choice(self) -> int | None:
        """The current task's server, or None without a solution."""
        return self.tasks[0].server if self.tasks else None


class FateCP:
    """A host policy `policy(obs, sim) -> server` (obs: RefObservation, sim: ReferenceSim)."""

    def __init__(self, config: FateCPConfig | None = None):
        require_ortools()
        self.config = config or FateCPConfig()
        self.solves = 0
        self.fallback_causes: dict[str, int] = {}  # why EFT was used instead: infeasible | timeout | invalid
        self.optimal = 0

    @property
    def fallbacks(self) -> int:
        """Decisions where no plan was used (the EFT choice was taken); causes in `fallback_causes`."""
        return sum(self.fallback_causes.values())

    def _fallback(self, cause: str, eft: int) -> int:
        self.fallback_causes[cause] = self.fallback_causes.get(cause, 0) + 1
        return eft

    # ---------------------------------------------------------------- planning set

    def _plan_tasks(self, sim):
        """[(workflow, task, earliest ready estimate)] with the current task first."""
        cfg = self.config
        clock, (wi0, c0) = sim.clock, sim.current
        # Ready times as the observation knows them (a parent still running counts as expected).
        avail = sorted((sim.known_ready(wi, c, clock), wi, c) for _, wi, c in sim.ready_candidates()
                       if (wi, c) != (wi0, c0))
        chosen = [(wi0, c0, clock)]
        for r, wi, c in avail:
            if len(chosen) >= cfg.max_tasks or r > clock + cfg.horizon_s:
                break
            chosen.append((wi, c, r))
        # Children whose parents are all assigned or planned, breadth first, optimistic ready time.
        est_ready = {(wi, c): r for wi, c, r in chosen}
        frontier = list(chosen)
        while frontier and len(chosen) < cfg.max_tasks:
            nxt = []
            for wi, c, _ in frontier:
                spec = sim.inst.workflows[wi]
                for k in sim.children(wi, c):
                    if (wi, k) in est_ready or len(chosen) >= cfg.max_tasks:
                        continue
                    ps = spec.parents[k]
                    w = sim.wfs[wi]
                    if not all(w.finish[p] is not None or (wi, p) in est_ready for p in ps):
                        continue
                    ready = max([w.admit] + [sim.known_finish(wi, p, clock) if w.finish[p] is not None
                                             else est_ready[(wi, p)] + self._min_duration(sim, wi, p) for p in ps])
                    ready += spec.tool_delay[k]
                    if ready > clock + cfg.horizon_s:
                        continue
                    est_ready[(wi, k)] = ready
                    chosen.append((wi, k, ready))
                    nxt.append((wi, k, ready))
            frontier = nxt
        return chosen

    @staticmethod
    def _min_duration(sim, wi, c):
        spec = sim.inst.workflows[wi]
        m = spec.models[c]
        best = np.inf
        for srv in sim.servers:
            if sim.fits(m, srv.gpu):
                d = (spec.input_tokens[c] / sim.prefill_rate(m, srv.gpu)
                     + spec.expected_output_tokens[c] / sim.decode_rate(m, srv.gpu))
                best = min(best, d)
        return best + sim.inst.task_overhead_s

    # ---------------------------------------------------------------- the policy

    def __call__(self, obs, sim) -> int:
        plan = self.plan(obs, sim)
        self.solves += 1
        if plan.choice is None:
            return self._fallback(plan.status, _eft(obs))
        self.optimal += plan.status == "optimal"
        return plan.choice

    def plan(self, obs, sim) -> CPPlan:
        """Solve the planning model for the current decision; nothing in `sim` changes."""
        from ortools.sat.python import cp_model

        cfg = self.config
        inst = sim.inst
        clock, (wi0, c0) = sim.clock, sim.current
        unit = cfg.time_unit_s
        to_int = lambda x: int(round(x / unit))  # noqa: E731
        eft = _eft(obs)
        tasks = self._plan_tasks(sim)
        planned = {(wi, c): i for i, (wi, c, _) in enumerate(tasks)}
        lat = inst.net_latency_s

        demand = sim.window_demand()  # for the eviction term, as the observation counts it
        # Information rule: servers drain at their expected times, unfinished parents count as expected.
        free = [sim.expected_finishes(s, clock)[0] for s in range(len(sim.servers))]

        model = cp_model.CpModel()
        horizon = 0
        cand: list[list[int]] = []
        base: list[dict[int, float]] = []
        for wi, c, r in tasks:
            spec, w = inst.workflows[wi], sim.wfs[wi]
            m = spec.models[c]
            est = {}
            durs = {}
            for s, srv in enumerate(sim.servers):
                if not sim.fits(m, srv.gpu):
                    continue
                pre, dec = sim.prefill_rate(m, srv.gpu), sim.decode_rate(m, srv.gpu)
                remote = sum(sim.expected_output(wi, p, clock) for p in spec.parents[c]
                             if w.finish[p] is not None and not sim.is_local(wi, p, c, s))
                hit = (spec.app, m) in srv.cache
                d = ((spec.input_tokens[c] + (0 if hit else spec.prefix_tokens) + remote) / pre
                     + spec.expected_output_tokens[c] / dec + inst.task_overhead_s)
                load = 0.0 if m in srv.resident else sim.load_time(m, srv.gpu)
                durs[s] = d
                est[s] = max(free[s], r) + load + d
            order = sorted(est, key=lambda s: (est[s], s))[: cfg.candidate_servers]
            if (wi, c) == (wi0, c0) and eft not in order:
                order.append(eft)
            cand.append(order)
            base.append(durs)
            horizon += max(to_int(max(est[s] for s in order) - clock), 0) + 1
        # every server's queue drains before the plan's tasks can all run (0 when all are idle)
        horizon += max(to_int(max(free) - clock), 0) + 1

        start = [model.NewIntVar(0, horizon, f"S{i}") for i in range(len(tasks))]
        end = [model.NewIntVar(0, horizon, f"E{i}") for i in range(len(tasks))]
        x = [{s: model.NewBoolVar(f"x{i}_{s}") for s in cand[i]} for i in range(len(tasks))]
        per_server: dict[int, list] = {}
        loads: dict[tuple[int, int], tuple] = {}  # (server, model) -> (present, start, end, users, it evicts)
        resident_users: dict[tuple[int, int], list] = {}  # (server, resident model) -> [(task, placed there)]
        objective = []
        for i, (wi, c, _) in enumerate(tasks):
            spec, w = inst.workflows[wi], sim.wfs[wi]
            m = spec.models[c]
            model.AddExactlyOne(x[i].values())
            planned_parents = [planned[(wi, p)] for p in spec.parents[c] if (wi, p) in planned]
            for s in cand[i]:
                srv = sim.servers[s]
                pre = sim.prefill_rate(m, srv.gpu)
                dur = to_int(base[i][s])
                if planned_parents:
                    # + prefilling each planned parent's expected output unless it runs here too
                    extra = [(to_int(inst.workflows[wi].expected_output_tokens[tasks[p][1]] / pre), p)
                             for p in planned_parents]
                    size = model.NewIntVar(dur, dur + sum(e for e, _ in extra), f"D{i}_{s}")
                    terms = []
                    for e, p in extra:
                        if s in x[p] and inst.workflows[wi].models[tasks[p][1]] == m:  # local: same server and model
                            terms.append(e - e * x[p][s])
                        else:
                            terms.append(e)
                    model.Add(size == dur + sum(terms))
                else:
                    size = dur
                iv = model.NewOptionalIntervalVar(start[i], size, end[i], x[i][s], f"I{i}_{s}")
                per_server.setdefault(s, []).append(iv)
                # ready: admission, assigned parents (with latency when remote), tool delay; server free
                ready = max([w.admit] + [sim.known_finish(wi, p, clock) + (0.0 if w.server[p] == s else lat)
                                         for p in spec.parents[c] if w.finish[p] is not None]) + spec.tool_delay[c]
                model.Add(start[i] >= max(to_int(max(ready, free[s]) - clock), 0)).OnlyEnforceIf(x[i][s])
                for p in planned_parents:
                    gap = to_int(spec.tool_delay[c])
                    if s in x[p]:
                        model.Add(start[i] >= end[p] + gap + to_int(lat) - to_int(lat) * x[p][s]).OnlyEnforceIf(x[i][s])
                    else:
                        model.Add(start[i] >= end[p] + gap + to_int(lat)).OnlyEnforceIf(x[i][s])
                if m not in srv.resident:
                    if (s, m) not in loads:
                        lp = model.NewBoolVar(f"l{s}_{m}")
                        ls = model.NewIntVar(to_int(free[s] - clock), horizon, f"LS{s}_{m}")
                        le = model.NewIntVar(0, horizon + to_int(sim.load_time(m, srv.gpu)), f"LE{s}_{m}")
                        liv = model.NewOptionalIntervalVar(ls, to_int(sim.load_time(m, srv.gpu)), le, lp, f"L{s}_{m}")
                        per_server.setdefault(s, []).append(liv)
                        evicted = sim.would_evict(s, m)
                        loads[(s, m)] = (lp, ls, le, [], evicted)
                        penalty = sim.evict_reload(s, evicted, demand)
                        if penalty > 0:
                            objective.append(to_int(cfg.evict_weight * penalty) * lp)
                    lp, _, le, users, _ = loads[(s, m)]
                    users.append((i, x[i][s]))
                    model.AddImplication(x[i][s], lp)
                    model.Add(start[i] >= le).OnlyEnforceIf(x[i][s])
                else:
                    resident_users.setdefault((s, m), []).append((i, x[i][s]))
            tail = max((sim.path_remaining(wi, k) for k in sim.children(wi, c)), default=0.0)
            objective.append(end[i] + to_int(tail))
        for lp, _, _, users, _ in loads.values():
            model.AddBoolOr([xv for _, xv in users]).OnlyEnforceIf(lp)  # no load without a task that needs it
        # Memory: a model's planned tasks on a server finish before a load that evicts it there starts.
        for (s, _m), (lp, ls, _, _, evicted) in loads.items():
            for r in evicted:
                for j, xj in resident_users.get((s, r), ()):
                    model.Add(end[j] <= ls).OnlyEnforceIf([xj, lp])
        by_server: dict[int, list[int]] = {}
        for s, m in loads:
            by_server.setdefault(s, []).append(m)
        for s, ms in by_server.items():
            for a, m1 in enumerate(ms):
                for m2 in ms[a + 1:]:
                    if sim.fit_together(s, (m1, m2)):
                        continue
                    lp1, ls1, _, users1, _ = loads[(s, m1)]
                    lp2, ls2, _, users2, _ = loads[(s, m2)]
                    first = model.NewBoolVar(f"o{s}_{m1}_{m2}")  # m1's tasks before m2's load, or the reverse
                    for j, xj in users1:
                        model.Add(end[j] <= ls2).OnlyEnforceIf([xj, lp2, first])
                    for k, xk in users2:
                        model.Add(end[k] <= ls1).OnlyEnforceIf([xk, lp1, first.Not()])
        for ivs in per_server.values():
            model.AddNoOverlap(ivs)
        model.Minimize(sum(objective))

        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.max_deterministic_time = cfg.time_limit_s
        solver.parameters.max_time_in_seconds = cfg.wall_limit_s
        solver.parameters.random_seed = 0
        status = solver.Solve(model)
        if status == cp_model.INFEASIBLE:
            return CPPlan("infeasible")
        if status == cp_model.MODEL_INVALID:
            return CPPlan("invalid")
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return CPPlan("timeout")  # UNKNOWN: no solution within the limits
        placed = []
        for i, (wi, c, _) in enumerate(tasks):
            srv = next(s for s, var in x[i].items() if solver.Value(var))  # ExactlyOne holds in any solution
            placed.append(PlannedTask(wi, c, int(srv), solver.Value(start[i]) * unit, solver.Value(end[i]) * unit))
        planned_loads = tuple(PlannedLoad(s, m, solver.Value(ls) * unit, solver.Value(le) * unit)
                              for (s, m), (lp, ls, le, _, _) in loads.items() if solver.Value(lp))
        return CPPlan("optimal" if status == cp_model.OPTIMAL else "feasible", tuple(placed), planned_loads)
