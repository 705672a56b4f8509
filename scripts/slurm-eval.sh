#!/usr/bin/env bash
# One eval run split over a Slurm array, one GPU per shard, then merged exactly (eval/shard_merge.h):
# task I of N runs `quantbench eval ... --shard I/N` on windows [I*W/N, (I+1)*W/N) and writes
# OUT_DIR/shard-I.json; a job that starts when every task succeeded (afterok) merges them into
# OUT_DIR/run.json (the numbers of the unsharded run, bit for bit) and OUT_DIR/run.md.
#
#   scripts/slurm-eval.sh OUT_DIR EVAL_FLAGS...     from a login node: submits the array and the merge
#
# e.g. scripts/slurm-eval.sh runs/llama2-70b --model /models/Llama-2-70b-hf --dataset wiki.test.raw \
#        --methods fp16,awq --calib valid.txt --device cuda
#
# Environment: QB_BIN (default: quantbench on PATH), QB_SHARDS (array size, default 8), QB_SBATCH_ARGS
# (extra sbatch options for both jobs, e.g. "--partition=gpu --account=me"). The #SBATCH lines below
# are the array's defaults; sbatch options given on its command line override them.
#
#SBATCH --job-name=quantbench-eval
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=08:00:00
#SBATCH --output=%x-%A_%a.out
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUT_DIR [quantbench eval flags...]" >&2
  exit 2
fi
out=$1
shift

if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
  # One array task: one shard. SLURM_ARRAY_TASK_COUNT is Slurm's; older versions give only the maximum.
  count=${SLURM_ARRAY_TASK_COUNT:-$((SLURM_ARRAY_TASK_MAX + 1))}
  exec "${QB_BIN:-quantbench}" eval "$@" --shard "$SLURM_ARRAY_TASK_ID/$count" \
    --out "$out/shard-$SLURM_ARRAY_TASK_ID.json"
fi

# Submitting. Absolute paths: the tasks run from Slurm's copy of this script, maybe elsewhere.
shards=${QB_SHARDS:-8}
if ! [[ $shards =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: QB_SHARDS must be a positive integer, got '$shards'" >&2
  exit 2
fi
bin=$(command -v "${QB_BIN:-quantbench}") || { echo "$0: ${QB_BIN:-quantbench} not found; set QB_BIN" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
read -r -a extra <<<"${QB_SBATCH_ARGS:-}"

array=$(sbatch --parsable "${extra[@]}" --array="0-$((shards - 1))" --export=ALL,QB_BIN="$bin" \
  --output="$out/slurm-%A_%a.out" "$0" "$out" "$@")
array=${array%%;*}  # "jobid;cluster" on federated clusters

inputs=()
for ((i = 0; i < shards; i++)); do inputs+=("$out/shard-$i.json"); done
printf -v merge '%q ' "$bin" report "${inputs[@]}" --merged-out "$out/run.json" --markdown "$out/run.md"
merge_job=$(sbatch --parsable "${extra[@]}" --job-name=quantbench-merge --dependency="afterok:$array" \
  --output="$out/slurm-merge-%j.out" --wrap "$merge")
merge_job=${merge_job%%;*}

echo "submitted eval array $array ($shards shards, windows split evenly) and merge job $merge_job"
echo "when done: $out/run.json (merged run document), $out/run.md; per shard: $out/shard-I.json"
