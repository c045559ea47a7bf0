"""`python -m analysis.execute_notebook analysis/notebooks/NAME.py`: run a notebook and save its outputs.

Executes the jupytext percent file in a fresh kernel (from the repository root, with the kernel's
inline figures, so plots become outputs a reader sees on the web) and writes the paired `.ipynb`
with every output, atomically. Settings reach the notebook as environment variables
(`JAXSCHED_STUDY=DIR python -m analysis.execute_notebook analysis/notebooks/scale_study.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from analysis.paths import ROOT
from envs.files import atomic_write_text


def execute(path: str, out: str | None = None, timeout: int = 600):
    """Run the notebook `path` (.py or .ipynb) and write it with its outputs to `out` (default: the
    paired .ipynb). Raises RuntimeError naming the cell that failed."""
    import jupytext
    import nbclient
    import nbformat

    nb = jupytext.read(path)
    env_backend = os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend keeps the figures
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": ROOT}}).execute()
    except nbclient.exceptions.CellExecutionError as e:
        last = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[-1]  # without the terminal colours
        raise RuntimeError(f"{path}: a cell failed: {last}") from None
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    out = out or os.path.splitext(path)[0] + ".ipynb"
    atomic_write_text(out, nbformat.writes(nb))
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.execute_notebook", description=__doc__.splitlines()[0])
    ap.add_argument("notebook", help="a jupytext .py (or .ipynb) under analysis/notebooks/")
    ap.add_argument("--out", help="where to write the executed .ipynb (default: the paired .ipynb)")
    a = ap.parse_args(argv)
    if not os.path.exists(a.notebook):
        ap.error(f"{a.notebook}: no such file")
    try:
        nb = execute(a.notebook, a.out)
    except (RuntimeError, ImportError) as e:
        ap.error(str(e))
    figures = sum(o.get("output_type") == "display_data" for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []))
    print(f"executed {a.notebook}: {figures} figures; wrote {a.out or os.path.splitext(a.notebook)[0] + '.ipynb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
