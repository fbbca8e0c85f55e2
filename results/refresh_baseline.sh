#!/usr/bin/env bash
# Refreshes a committed baseline on purpose, recording why:
#
#   results/refresh_baseline.sh EXPERIMENT "why the numbers moved"
#
# Needs a clean tree (baselines carry the commit they came from), reruns
# //experiments:EXPERIMENT into results/runs/EXPERIMENT/baseline-<commit>,
# copies its as-run config, result, plots and circuit graphs into results/baselines/EXPERIMENT/,
# appends a line to results/baselines/HISTORY.md, regenerates
# results/REPLICATION.md, and prints the old-vs-new comparison. Commit the
# result yourself after reading that table.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 2 || -z "$2" ]]; then
  echo "usage: results/refresh_baseline.sh EXPERIMENT \"why\"" >&2
  exit 2
fi
experiment="$1"
why="$2"
if [[ ! -f "experiments/${experiment}.textproto" ]]; then
  echo "error: experiments/${experiment}.textproto does not exist" >&2
  exit 2
fi
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "error: the tree has uncommitted changes; a baseline must come from a clean commit" >&2
  exit 1
fi
commit="$(git rev-parse --short=10 HEAD)"
run_dir="$PWD/results/runs/${experiment}/baseline-${commit}"
./bazelw run "//experiments:${experiment}" -- --run_dir="${run_dir}"
target="results/baselines/${experiment}"
old="$(mktemp -d)"
if [[ -d "${target}" ]]; then cp -r "${target}/." "${old}/"; fi
mkdir -p "${target}"
cp "${run_dir}/config.textproto" "${run_dir}/result.textproto" "${target}/"
cp "${run_dir}"/*.png "${run_dir}"/*.svg "${target}/" 2>/dev/null || true
# Pages an experiment writes beside its result (circuit graphs).
if [[ -d "${run_dir}/circuits" ]]; then rm -rf "${target}/circuits"; cp -r "${run_dir}/circuits" "${target}/"; fi
echo "- $(date -u +%Y-%m-%d) \`${experiment}\` from commit \`${commit}\`: ${why}" \
  >> results/baselines/HISTORY.md
./bazelw run //results:replication -- --write
if [[ -f "${old}/result.textproto" ]]; then
  ./bazelw run //results:compare -- "${old}" "$PWD/${target}"
fi
echo "refreshed ${target}; review the table above, then commit it"
