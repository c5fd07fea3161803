#!/usr/bin/env bash
# Every benchmark in one pass: expand (cargo bench), sweep (+ cached re-run + wrk limit),
# memory, analysis (report / brittleness / tiers / trend over a 1,000,000-case store), and
# with PEERS=1 the peers' promptfoo and Inspect runs from ../shared/bench/peers
# (same machine, same pass: compare only within one pass, see the peers README).
# Env: passed through to each script (CASES, CONC, FULL, MAX_CASES, N for the expand bench, ...);
#      PEERS=1; PEERS_N (2000) requests per peers run (the peers' own N).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SUMMARY="$OUT_DIR/run-all.txt"
: >"$SUMMARY"
step() { echo "== $*" >&2; }

step "expand: cargo bench --bench expand"
(cd "$REPO" && cargo bench --bench expand) | tee -a "$SUMMARY"

build_release
step "sweep: bench/sweep.sh"
SKIP_BUILD=1 "$BENCH_DIR/sweep.sh" | tee -a "$SUMMARY"

step "memory: bench/memory.sh"
SKIP_BUILD=1 "$BENCH_DIR/memory.sh" | tee -a "$SUMMARY"

step "rate limits: cargo bench --bench ratelimit"
(cd "$REPO" && cargo bench --bench ratelimit) | tee -a "$SUMMARY"

step "episodes: cargo bench --bench episode"
(cd "$REPO" && cargo bench --bench episode) | tee -a "$SUMMARY"

step "analysis: bench/analysis.sh"
SKIP_BUILD=1 "$BENCH_DIR/analysis.sh" | tee -a "$SUMMARY"

step "viewer: bench/view.sh"
SKIP_BUILD=1 "$BENCH_DIR/view.sh" | tee -a "$SUMMARY"

if [ "${PEERS:-0}" = 1 ]; then
  step "peers: promptfoo"
  N="${PEERS_N:-2000}" "$PEERS_PATH/run-promptfoo.sh" | tee -a "$SUMMARY"
  step "peers: inspect"
  N="${PEERS_N:-2000}" "$PEERS_PATH/run-inspect.sh" | tee -a "$SUMMARY"
fi
log "summary in $SUMMARY; JSON in $OUT_DIR/"
