#!/usr/bin/env bash
# What jaxsched does on a GPU, in one run (about 12 minutes on one H100/H200), written to one JSON file:
#   1. env throughput: python -m envs.bench at 4,096 / 16,384 / 65,536 envs for N = 16 and 48;
#   2. training throughput: python -m train.bench --preset gpu;
#   3. K-seed scaling: the same with --num_seeds = 1, 4, 16;
#   4. a 5-minute gpu-preset training run (SIGTERM after 300 s: it checkpoints and exits 0) and its
#      learning curve (history.jsonl, curve.png).
#
#   bash scripts/gpu_check.sh [OUT_DIR]          # default OUT_DIR: gpu_check/
#
# Runs on a stock JAX GPU install (jax 0.10.2 - 0.12.x with CUDA; flax, optax, chex, orbax present).
# If the project is not installed it installs it with --no-deps; jraph and wandb are not needed for
# any of this (wandb is disabled, jraph only serves the reference encoder).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
PY=${PYTHON:-python3}

if ! $PY -c "import envs, jaxsched, train" 2>/dev/null; then
  $PY -m pip install -q --no-deps -e . || { echo "gpu_check: could not install the project" >&2; exit 1; }
fi
$PY - <<'EOF' || exit 1
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), [d.device_kind for d in jax.devices()])
if jax.default_backend() != "gpu":
    print("gpu_check: no GPU backend; the figures below would be CPU figures", flush=True)
EOF

step() {  # step NAME TIMEOUT_S CMD...: run CMD, keep its last stdout line (a JSON object) in $OUT/NAME.json
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" >&2
  timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  tail -n 1 "$OUT/$name.out" >"$OUT/$name.json"
  [ $rc -eq 0 ] || echo "   (exit $rc; see $OUT/$name.err)" >&2
}

for n in 16 48; do
  for e in 4096 16384 65536; do
    step "env_n${n}_e${e}" 120 $PY -m envs.bench --servers $n --envs $e --steps 256 --reference-decisions 0 --json
  done
done
step train_gpu 240 $PY -m train.bench --preset gpu --updates_per_chunk=4 --repeats=3 --json
for k in 1 4 16; do
  step "seeds_k${k}" 240 $PY -m train.bench --preset gpu --num_envs=256 --num_seeds=$k --updates_per_chunk=4 --repeats=3 --json
done

echo "== five-minute training run" >&2
timeout -s TERM 300 $PY -m train.ppo --preset gpu --wandb_mode=disabled --progress=false \
  --checkpoint_dir="$OUT/runs" --wandb_name=five-minutes >"$OUT/train.out" 2>"$OUT/train.err"
echo "   exit $? (124 or 0: stopped by the time limit and checkpointed)" >&2

$PY - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
def read(path):
    try:
        return json.loads(open(path).read().strip() or "null")
    except (OSError, ValueError):
        return None
import jax
result = {"jax": jax.__version__, "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
          "env_bench": {}, "train_bench": read(f"{out}/train_gpu.json"), "seed_scaling": {}, "learning_curve": []}
for path in sorted(glob.glob(f"{out}/env_n*_e*.json")):
    result["env_bench"][os.path.basename(path)[4:-5]] = read(path)
for path in sorted(glob.glob(f"{out}/seeds_k*.json")):
    result["seed_scaling"][os.path.basename(path)[6:-5]] = read(path)
hist = f"{out}/runs/five-minutes/history.jsonl"
if os.path.exists(hist):
    keep = ("update", "perf/wall_s", "perf/decisions", "perf/decisions_per_s", "train/mean_response",
            "eval/16/mean_response", "eval/16/norm_mean_response", "eval/16/vs_eft_mean_response")
    result["learning_curve"] = [{k: r.get(k) for k in keep} for r in map(json.loads, open(hist))]
json.dump(result, open(f"{out}/gpu_check.json", "w"), indent=1)
print(json.dumps({k: v for k, v in result.items() if k != "learning_curve"}, indent=1))
print(f"wrote {out}/gpu_check.json ({len(result['learning_curve'])} learning-curve points)")
EOF
