#!/usr/bin/env bash
# Training throughput of this checkout against an older commit, side by side on one machine.
#
#   scripts/compare_train_bench.sh [BASE_COMMIT] [ROUNDS]     # defaults: 4358360 (before issue 12), 3
#
# Alternates the two (base, new, base, new, ...) so drifting machine load hits both alike, and
# prints each run's train_decisions_per_s and the median ratio. The base runs from a git worktree
# in $TMPDIR; nothing in this checkout changes.
set -euo pipefail
base_commit=${1:-4358360}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
wt=${TMPDIR:-/tmp}/jaxsched-base-$base_commit
[ -d "$wt" ] || git -C "$here" worktree add --detach "$wt" "$base_commit" >/dev/null
args=(--num_envs=32 --num_steps=64 --update_epochs=4 --num_minibatches=4 --embed_dim=64 --gnn_layers=2
      --hidden=128 --train_servers=16 --updates_per_chunk=2 --repeats=2 --json)
one() {  # $1: checkout directory
  (cd "$1" && PYTHONPATH="$1" python -m train.bench "${args[@]}" 2>/dev/null) |
    python -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["train_decisions_per_s"])'
}
base=() new=()
for r in $(seq "$rounds"); do
  b=$(one "$wt"); n=$(one "$here")
  echo "round $r: base $base_commit $b   this checkout $n decisions/s"
  base+=("$b"); new+=("$n")
done
python - "${base[*]}" "${new[*]}" <<'EOF'
import statistics, sys
b = [float(x) for x in sys.argv[1].split()]
n = [float(x) for x in sys.argv[2].split()]
print(f"median: base {statistics.median(b):.0f}, this checkout {statistics.median(n):.0f} decisions/s, "
      f"ratio {statistics.median(n) / statistics.median(b):.2f}x (per round: "
      + ", ".join(f"{y / x:.2f}" for x, y in zip(b, n)) + ")")
EOF
