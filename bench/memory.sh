#!/usr/bin/env bash
# Peak RSS of `cliffprobe sweep` as the plan grows: 10,000 / 100,000 (/ 1,000,000 with FULL=1)
# cases against the peers' nginx fake endpoint, one uncached sweep per size, each in a fresh
# project and store. The planner streams the expansion, so RSS should not grow with the plan.
#
# Env: FULL=1 adds 1,000,000 cases (long); SIZES ("10000 100000", overrides the list);
#      MAX_CASES caps the list; CONC (64); PROVIDER (openai | mock); SKIP_BUILD=1;
#      SWEEP_TIMEOUT (7200) s per sweep; KEEP=1; OUT (target/bench/memory.json).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CONC="${CONC:-64}"; PROVIDER="${PROVIDER:-openai}"; OUT="${OUT:-$OUT_DIR/memory.json}"
SWEEP_TIMEOUT="${SWEEP_TIMEOUT:-7200}"
if [ -z "${SIZES:-}" ]; then
  SIZES="10000 100000"
  if [ "${FULL:-0}" = 1 ]; then SIZES="$SIZES 1000000"; fi
fi
if [ -n "${MAX_CASES:-}" ]; then
  capped=""
  for n in $SIZES; do [ "$n" -le "$MAX_CASES" ] && capped="$capped $n"; done
  SIZES="${capped# }"
fi
[ -n "$SIZES" ] || { log "no sizes left (MAX_CASES=${MAX_CASES:-})"; exit 1; }

ensure_gnu_time
build_release
WORKS=()
cleanup() {
  stop_nginx_if_started
  local d
  for d in ${WORKS[@]+"${WORKS[@]}"}; do
    if [ "${KEEP:-0}" = 1 ]; then log "kept $d"; else rm -rf "$d"; fi
  done
}
trap cleanup EXIT
USE_NGINX=0
if [ "$PROVIDER" = openai ]; then
  have_peers || { log "no peers bench at $PEERS_PATH (set PEERS_DIR, or PROVIDER=mock)"; exit 1; }
  ensure_nginx
  USE_NGINX=1
fi
MODEL="$([ "$PROVIDER" = openai ] && echo nginx || echo mock)"

rows=()
for n in $SIZES; do
  W="$(new_workdir)"; WORKS+=("$W")
  make_project "$W" "$n" "$PROVIDER" "$CONC"
  before="$(requests_now)"
  log "$n cases: cliffprobe sweep -q --no-cache --concurrency $CONC ${SWEEP_ARGS[*]}"
  timed_sweep "$W" nocache timeout -s INT "$SWEEP_TIMEOUT" "$BIN" sweep -q --no-cache --concurrency "$CONC" "${SWEEP_ARGS[@]}"
  after="$(requests_now)"
  cases="$(summary_field "$W/nocache.out" "$MODEL" cases)"; err="$(summary_field "$W/nocache.out" "$MODEL" error)"
  if [ "$cases" != "$n" ] || [ "$err" != 0 ]; then
    log "summary shows cases='$cases' error='$err', want $n and 0:"; cat "$W/nocache.out" >&2; exit 1
  fi
  sent=null
  if [ "$USE_NGINX" = 1 ]; then
    sent=$(( after - before - 1 ))
    if [ "$sent" -ne "$n" ]; then log "expected $n requests at nginx, saw $sent"; exit 1; fi
  fi
  db_kb="$(du -sk "$W/.cliffprobe" | awk '{print $1}')"
  printf 'memory %8d cases: max RSS %7.1f MB, wall %7.2f s = %6.0f cases/s, CPU %6.1f us/case, store %6.1f MB%s\n' \
    "$n" "$(awk -v k="$T_RSS_KB" 'BEGIN{print k/1024}')" "$T_WALL" "$(awk -v n="$n" -v w="$T_WALL" 'BEGIN{print n/w}')" \
    "$(awk -v n="$n" -v c="$T_CPU" 'BEGIN{print c*1e6/n}')" "$(awk -v k="$db_kb" 'BEGIN{print k/1024}')" \
    "$([ "$sent" != null ] && echo ", $sent requests at nginx")"
  rows+=("{\"cases\": $n, \"probes\": $PROBES, \"variants_per_probe\": $PER_PROBE, \"max_rss_kb\": $T_RSS_KB, \"wall_s\": $T_WALL, \"cpu_s\": $T_CPU, \"store_kb\": $db_kb, \"requests_at_nginx\": $sent}")
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; fi
done
write_runs_json "$OUT" "\"bench\": \"memory\", \"unix_time\": $(date +%s), \"provider\": \"$PROVIDER\", \"concurrency\": $CONC, \"cpus\": $(nproc)" ${rows[@]+"${rows[@]}"}
log "wrote $OUT"
