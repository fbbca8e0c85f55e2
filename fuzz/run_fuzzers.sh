#!/usr/bin/env bash
# Runs saelab's fuzz targets (fuzz/*_fuzzer.cc) under libFuzzer with ASan and
# UBSan, one after another, each for MINUTES (default 10) or until it has
# executed --runs=N inputs, whichever comes first. Prints, per target, the
# inputs executed, the time taken and any finding (crash, leak, timeout or
# out-of-memory input).
#
#   fuzz/run_fuzzers.sh                          # every target, 10 minutes each
#   fuzz/run_fuzzers.sh 2 npy safetensors        # two targets, 2 minutes each
#   fuzz/run_fuzzers.sh --runs=1000000 60 json   # 1M inputs (or 60 minutes)
#
# Each target fuzzes a copy of its committed corpus (fuzz/corpus/<target>/
# plus fuzz/crashes/<target>/) in a scratch folder, so the committed corpus
# never grows; the scratch folder (printed at the end) keeps the grown
# corpus, the logs and the findings. Exit status 1 if any target found
# something, 2 for a usage error.
#
# Needs clang and libFuzzer's runtime (Debian's clang + libclang-rt-14-dev),
# installed here with apt if missing, as ./bazelw installs its packages. The
# build uses its own Bazel output base, so it does not displace the GCC
# build's outputs (and the disk cache keeps both). Environment:
#   SAELAB_FUZZ_MAX_LEN  largest input libFuzzer generates (default 65536;
#                        8192 for the tokenizer, see below)
#   SAELAB_FUZZ_OUT      scratch folder (default: a new one under /tmp)
#   SAELAB_FUZZ_ARGS     more libFuzzer flags, e.g. "-seed=1 -dict=x.dict"
set -euo pipefail

runs=-1
args=()
for arg in "$@"; do
  case "$arg" in
    --runs=*) runs=${arg#--runs=} ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"
minutes=10
if (($#)) && [[ $1 =~ ^[0-9]+$ ]]; then
  minutes=$1
  shift
fi

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

all_targets=()
for source in fuzz/*_fuzzer.cc; do
  name=${source#fuzz/}
  all_targets+=("${name%_fuzzer.cc}")
done
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [ ! -f "fuzz/${t}_fuzzer.cc" ]; then
    echo "run_fuzzers: no fuzz target '$t' (have: ${all_targets[*]})" >&2
    exit 2
  fi
done

# clang and libFuzzer's runtime, as ./bazelw installs its packages.
packages=(clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "run_fuzzers: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >/dev/null
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Its own output base (one per checkout): switching CC between builds in one
# output base would refetch the C++ toolchain each time. No convenience
# symlinks, so bazel-bin keeps pointing at the GCC build.
output_base="${XDG_CACHE_HOME:-$HOME/.cache}/saelab/bazel-fuzz-$(echo -n "$here" | md5sum | cut -c1-12)"
bazel=(./bazelw --output_base="$output_base")
build_flags=(--config=fuzz --symlink_prefix=/)
labels=()
for t in "${targets[@]}"; do labels+=("//fuzz:${t}_fuzzer"); done
echo "run_fuzzers: building ${labels[*]} (--config=fuzz)" >&2
"${bazel[@]}" build "${build_flags[@]}" "${labels[@]}"
bin=$("${bazel[@]}" info "${build_flags[@]}" bazel-bin 2>/dev/null)

out=${SAELAB_FUZZ_OUT:-$(mktemp -d /tmp/saelab-fuzz-run.XXXXXX)}
mkdir -p "$out"
# UBSan already aborts on its first report (-fno-sanitize-recover); ask it
# for the stack. Leak checking stays on (libFuzzer's default with ASan).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

found=0
summary=()
for t in "${targets[@]}"; do
  work="$out/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -r "fuzz/corpus/$t/." "$work/corpus/"
  if [ -d "fuzz/crashes/$t" ]; then cp -r "fuzz/crashes/$t/." "$work/corpus/"; fi
  # Largest input generated: 64 KiB keeps the 100,000-level seeds deep far
  # past the 256-level guard. The tokenizer is the exception, for speed (it
  # ran ~125 inputs/s instead of ~1,000): it loads its vocabulary twice per
  # input, so its time grows with the input (a valid vocabulary is ~2.5 KB);
  # and BpeTokenizer's per-thread Encode memo (bounded, kept between calls
  # by design) carries allocations from one input to the next, which makes
  # libFuzzer scan the whole heap for leaks after every input. Its leaks are
  # still checked at exit by the ASan replay test (test --config=fuzz).
  extra=()
  case "$t" in
    tokenizer)
      max_len=${SAELAB_FUZZ_MAX_LEN:-8192}
      extra=(-detect_leaks=0)
      ;;
    *) max_len=${SAELAB_FUZZ_MAX_LEN:-65536} ;;
  esac
  echo "run_fuzzers: $t: fuzzing for $minutes min or $runs runs, max_len $max_len ${extra[*]+"${extra[*]}"} (log: $work/fuzz.log)" >&2
  start=$(date +%s)
  status=0
  # One process, one worker: the machine's other core stays free. -timeout:
  # an input running a minute is a finding (a hang), not slowness.
  # shellcheck disable=SC2086
  "$bin/fuzz/${t}_fuzzer" "$work/corpus" \
    -max_total_time=$((minutes * 60)) -runs="$runs" -max_len="$max_len" -timeout=60 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "${extra[@]+"${extra[@]}"}" ${SAELAB_FUZZ_ARGS:-} >"$work/fuzz.log" 2>&1 || status=$?
  seconds=$(($(date +%s) - start))
  executed=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/fuzz.log" | awk '{print $2}' | tail -n 1)
  findings=$(find "$work/artifacts" -type f | sort)
  if [ -n "$findings" ] || [ "$status" -ne 0 ]; then
    found=1
    result="FINDING (exit $status): ${findings:-see the log}"
  else
    result="no finding"
  fi
  line=$(printf '%-15s %10s inputs %6ss  %s' "$t" "${executed:-?}" "$seconds" "$result")
  echo "$line" >&2
  summary+=("$line")
done

echo
echo "target              inputs    time  result"
printf '%s\n' "${summary[@]}"
echo "scratch folder (grown corpora, logs, findings): $out"
exit $found
