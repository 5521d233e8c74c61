#!/usr/bin/env bash
# The evidence of issue 22, resumable: run it again after a kill and it goes on where it stopped.
# 1. a default search for T = 10 ms (T = 20 ms: the fresh-clone `make search` run kept in results/winners);
# 2. the baseline networks of both targets chosen (latency measured: run this alone on the machine);
# 3. every network trained under 3 seeds, measured side by side, and the tables written.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN20=experiments/results/winners/search-20261203-104311
RUN10=runs/search-t10
if [ ! -f "$RUN10/best.yaml" ]; then
  if [ -d "$RUN10" ]; then resume=(--resume); else resume=(); fi
  $PY -m nas search --target-latency 10ms --name search-t10 "${resume[@]}"
fi
mkdir -p experiments/results/winners/search-t10
cp "$RUN10"/{best.yaml,config.json,report.md,trials.csv} experiments/results/winners/search-t10/
RUN10=experiments/results/winners/search-t10
for run in "$RUN20" "$RUN10"; do
  $PY experiments/compare_at_target.py "$run" --choose-only --quiet
done
$PY experiments/compare_at_target.py "$RUN20" --quiet --out experiments/results/compare_at_target_20ms.md
$PY experiments/compare_at_target.py "$RUN10" --quiet --out experiments/results/compare_at_target_10ms.md
