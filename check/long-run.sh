#!/usr/bin/env bash
# A long checker run: seeds one after another, each for the given duration, until the total
# time is spent. Usage: check/long-run.sh [total, default 30m] [first seed, default 100]
# [seed duration, default = total]. Histories go to a directory named in the output; the exit
# status is 1 if any seed found an anomaly.
set -uo pipefail
cd "$(dirname "$0")/.."
total=${1:-30m}
seed=${2:-100}
each=${3:-$total}
secs() { case $1 in *ms) echo $(( ${1%ms} / 1000 ));; *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }
end=$(( $(date +%s) + $(secs "$total") ))
dir=$(mktemp -d "${TMPDIR:-/tmp}/sidecache-check-long-XXXXXX")
npm run build >/dev/null || exit 2
status=0
for _ in $(seq 1 1000); do
  [ "$(date +%s)" -lt "$end" ] || break
  TS_NODE_TRANSPILE_ONLY=1 node --import=@tapjs/typescript/import check/main.ts --seed="$seed" --duration="$each" --history-dir="$dir"
  rc=$?
  [ $rc -eq 0 ] || status=1
  [ $rc -le 1 ] || { echo "long-run: the checker could not run seed $seed (exit $rc)"; exit 2; }
  seed=$(( seed + 1 ))
done
echo "long-run: histories in $dir"
exit $status
