#!/usr/bin/env bash
# The evidence of issue 22, resumable: run it again after a kill and it goes on where it stopped.
# 1. a default search for T = 10 ms (T = 20 ms: the fresh-clone `make search` run kept in results/winners);
# 2. the baseline networks of both targets chosen (latency measured: run this alone on the machine);
# 3. every network trained under 3 seeds (nas.train, 20,000 training images, 6 epochs), measured side by
#    side, and the tables written.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN10=runs/search-t10
if [ ! -f "$RUN10/best.yaml" ]; then
  if [ -d "$RUN10" ]; then resume=(--resume); else resume=(); fi
  $PY -m nas search --target-latency 10ms --name search-t10 "${resume[@]}"
fi
mkdir -p experiments/results/winners/search-t10
cp "$RUN10"/{best.yaml,config.json,report.md,trials.csv} experiments/results/winners/search-t10/
compare() {  # TARGET_MS RUN [flags]
  local ms=$1 run=$2; shift 2
  $PY -W ignore experiments/compare_at_target.py "$run" --subset 20000 --work "runs/compare_at_target/t$ms" --quiet "$@"
}
compare 20 experiments/results/winners/search-20261203-104311 --choose-only
compare 10 experiments/results/winners/search-t10 --choose-only
compare 20 experiments/results/winners/search-20261203-104311 --out experiments/results/compare_at_target_20ms.md
compare 10 experiments/results/winners/search-t10 --out experiments/results/compare_at_target_10ms.md
