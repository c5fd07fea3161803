#!/usr/bin/env bash
# Report and brittleness over a big store: wall time and peak RSS of `cliffprobe report`
# (text and JSON), `cliffprobe brittleness --format json`, both together, `cliffprobe tiers`
# (text and JSON; the same walk as the report's measured-tiers section) and `cliffprobe trend`,
# reading the run's brief snapshot (which the sweep leaves) and, for report and brittleness,
# walking the tables instead (a run without a current snapshot), on a run of CASES cases (default 1,000,000: two built-in mock models x 500,000 variant samples, filled
# offline with the mock provider, which answers differently per variant so every section of the
# report has content: regressions, flips, brittle probes).
#
# Env: CASES (1000000); STORE_DIR=DIR reuses (or keeps) the project in DIR instead of a temp
#      dir, so the store is filled once; SKIP_BUILD=1; OUT (target/bench/analysis.json).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CASES="${CASES:-1000000}"; OUT="${OUT:-$OUT_DIR/analysis.json}"
ensure_gnu_time
build_release

if [ -n "${STORE_DIR:-}" ]; then
  W="$STORE_DIR"; mkdir -p "$W"
else
  W="$(new_workdir)"; trap 'rm -rf "$W"' EXIT
fi

fill_analysis_store "$W" "$CASES"
db_mb="$(du -sm "$W/.cliffprobe" | awk '{print $1}')"
# Read the store once before timing: otherwise the first row pays for reading it from disk
# when a bigger file (the memory bench's 1,000,000-case store) pushed it out of the page cache,
# and the rows would not compare with each other.
cat "$W/.cliffprobe/"* >/dev/null

rows=()
measure() {
  local label="$1"; shift
  timed_sweep "$W" "$label" "$@" || true
  printf 'analysis %-28s %8d cases: wall %6.2f s, max RSS %6.1f MB, CPU %6.2f s (store %s MB)\n' \
    "$label" "$CASES" "$T_WALL" "$(awk -v k="$T_RSS_KB" 'BEGIN{print k/1024}')" "$T_CPU" "$db_mb"
  rows+=("{\"what\": \"$label\", \"cases\": $CASES, \"wall_s\": $T_WALL, \"cpu_s\": $T_CPU, \"max_rss_kb\": $T_RSS_KB}")
}
# The sweep leaves the run's brief snapshot, and every row but the "-tables" ones reads it, as
# every analysis after a sweep does. "-tables": the first analysis of a run that has no current
# snapshot (a store from before schema 4, a run changed since by something other than a sweep),
# which walks the tables and writes it (forced with CLIFFPROBE_BRIEF_SNAPSHOT=rebuild).
TABLES="CLIFFPROBE_BRIEF_SNAPSHOT=rebuild"
measure report-json-tables env "$TABLES" "$BIN" report --format json
measure brittleness-json-tables env "$TABLES" "$BIN" brittleness --format json
measure report+brittleness-tables sh -c "$TABLES '$BIN' report --format json >/dev/null && '$BIN' brittleness --format json"
measure report-text "$BIN" report
measure report-json "$BIN" report --format json
measure brittleness-json "$BIN" brittleness --format json
measure report+brittleness sh -c "'$BIN' report --format json >/dev/null && '$BIN' brittleness --format json"
measure tiers-text "$BIN" tiers
measure tiers-json "$BIN" tiers --format json
measure trend "$BIN" trend

write_runs_json "$OUT" "\"bench\": \"analysis\", \"unix_time\": $(date +%s), \"cases\": $CASES, \"store_mb\": $db_mb, \"cpus\": $(nproc)" ${rows[@]+"${rows[@]}"}
log "wrote $OUT"
