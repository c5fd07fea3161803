#!/usr/bin/env bash
# `cliffprobe view` over a big store: the time of each page (curl, from the request to the last
# byte), first visit and cached, and the server's memory, on the analysis bench's store (one
# run of CASES cases, default 1,000,000: two mock models x 500,000 variants, 500 probe
# families). The server is started on the store as a sweep left it (with its brief snapshot);
# it computes the latest runs' pages in the background from its start, so the first visit to
# the run page measures how long after the start a user waits at most.
#
# Env: CASES (1000000); STORE_DIR=DIR reuses (or keeps) the store in DIR (shared with
#      bench/analysis.sh); SKIP_BUILD=1; ROUNDS (5) repeats of the whole page set for the
#      memory check; OUT (target/bench/view.json).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CASES="${CASES:-1000000}"; OUT="${OUT:-$OUT_DIR/view.json}"; ROUNDS="${ROUNDS:-5}"
ensure_gnu_time
build_release
command -v curl >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

if [ -n "${STORE_DIR:-}" ]; then
  W="$STORE_DIR"; mkdir -p "$W"
else
  W="$(new_workdir)"; trap 'rm -rf "$W"' EXIT
fi
fill_analysis_store "$W" "$CASES"
db_mb="$(du -sm "$W/.cliffprobe" | awk '{print $1}')"
cat "$W/.cliffprobe/"* >/dev/null

(cd "$W" && exec "$BIN" view --port 0 >"$W/view.out" 2>"$W/view.err") &
VIEW_PID=$!
cleanup_view() { kill "$VIEW_PID" 2>/dev/null || true; wait "$VIEW_PID" 2>/dev/null || true; }
trap 'cleanup_view; [ -n "${STORE_DIR:-}" ] || rm -rf "$W"' EXIT
for _ in $(seq 1 100); do grep -q http "$W/view.out" 2>/dev/null && break; sleep 0.1; done
URL="$(grep -o 'http://[^ ]*' "$W/view.out" | head -1)"; URL="${URL%/}"
[ -n "$URL" ] || { log "the viewer did not start"; cat "$W/view.err" >&2; exit 1; }
rows=()
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$VIEW_PID/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$VIEW_PID/status"; }
page() {
  local label="$1" path="$2" code t size
  read -r code t size < <(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$URL$path")
  [ "$code" = 200 ] || { log "$label: HTTP $code for $path"; exit 1; }
  if [ "${QUIET_ROUND:-0}" = 0 ]; then
    printf 'view %-34s %8d cases: %7.3f s  %8d bytes\n' "$label" "$CASES" "$t" "$size"
    rows+=("{\"what\": \"$label\", \"cases\": $CASES, \"wall_s\": $t, \"bytes\": $size}")
  fi
}
first_link() { curl -s "$URL$1" | sed 's/&#x2f;/\//g; s/&amp;/\&/g' | grep -o "href=\"[^\"]*$2[^\"]*\"" | head -1 | sed 's/^href="//; s/"$//' || true; }

pages() {
  page "runs ($2)" "/"
  page "run ($2)" "/run/$RUN"
  page "run, baseline candidate ($2)" "/run/$RUN?baseline=candidate"
  page "family ($2)" "$FAMILY"
  page "cases, first page" "/run/$RUN/cases"
  page "cases, middle of the run" "/run/$RUN/cases?after=8~a~0"
  page "cases, model+status" "/run/$RUN/cases?model=candidate&status=fail"
  page "cases, tier+class+axis" "/run/$RUN/cases?tier=hard&class=reading+a+status+from+a+tool%27s+table+output&axis=format:xml"
  page "cases, probe" "/run/$RUN/cases?probe=bench-000001"
  page "cases, failed check" "/run/$RUN/cases?check=contains"
  page "cases, text (no match: scan bound)" "/run/$RUN/cases?q=NO-SUCH-TEXT"
  page "case" "$CASE"
  page "compare, changed only" "/compare?a=$RUN&am=prod&b=$RUN&bm=candidate&changed=1"
  page "diff" "$DIFF"
}
# The very first requests after the start: the runs page (counts and trend computed now), then
# the run page, which the server has been computing in the background since it started.
rss_start="$(rss_kb)"
page "runs (first visit)" "/"
RUN="$(curl -s "$URL/" | grep -o 'run&#x2f;r-[^"&]*' | head -1 | sed 's/run&#x2f;//')"
log "viewer at $URL, run $RUN"
page "run (first visit, right after the start)" "/run/$RUN"
FAMILY="$(first_link "/run/$RUN" '/family/')"
CASE="$(first_link "/run/$RUN/cases?model=candidate&status=fail" '/case/')"
DIFF="$(first_link "/compare?a=$RUN&am=prod&b=$RUN&bm=candidate&changed=1" '/diff?')"
[ -n "$FAMILY" ] && [ -n "$CASE" ] && [ -n "$DIFF" ] || { log "no family, case or diff link found"; exit 1; }
pages x "round 1"
rss_first="$(rss_kb)"
pages x "round 2, cached"
for _ in $(seq 2 "$ROUNDS"); do QUIET_ROUND=1 pages x x; done
rss_end="$(rss_kb)"; hwm="$(hwm_kb)"
printf 'view %-34s %8d cases: RSS %.1f MB at start, %.1f MB after round 1, %.1f MB after %d rounds; peak %.1f MB (store %s MB)\n' \
  "server memory" "$CASES" "$(awk -v k="$rss_start" 'BEGIN{print k/1024}')" "$(awk -v k="$rss_first" 'BEGIN{print k/1024}')" \
  "$(awk -v k="$rss_end" 'BEGIN{print k/1024}')" "$ROUNDS" "$(awk -v k="$hwm" 'BEGIN{print k/1024}')" "$db_mb"
rows+=("{\"what\": \"server memory\", \"cases\": $CASES, \"rss_start_kb\": $rss_start, \"rss_first_round_kb\": $rss_first, \"rss_end_kb\": $rss_end, \"rounds\": $ROUNDS, \"max_rss_kb\": $hwm}")

write_runs_json "$OUT" "\"bench\": \"view\", \"unix_time\": $(date +%s), \"cases\": $CASES, \"store_mb\": $db_mb, \"cpus\": $(nproc)" ${rows[@]+"${rows[@]}"}
log "wrote $OUT"
