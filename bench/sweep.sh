#!/usr/bin/env bash
# Sweep throughput of `cliffprobe sweep` against the peers' fake OpenAI endpoint (nginx on
# 127.0.0.1:18080, canned reply), timed as one whole process with GNU time, then a cached
# re-run, then the endpoint's physical limit (wrk) in the same pass.
#
# Env: CASES (100000) cases per sweep; CONC (64) --concurrency and the model's max_concurrency;
#      SKIP_LIMIT=1 skips the wrk limit; LIMIT_DURATION (5) s per wrk run;
#      PROVIDER (openai | mock; default openai = nginx); SKIP_BUILD=1; BUILD_RETRIES (0);
#      SWEEP_TIMEOUT (3600) s per sweep; KEEP=1 keeps the temp project;
#      STORE (the project's SQLite file; postgresql://… for the team store, an empty database);
#      OUT (target/bench/sweep.json, or sweep-mock.json with PROVIDER=mock).
# Prints one line per figure; writes a JSON result.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CASES="${CASES:-100000}"; CONC="${CONC:-64}"; SKIP_LIMIT="${SKIP_LIMIT:-0}"
PROVIDER="${PROVIDER:-openai}"
OUT="${OUT:-$OUT_DIR/$([ "$PROVIDER" = openai ] && echo sweep || echo sweep-mock).json}"
LIMIT_DURATION="${LIMIT_DURATION:-5}"; SWEEP_TIMEOUT="${SWEEP_TIMEOUT:-3600}"

ensure_gnu_time
build_release
W="$(new_workdir)"
cleanup() {
  stop_nginx_if_started
  if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
USE_NGINX=0
if [ "$PROVIDER" = openai ]; then
  have_peers || { log "no peers bench at $PEERS_PATH (set PEERS_DIR, or PROVIDER=mock)"; exit 1; }
  ensure_nginx
  USE_NGINX=1
fi

t0=$(date +%s.%N)
make_project "$W" "$CASES" "$PROVIDER" "$CONC"
SETUP_S="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
MODEL="$([ "$PROVIDER" = openai ] && echo nginx || echo mock)"
CMD=(sweep -q --no-cache --concurrency "$CONC" "${SWEEP_ARGS[@]}")
log "project $W ready in ${SETUP_S}s; timing: cliffprobe ${CMD[*]}"

# check_counts LABEL: the summary must show CASES cases, all passed, none errored
check_counts() {
  local f="$W/$1.out" cases pass err
  cases="$(summary_field "$f" "$MODEL" cases)"; pass="$(summary_field "$f" "$MODEL" pass)"
  err="$(summary_field "$f" "$MODEL" error)"; CACHED_COL="$(summary_field "$f" "$MODEL" cached)"
  if [ "$cases" != "$CASES" ] || [ "$err" != 0 ]; then
    log "$1: summary shows cases='$cases' pass='$pass' error='$err' (want $CASES, 0 errors):"
    cat "$f" >&2; return 1
  fi
  if [ "$PROVIDER" = openai ] && [ "$pass" != "$CASES" ]; then
    log "$1: $pass of $CASES passed; the canned reply should pass every case"; cat "$f" >&2; return 1
  fi
  PASS_COL="$pass"
}
internal_wall() { sed -n 's/.*wall \([0-9.]*\)s.*/\1/p' "$W/$1.out" | tail -1; }

# --- uncached sweep ---------------------------------------------------------------------------
VAR_BYTES="$(mean_variant_bytes "$W")"
before="$(requests_now)"; ng0="$(nginx_cpu_s)"
timed_sweep "$W" nocache timeout -s INT "$SWEEP_TIMEOUT" "$BIN" "${CMD[@]}"
after="$(requests_now)"; ng1="$(nginx_cpu_s)"
NGINX_CPU="$(awk -v a="$ng0" -v b="$ng1" 'BEGIN{printf "%.2f", b-a}')"
check_counts nocache
N_WALL="$T_WALL"; N_USER="$T_USER"; N_SYS="$T_SYS"; N_CPU="$T_CPU"; N_RSS="$T_RSS_KB"; N_INT="$(internal_wall nocache)"
if [ "$USE_NGINX" = 1 ]; then
  N_SENT=$(( after - before - 1 ))   # minus our own status read
  if [ "$N_SENT" -ne "$CASES" ]; then log "expected $CASES requests at nginx, saw $N_SENT"; exit 1; fi
else N_SENT=null; fi

# --- cached re-run (cache on: every case should be answered from the cache) -----------------
CCMD=(sweep -q --concurrency "$CONC" "${SWEEP_ARGS[@]}")
before="$(requests_now)"
timed_sweep "$W" cached timeout -s INT "$SWEEP_TIMEOUT" "$BIN" "${CCMD[@]}"
after="$(requests_now)"
check_counts cached
C_WALL="$T_WALL"; C_CPU="$T_CPU"; C_RSS="$T_RSS_KB"; C_INT="$(internal_wall cached)"; C_CACHED="$CACHED_COL"
if [ "$USE_NGINX" = 1 ]; then C_SENT=$(( after - before - 1 )); else C_SENT=null; fi

# --- the physical limit, same pass -----------------------------------------------------------
LIMIT_RPS=null; LIMIT_LINE=""
if [ "$USE_NGINX" = 1 ] && [ "$SKIP_LIMIT" != 1 ]; then
  log "endpoint limit: DURATION=$LIMIT_DURATION $PEERS_PATH/run-limit.sh"
  LIMIT_LINE="$(DURATION="$LIMIT_DURATION" "$PEERS_PATH/run-limit.sh" | tail -1)"
  LIMIT_RPS="$(sed -n 's/.*median \([0-9.]*\) req\/s.*/\1/p' <<<"$LIMIT_LINE")"
fi

# --- report ------------------------------------------------------------------------------------
f() { awk "BEGIN{printf \"$1\", $2}"; }
SHAPE="$PROBES probes x $PER_PROBE variants x $REPEATS repeat(s)"
echo "sweep uncached: $CASES cases ($SHAPE, --concurrency $CONC, --no-cache) in $(f %.2f "$N_WALL") s = $(f %.0f "$CASES/$N_WALL") cases/s; sweep's own wall $N_INT s"
echo "sweep uncached CPU: user $N_USER s + sys $N_SYS s = $(f %.1f "$N_CPU*1e6/$CASES") us CPU per case ($(f %.0f "100*$N_CPU/$N_WALL") % of one core$([ "$USE_NGINX" = 1 ] && echo "; nginx used $NGINX_CPU s CPU")); max RSS $(f %.1f "$N_RSS/1024") MB; mean variant JSON $VAR_BYTES B"
if [ "$USE_NGINX" = 1 ]; then
  echo "sweep uncached requests at nginx: $N_SENT (expected $CASES: ok)"
fi
echo "sweep cached re-run: $CASES cases in $(f %.2f "$C_WALL") s = $(f %.0f "$CASES/$C_WALL") cases/s, $(f %.1f "$C_CPU*1e6/$CASES") us CPU per case, max RSS $(f %.1f "$C_RSS/1024") MB, $C_CACHED answered from cache$([ "$USE_NGINX" = 1 ] && echo ", $C_SENT requests reached nginx")"
if [ "$LIMIT_RPS" != null ] && [ -n "$LIMIT_RPS" ]; then
  echo "$LIMIT_LINE"
  echo "sweep vs limit: $(f %.0f "$CASES/$N_WALL") / $(f %.0f "$LIMIT_RPS") req/s = $(f %.2f "100*$CASES/$N_WALL/$LIMIT_RPS") % of the endpoint limit"
else
  LIMIT_RPS=null
fi
cat >"$OUT" <<EOF
{
  "bench": "sweep",
  "unix_time": $(date +%s),
  "provider": "$PROVIDER",
  "endpoint": "$([ "$PROVIDER" = openai ] && echo http://127.0.0.1:18080/v1 || echo mock)",
  "cases": $CASES,
  "probes": $PROBES, "variants_per_probe": $PER_PROBE, "repeats": $REPEATS,
  "concurrency": $CONC,
  "command": "cliffprobe ${CMD[*]}",
  "cpus": $(nproc),
  "setup_s": $SETUP_S,
  "uncached": {"wall_s": $N_WALL, "internal_wall_s": ${N_INT:-null}, "cases_per_s": $(f %.1f "$CASES/$N_WALL"),
               "user_s": $N_USER, "sys_s": $N_SYS, "cpu_us_per_case": $(f %.2f "$N_CPU*1e6/$CASES"),
               "max_rss_kb": $N_RSS, "requests_at_nginx": $N_SENT, "passed": $PASS_COL,
               "nginx_cpu_s": $NGINX_CPU, "mean_variant_json_bytes": $VAR_BYTES},
  "cached": {"wall_s": $C_WALL, "internal_wall_s": ${C_INT:-null}, "cases_per_s": $(f %.1f "$CASES/$C_WALL"),
             "cpu_us_per_case": $(f %.2f "$C_CPU*1e6/$CASES"), "max_rss_kb": $C_RSS,
             "answered_from_cache": ${C_CACHED:-null}, "requests_at_nginx": $C_SENT},
  "limit_rps": $LIMIT_RPS,
  "limit_line": "$LIMIT_LINE"
}
EOF
log "wrote $OUT"
