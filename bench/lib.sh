# Shared helpers for bench/*.sh (sourced, not run).
#
# Reuses the peers bench (nginx fake OpenAI endpoint, request counter, GNU time parsing) from
# ../shared/bench/peers relative to the repository root, or from $PEERS_DIR when set.
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
PEERS_PATH="${PEERS_DIR:-$REPO/../shared/bench/peers}"
OUT_DIR="${CARGO_TARGET_DIR:-$REPO/target}/bench"
BIN="${CLIFFPROBE:-${CARGO_TARGET_DIR:-$REPO/target}/release/cliffprobe}"
mkdir -p "$OUT_DIR"
# The benches time the sweep and the analyses, not the model check a sweep runs first for a
# model it has not reached (a few requests that would also upset the endpoint's request count).
export CLIFFPROBE_NO_CHECK=1

have_peers() { [ -f "$PEERS_PATH/lib.sh" ] && [ -x "$PEERS_PATH/start-nginx.sh" ]; }

if have_peers; then
  # shellcheck source=/dev/null
  source "$PEERS_PATH/lib.sh"     # ensure_nginx, stop_nginx_if_started, nginx_requests, time_*, median
else
  # Minimal stand-ins when the peers folder is absent (smoke falls back to the mock then).
  STARTED_NGINX=0
  stop_nginx_if_started() { return 0; }
  time_wall_s() { awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
  time_rss_kb() { awk -F': ' '/Maximum resident set size/{print $2}' "$1"; }
  ensure_gnu_time() {
    if [ ! -x /usr/bin/time ]; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
    fi
  }
fi
time_cpu_s() { awk -F': ' '/User time \(seconds\)/{u=$2} /System time \(seconds\)/{s=$2} END{printf "%.2f\n", u+s}' "$1"; }
time_user_s() { awk -F': ' '/User time \(seconds\)/{print $2}' "$1"; }
time_sys_s() { awk -F': ' '/System time \(seconds\)/{print $2}' "$1"; }

log() { echo "[bench] $*" >&2; }

# cargo build --release (SKIP_BUILD=1: use the existing binary). Others may be mid-edit: retry
# BUILD_RETRIES times (default 0), BUILD_RETRY_WAIT s apart.
build_release() {
  if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ]; then log "SKIP_BUILD=1: using $BIN"; return 0; fi
  local tries=$(( ${BUILD_RETRIES:-0} + 1 )) i
  for i in $(seq 1 "$tries"); do
    log "cargo build --release (attempt $i/$tries)"
    if (cd "$REPO" && cargo build --release --bin cliffprobe >&2); then return 0; fi
    [ "$i" -lt "$tries" ] && sleep "${BUILD_RETRY_WAIT:-60}"
  done
  log "release build failed"; return 1
}

# The per-probe variant count used for sweep suites: `--strategy sample:V` over
# `--axes persona,phrasing,format` (13 x 13 x 9 = 1,521 points per probe with the embedded
# library), so V distinct variants per probe.
SWEEP_AXES="persona,phrasing,format"
V_MAX=1000

# plan_suite CASES [REPEATS] -> sets PROBES, PER_PROBE, REPEATS with PROBES*PER_PROBE*REPEATS = CASES
plan_suite() {
  local cases="$1" k="${2:-1}" v
  if [ $(( cases % k )) -ne 0 ]; then log "CASES=$cases is not a multiple of REPEATS=$k"; return 1; fi
  local per=$(( cases / k ))
  for v in $(seq "$(( per < V_MAX ? per : V_MAX ))" -1 1); do
    if [ $(( per % v )) -eq 0 ]; then break; fi
  done
  PER_PROBE="$v"; PROBES=$(( per / v )); REPEATS="$k"
}

# write_incident DIR J: a small order-status incident (CSV tool output, 4 records, key id named
# in the question); the check is `contains BENCH-OK`, which the peers' canned reply passes, as
# in the peers' promptfoo/inspect configs.
write_incident() {
  local dir="$1" j="$2" b=$(( 10000 + $2 * 10 ))
  cat >"$dir/inc-$j.yaml" <<EOF
title: Support agent misreported order A-$((b+2)) of shop $j
capability: reading a status from a tool's table output
severity: high
tier: hard
conversation:
  - role: system
    content: |
      You are the support assistant of shop number $j. Use lookup_orders to read a customer's
      orders and report each status exactly as the order system shows it. Be concise.
  - role: user
    content: Hi! Can you check on my orders, please?
  - role: assistant
    tool_calls:
      - id: call_1
        type: function
        function:
          name: lookup_orders
          arguments: '{"customer_id": "C-$j"}'
  - role: tool
    tool_call_id: call_1
    content: |
      order_id,placed_on,total_eur,status,carrier
      A-$((b+1)),2026-09-14,24.90,delivered,DHL
      A-$((b+2)),2026-09-28,349.00,delayed,
      A-$((b+3)),2026-09-27,89.00,shipped,DPD
      A-$((b+4)),2026-09-30,31.50,processing,
  - role: user
    content: Great, so what is the status of order A-$((b+2))?
tools:
  - type: function
    function:
      name: lookup_orders
      description: List a customer's recent orders as CSV.
      parameters:
        type: object
        properties:
          customer_id: {type: string}
        required: [customer_id]
bad_output: "Order A-$((b+2)) has shipped with DPD."
expected:
  - contains: BENCH-OK
EOF
}

# make_project DIR CASES PROVIDER [CONC]: a project whose sweep plans exactly CASES cases.
# PROVIDER: openai (the nginx endpoint) or mock. Sets SWEEP_ARGS (strategy, axes, repeats).
make_project() {
  local dir="$1" cases="$2" provider="$3" conc="${4:-64}" j
  plan_suite "$cases" "${REPEATS_WANTED:-1}" || return 1
  mkdir -p "$dir/incidents" "$dir/probes"
  if [ "$provider" = openai ]; then
    cat >"$dir/cliffprobe.toml" <<EOF
suite = "probes"
store = "${STORE:-.cliffprobe/cliffprobe.db}"

[models.nginx]
provider = "openai"
base_url = "http://127.0.0.1:18080/v1"
model = "gpt-4o-mini"
max_concurrency = $conc
EOF
  else
    cat >"$dir/cliffprobe.toml" <<EOF
suite = "probes"
store = "${STORE:-.cliffprobe/cliffprobe.db}"

[models.mock]
provider = "mock"
model = "mock-steady-1"
max_concurrency = $conc
EOF
  fi
  log "suite: $PROBES probe families x $PER_PROBE variants x $REPEATS repeat(s) = $cases cases (templatizing ...)"
  for j in $(seq 1 "$PROBES"); do
    write_incident "$dir/incidents" "$j"
    (cd "$dir" && "$BIN" templatize "incidents/inc-$j.yaml" --id "$(printf 'bench-%06d' "$j")" >/dev/null 2>"$dir/templatize.err") \
      || { log "templatize failed:"; cat "$dir/templatize.err" >&2; return 1; }
  done
  SWEEP_ARGS=(--strategy "sample:$PER_PROBE" --axes "$SWEEP_AXES" --repeats "$REPEATS" --yes)
  # The plan must be exactly CASES.
  local plan
  plan="$(cd "$dir" && "$BIN" sweep --dry-run "${SWEEP_ARGS[@]}" | sed -n 's/.* = \([0-9]*\) cases.*/\1/p')"
  if [ "$plan" != "$cases" ]; then log "plan is '$plan' cases, want $cases"; return 1; fi
}

# summary_field OUTFILE MODEL COLUMN: a number from the sweep's summary table (by header name).
summary_field() {
  awk -v model="$2" -v col="$3" -F'│|┆' '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    /┆/ && !hdr { for (i = 1; i <= NF; i++) if (trim($i) == col) c = i; if (c) hdr = 1; next }
    hdr && /┆/ { m = trim($2); sub(/ \(mock\)$/, "", m); if (m == model) { print trim($c); exit } }
  ' "$1"
}

# timed_sweep DIR LABEL COMMAND...: runs COMMAND (e.g. timeout 3600 cliffprobe sweep ...) under
# /usr/bin/time -v in DIR.
# Sets T_WALL T_USER T_SYS T_CPU T_RSS_KB (and leaves DIR/LABEL.{time,out,err}).
timed_sweep() {
  local dir="$1" label="$2"; shift 2
  local rc
  set +e
  (cd "$dir" && /usr/bin/time -v -o "$dir/$label.time" "$@" >"$dir/$label.out" 2>"$dir/$label.err")
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    log "sweep ($label) exited $rc; stderr:"; tail -20 "$dir/$label.err" >&2; return 1
  fi
  T_WALL="$(time_wall_s "$dir/$label.time")"
  T_USER="$(time_user_s "$dir/$label.time")"
  T_SYS="$(time_sys_s "$dir/$label.time")"
  T_CPU="$(time_cpu_s "$dir/$label.time")"
  T_RSS_KB="$(time_rss_kb "$dir/$label.time")"
}

# CPU seconds used so far by the nginx master and its workers (0 when not ours/not running).
nginx_cpu_s() {
  local pidfile=/tmp/peers/nginx/nginx.pid master pids p tck total=0 t
  [ "${USE_NGINX:-0}" = 1 ] && [ -f "$pidfile" ] || { echo 0; return; }
  master="$(cat "$pidfile")"; tck="$(getconf CLK_TCK)"
  # the master and its workers (children: stat field 4 is the parent pid)
  pids="$master $(awk -v m="$master" '$4 == m {print $1}' /proc/[0-9]*/stat 2>/dev/null || true)"
  for p in $pids; do
    t="$(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0)"
    total=$(( total + t ))
  done
  awk -v t="$total" -v k="$tck" 'BEGIN{printf "%.2f\n", t/k}'
}

# mean_variant_bytes DIR: mean size of one variant's JSON line (request + ids) of the first probe,
# for comparison with the 1,986-byte body wrk sends.
mean_variant_bytes() {
  local f; f="$(find "$1/probes" -name '*.yaml' | sort | head -1)"
  (cd "$1" && "$BIN" expand "$f" --strategy "sample:$PER_PROBE" --axes "$SWEEP_AXES") \
    | awk '{b += length($0) + 1; n++} END{printf "%.0f\n", n ? b/n : 0}'
}

# nginx_requests with no counter available prints nothing; callers then skip the check.
requests_now() { if [ "${USE_NGINX:-0}" = 1 ]; then nginx_requests; fi; }

# a temp project dir, removed on exit unless KEEP=1
new_workdir() {
  local d; d="$(mktemp -d "${TMPDIR:-/tmp}/cliffprobe-bench.XXXXXX")"
  echo "$d"
}

# write_runs_json OUT HEADER ROW...: {HEADER, "runs": [ROW, ...]} into OUT, one row a line.
# HEADER is the inner text of the top-level object before "runs" (e.g. "\"bench\": \"memory\"").
write_runs_json() {
  local out="$1" header="$2" i n; shift 2
  n=$#
  {
    echo "{"
    echo "  $header,"
    echo "  \"runs\": ["
    i=0
    for row in "$@"; do
      i=$(( i + 1 ))
      if [ "$i" -lt "$n" ]; then echo "    $row,"; else echo "    $row"; fi
    done
    echo "  ]"
    echo "}"
  } >"$out"
}

# fill_analysis_store DIR CASES: a project in DIR whose store holds one run of CASES cases (two
# built-in mock models, prod and candidate, x CASES/2 variant samples; a hard floor), filled
# offline unless DIR already holds that store (DIR/.cases). The analysis and view benches share
# it (STORE_DIR).
fill_analysis_store() {
  local W="$1" CASES="$2" per_model=$(( $2 / 2 ))
  if [ -f "$W/.cliffprobe/cliffprobe.db" ] && [ "$(cat "$W/.cases" 2>/dev/null)" = "$CASES" ]; then
    return 0
  fi
  rm -rf "$W/.cliffprobe" "$W/probes" "$W/incidents"
  make_project "$W" "$per_model" mock 64
  cat >"$W/cliffprobe.toml" <<EOF
suite = "probes"
store = "${STORE:-.cliffprobe/cliffprobe.db}"

[models.prod]
provider = "mock"
model = "mock-steady-1"

[models.candidate]
provider = "mock"
model = "mock-brittle-1"

[floors]
hard = 0.45
EOF
  log "filling the store: $CASES cases (mock models prod + candidate) ..."
  timed_sweep "$W" fill "$BIN" sweep -q --no-cache "${SWEEP_ARGS[@]}"
  log "filled in $T_WALL s (max RSS $(( T_RSS_KB / 1024 )) MB)"
  echo "$CASES" >"$W/.cases"
}
