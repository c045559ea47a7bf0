"""The Gantt chart of a schedule trace (`envs.trace`): servers down, time along, a bar per task.

Kept apart from the trace format so that reading and checking traces needs no plotting library.
"""

from __future__ import annotations

import io

from envs.files import atomic_write_bytes

_SUMMARY = ("mean_response", "p95_response", "makespan", "episode_return")  # envs.trace.SUMMARY_FIELDS (trace imports this module)


def plot_gantt(trace: dict, path, title: str | None = None) -> None:
    """Servers down the y axis, time along x; one bar per task, coloured by workflow.

    The first `load_s` of a bar (a model load) is darker and hatched; a black wedge at a
    bar's start marks a prefix-cache hit. Written atomically as PNG.
    """
    import matplotlib
    import matplotlib.colors as mcolors
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    servers = trace["servers"]
    decs = trace["decisions"]
    n = len(servers)
    end = max((float(d["finish"]) for d in decs), default=1.0)
    fig = Figure(figsize=(min(24.0, 8.0 + 0.02 * len(decs)), min(40.0, 2.2 + 0.38 * n)), dpi=110)
    ax = fig.subplots()
    # one distinct colour per workflow: tab20's 20, then evenly spaced hues (golden-ratio steps) beyond
    n_wf = 1 + max((int(d["workflow"]) for d in decs), default=0)
    cmap = [mcolors.to_rgb(c) for c in matplotlib.colormaps["tab20"].colors]
    cmap += [mcolors.hsv_to_rgb(((i * 0.618034) % 1.0, 0.55 + 0.35 * (i % 2), 0.85 - 0.25 * (i % 3 == 0)))
             for i in range(max(n_wf - len(cmap), 0))]
    ys = [int(d["server"]) for d in decs]
    starts = [float(d["start"]) for d in decs]
    widths = [float(d["finish"]) - float(d["start"]) for d in decs]
    colors = [cmap[int(d["workflow"]) % len(cmap)] for d in decs]
    ax.barh(ys, widths, left=starts, height=0.72, color=colors, edgecolor="white", linewidth=0.4)
    loads = [(y, s, float(d["load_s"]), c)
             for y, s, d, c in zip(ys, starts, decs, colors, strict=True) if float(d["load_s"]) > 0]
    if loads:
        ax.barh([x[0] for x in loads], [x[2] for x in loads], left=[x[1] for x in loads], height=0.72,
                color=[tuple(0.55 * v for v in x[3]) for x in loads], hatch="////", edgecolor="0.9", linewidth=0)
    hits = [(s, y) for s, y, d in zip(starts, ys, decs, strict=True) if d["prefix_hit"]]
    if hits:
        ax.scatter([h[0] for h in hits], [h[1] - 0.36 for h in hits], marker="v", s=14, c="black",
                   zorder=3, linewidths=0)
    ax.set_yticks(range(n), [f"{s['id']}: {s['gpu']}" for s in servers])
    ax.set_ylim(n - 0.4, -0.6)
    ax.set_xlim(0, end * 1.01 if end > 0 else 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("server")
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)
    s = trace.get("summary", {})
    head = f"{title} — " if title else ""
    line = (f"{head}{n} servers, {len(trace['workflows'])} workflows, {len(decs)} tasks")
    if all(f in s for f in _SUMMARY):
        line += (f"\nmean response {s['mean_response']:.2f} s, P95 {s['p95_response']:.2f} s, "
                 f"makespan {s['makespan']:.1f} s")
        if "utilization" in s:
            line += f", utilization {s['utilization']:.0%}"
    ax.set_title(line, fontsize=10)
    handles = [
        Patch(facecolor="0.75", edgecolor="white", label="task (colour = workflow)"),
        Patch(facecolor="0.35", hatch="////", edgecolor="0.9", label="model load (first load_s of the task)"),
        Line2D([], [], marker="v", linestyle="none", color="black", markersize=5, label="prefix-cache hit"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 0.35 / max(n, 1)),
              ncol=3, fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
