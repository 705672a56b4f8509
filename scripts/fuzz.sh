#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz for SECONDS each, one after another, on a copy of their
# seed corpus (and their checked-in crash inputs), and prints one line per target: executions,
# exec/s, coverage (libFuzzer's final cov:/ft:), and what was found. Exit status 1 when anything
# was found (a crash, timeout, out-of-memory, leak or sanitizer report); the inputs that caused it
# are kept under the results folder. tests/fuzz/README.md has the details.
#
#   scripts/fuzz.sh SECONDS [target...]      targets: the names of tests/fuzz/fuzz_<name>.cpp
#
# Environment: QB_FUZZ_BUILD (default build-fuzz; configured with clang here when it has no
# CMakeCache.txt), QB_FUZZ_RESULTS (default fuzz-results/<UTC time>), QB_FUZZ_JOBS (build -j, 2).
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [target...]" >&2
  exit 2
fi
seconds=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QB_FUZZ_BUILD:-$root/build-fuzz}
results=${QB_FUZZ_RESULTS:-$root/fuzz-results/$(date -u +%Y%m%dT%H%M%SZ)}

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for source in "$root"/tests/fuzz/fuzz_*.cpp; do
    name=$(basename "$source" .cpp)
    name=${name#fuzz_}
    [[ $name == main || $name == support ]] || targets+=("$name")
  done
fi

if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUANTBENCH_CUDA=OFF \
    -DQUANTBENCH_FUZZ=ON >/dev/null
fi
cmake --build "$build" -j "${QB_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz_}" >/dev/null

mkdir -p "$results"
# A sanitizer report aborts the input (libFuzzer keeps it as crash-<sha1>); leaks are checked too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

echo "fuzz: ${seconds} s per target, $(getconf _NPROCESSORS_ONLN) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), results in $results"
printf '%-18s %12s %8s %7s %7s %6s %7s %8s %5s %5s %9s\n' target executions exec/s cov ft corpus crashes timeouts ooms leaks sanitizer
found=0
for name in "${targets[@]}"; do
  out=$results/$name
  mkdir -p "$out/corpus" "$out/artifacts"
  for seeds in "$root/tests/fuzz/corpus/$name" "$root/tests/fuzz/regressions/$name"; do
    [[ -d $seeds ]] && cp -r "$seeds/." "$out/corpus/"
  done
  # The target's dictionary, with JSON's tokens and those of the dictionaries its "# with:" line names.
  dict=()
  own=$root/tests/fuzz/dict/$name.dict
  if [[ -f $own ]]; then
    with=$(sed -n 's/^# with: //p' "$own")
    for part in json $with $name; do cat "$root/tests/fuzz/dict/$part.dict"; done >"$out/dictionary.dict"
    dict=("-dict=$out/dictionary.dict")
  fi
  # -timeout=10: the default (1200 s) would let one hang take the whole run; every seed is read in
  # well under 0.1 s even instrumented, so 10 s is a hang (an unbounded loop a header asked for),
  # not a slow machine. -rss_limit_mb=2048 also caps single allocations (a size taken from a header).
  set +e
  "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" "${dict[@]}" "$out/corpus" >"$out/log.txt" 2>&1
  rc=$?
  set -e
  stat() { grep -m1 "^stat::$1:" "$out/log.txt" | awk '{print $2}' || true; }
  last=$(grep -E '^#[0-9]+.*cov: ' "$out/log.txt" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corpus=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  count() { find "$out/artifacts" -name "$1-*" | wc -l; }
  crashes=$(count crash) timeouts=$(count timeout) ooms=$(count oom) leaks=$(count leak)
  sanitizer=$(grep -cE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$out/log.txt" || true)
  printf '%-18s %12s %8s %7s %7s %6s %7s %8s %5s %5s %9s\n' "$name" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "${cov:--}" "${ft:--}" "${corpus:--}" "$crashes" "$timeouts" "$ooms" "$leaks" "$sanitizer"
  if [[ $rc -ne 0 || $crashes -ne 0 || $timeouts -ne 0 || $ooms -ne 0 || $leaks -ne 0 || $sanitizer -ne 0 ]]; then
    found=1
    echo "  -> $out/log.txt; inputs in $out/artifacts/"
  fi
done
exit $found
