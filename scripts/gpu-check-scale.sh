#!/usr/bin/env bash
# The issue-9 GPU checks in one call, for a lent Hopper (H100/H200) machine: build, the three tests
# that skip without a GPU (the fused fake-quantization kernel against the CPU's RTN, the GPU AWQ
# search's decisions against the CPU's, offloaded against resident weights), then AWQ of one
# Llama-2-7B-shaped block at the paper's calibration size (128 x 512) with its seconds per block,
# and a 2-layer 7B-shaped FP16 eval resident and with --offload (the perplexities must be equal).
#
#   scripts/gpu-check-scale.sh [OUT_DIR]      (default: $OUT, else /tmp/qb-gpu-check)
#
# Environment: QUANTBENCH_DATA (default ../shared/data, else ./shared/data), JOBS (build jobs,
# default nproc). Prints a summary last; full logs go to OUT_DIR.
set -euo pipefail
out=${1:-${OUT:-/tmp/qb-gpu-check}}
mkdir -p "$out"
data=${QUANTBENCH_DATA:-$( [ -d ../shared/data ] && echo ../shared/data || echo shared/data )}
export QUANTBENCH_DATA=$(cd "$data" && pwd)
build=build-gpu-check
summary=()

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQUANTBENCH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >"$out/cmake.log"
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target quantbench test_kernels_fake_quant test_gpu_awq_search \
  test_gpu_offload >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }

for t in kernels/test_kernels_fake_quant gpu/test_gpu_offload gpu/test_gpu_awq_search; do
  if "$build/tests/$t" --durations yes >"$out/$(basename "$t").log" 2>&1; then
    summary+=("PASS $t")
  else
    summary+=("FAIL $t (rc $?): see $out/$(basename "$t").log")
  fi
done

qb=$build/src/cli/quantbench
model=$out/llama-2-7b-l2
tokenizer=$QUANTBENCH_DATA/models/stories-d256-l2/tokenizer.model  # ids < 512: valid in any 32000 vocab
text=$QUANTBENCH_DATA/text/tinystories/tinystories_train_head.txt
rm -rf "$model"
"$qb" generate --shape llama-2-7b --layers 2 --out "$model" >"$out/generate.log" 2>&1
"$qb" quantize --model "$model" --tokenizer "$tokenizer" --method awq --calib "$text" \
  --calib-samples 128 --calib-seq-len 512 --device cuda --report "$out/awq-7b-l2.json" >"$out/awq.log" 2>&1 &&
  summary+=("$(grep -E '^awq: block' "$out/awq.log" | sed 's/.*; //' | tr '\n' ' ' | sed 's/^/AWQ 7B block seconds: /')") ||
  summary+=("FAIL awq quantize: see $out/awq.log")

for mode in resident offload; do
  flag=""; [ "$mode" = offload ] && flag=--offload
  "$qb" eval --model "$model" --tokenizer "$tokenizer" --dataset "$text" --methods fp16 --ctx 512 \
    --max-windows 4 --device cuda $flag --out "$out/eval-$mode.json" >"$out/eval-$mode.log" 2>&1 ||
    summary+=("FAIL eval $mode: see $out/eval-$mode.log")
done
summary+=("eval fp16 resident: $(grep -E '^fp16' "$out/eval-resident.log" || true)")
summary+=("eval fp16 offload:  $(grep -E '^fp16' "$out/eval-offload.log" || true)")
rm -rf "$model"
printf '%s\n' "${summary[@]}"
