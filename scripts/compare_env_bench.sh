#!/usr/bin/env bash
# Env throughput of this checkout against an older commit and against Jumanji's JobShop, side by side.
#
#   scripts/compare_env_bench.sh [BASE_COMMIT] [ROUNDS]          # defaults: 0a55902 (before the kept counts), 2
#   JUMANJI_PYTHON=/tmp/jvenv/bin/python scripts/compare_env_bench.sh ...   # add JobShop-v0 (its own venv)
#
# Each round runs, one after another on the same machine: the base commit's `python -m envs.bench`
# (from a git worktree in $TMPDIR), this checkout's, with the reference simulator
# (`--servers 16 --envs 4096 --steps 256 --json`, issue 13's command), and, when JUMANJI_PYTHON is
# set, scripts/bench_jumanji.py at 4096 envs and 256 steps. Prints every figure and the medians.
set -euo pipefail
base_commit=${1:-0a55902}
rounds=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
wt=${TMPDIR:-/tmp}/jaxsched-base-$base_commit
[ -d "$wt" ] || git -C "$here" worktree add --detach "$wt" "$base_commit" >/dev/null
bench=(--servers 16 --envs 4096 --steps 256 --json)
last_json() { python -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read().strip().splitlines()[-1])))'; }
rows=()
for r in $(seq "$rounds"); do
  b=$(cd "$wt" && PYTHONPATH="$wt" python -m envs.bench "${bench[@]}" --reference-decisions 0 2>/dev/null | last_json)
  n=$(cd "$here" && PYTHONPATH="$here" python -m envs.bench "${bench[@]}" 2>/dev/null | last_json)
  j=null
  if [ -n "${JUMANJI_PYTHON:-}" ]; then
    j=$("$JUMANJI_PYTHON" "$here/scripts/bench_jumanji.py" --envs 4096 --steps 256 2>/dev/null | last_json)
  fi
  echo "round $r: base $b"
  echo "round $r: this $n"
  echo "round $r: jumanji $j"
  rows+=("{\"base\": $b, \"new\": $n, \"jumanji\": $j}")
done
python - "$base_commit" "${rows[@]}" <<'PY'
import json, statistics, sys
base_commit, rows = sys.argv[1], [json.loads(x) for x in sys.argv[2:]]
med = statistics.median
b = [r["base"]["jax_decisions_per_s"] for r in rows]
n = [r["new"]["jax_decisions_per_s"] for r in rows]
ref = [r["new"]["reference_decisions_per_s"] for r in rows]
print(f"median decisions/s: base {base_commit} {med(b):,.0f}, this checkout {med(n):,.0f} "
      f"({med(y / x for x, y in zip(b, n)):.2f}x), reference {med(ref):,.0f} "
      f"(this checkout / reference {med(r['new']['ratio'] for r in rows):.0f}x)")
if rows[0]["jumanji"] is not None:
    jm = [med(r["jumanji"]["steps_per_s"]) for r in rows]
    print(f"JobShop-v0 steps/s (median of its repeats, per round): {', '.join(f'{x:,.0f}' for x in jm)}; "
          f"this checkout / JobShop per round: {', '.join(f'{y / x:.2f}' for x, y in zip(jm, n))}")
PY
