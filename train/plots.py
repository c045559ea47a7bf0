"""Plots of a training run (matplotlib, headless, written atomically)."""

from __future__ import annotations

import io
import math

from envs.files import atomic_write_bytes


def plot_learning_curve(rows: list[dict], path: str, best_metric: str) -> None:
    """Training mean response (over the episodes that ended in each chunk) and the periodic
    evaluation's `best_metric`, against updates."""
    from matplotlib.figure import Figure

    def series(key):
        pts = [(r["update"], r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig = Figure(figsize=(7.5, 4.2), dpi=110)
    ax = fig.subplots()
    x, y = series("train/mean_response")
    ax.plot(x, y, color="tab:blue", lw=1.2, label="training episodes: mean response (s)")
    ax.set_xlabel("PPO update")
    ax.set_ylabel("mean response (s)", color="tab:blue")
    ax.grid(alpha=0.3)
    x2, y2 = series(best_metric)
    if x2:
        ax2 = ax.twinx()
        ax2.plot(x2, y2, "o-", color="tab:red", lw=1.2, ms=3, label=f"evaluation: {best_metric}")
        ax2.set_ylabel(best_metric, color="tab:red")
    ax.set_title("learning curve", fontsize=10)
    fig.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
