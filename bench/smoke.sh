#!/usr/bin/env bash
# CI smoke of the benchmarks (seconds, no thresholds): the expand and rate-limit benches with
# SMOKE=1, then a 2,000-case sweep against the peers' nginx endpoint when nginx can be installed
# and the peers folder is present, else against the built-in mock; then the analysis bench on a
# 20,000-case store (mock), and the viewer bench on one. Checks only that they run and count right.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "== SMOKE=1 cargo bench --bench expand" >&2
(cd "$REPO" && SMOKE=1 cargo bench --bench expand)

echo "== SMOKE=1 cargo bench --bench ratelimit" >&2
(cd "$REPO" && SMOKE=1 cargo bench --bench ratelimit)

echo "== SMOKE=1 cargo bench --bench episode" >&2
(cd "$REPO" && SMOKE=1 cargo bench --bench episode)

provider=mock
if have_peers; then
  if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] \
     || { command -v apt-get >/dev/null 2>&1 && apt-get update -qq >/dev/null 2>&1 \
          && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1; }; then
    provider=openai
  fi
fi
echo "== bench/sweep.sh, CASES=2000 PROVIDER=$provider SKIP_LIMIT=1" >&2
CASES=2000 PROVIDER="$provider" SKIP_LIMIT=1 OUT="$OUT_DIR/sweep-smoke.json" "$BENCH_DIR/sweep.sh"
echo "== bench/analysis.sh, CASES=20000" >&2
CASES=20000 SKIP_BUILD=1 OUT="$OUT_DIR/analysis-smoke.json" "$BENCH_DIR/analysis.sh"
echo "== bench/view.sh, CASES=20000" >&2
CASES=20000 SKIP_BUILD=1 ROUNDS=2 OUT="$OUT_DIR/view-smoke.json" "$BENCH_DIR/view.sh"
