#!/usr/bin/env bash
# Replay throughput and memory of `cliffprobe replay` against the peers' fake OpenAI endpoint
# (nginx on 127.0.0.1:18080, canned reply "BENCH-OK. …"), timed as one whole process with GNU
# time: a log of RECORDS logged calls (OpenAI JSONL, every request distinct), replayed with
# `--decision label:BENCH-OK|OTHER` (the logged answers alternate between the two labels, so
# half the decisions flip), then a cached re-run of the same log.
#
# FORMAT=otlp writes the log as ONE OTLP JSON object (one line, every span a GenAI chat span
# with its messages as JSON strings) instead of JSONL, to show that it is streamed span by span;
# FORMAT=otlp-lines writes one object of 100 spans per line, as the collector's file exporter does.
#
# Env: RECORDS (100000); FORMAT (jsonl | otlp | otlp-lines); CONC (64) --concurrency and the model's max_concurrency;
#      SKIP_BUILD=1; KEEP=1 keeps the temp folder; REPLAY_TIMEOUT (3600) s per replay;
#      OUT (target/bench/replay.json).
# Prints one line per figure; writes a JSON result.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RECORDS="${RECORDS:-100000}"; CONC="${CONC:-64}"; REPLAY_TIMEOUT="${REPLAY_TIMEOUT:-3600}"
FORMAT="${FORMAT:-jsonl}"
OUT="${OUT:-$OUT_DIR/replay-$FORMAT.json}"
LOG="prod.$([ "$FORMAT" = jsonl ] && echo jsonl || echo json)"

ensure_gnu_time
build_release
have_peers || { log "no peers bench at $PEERS_PATH (set PEERS_DIR)"; exit 1; }
W="$(new_workdir)"
cleanup() {
  stop_nginx_if_started
  if [ "${KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
ensure_nginx
USE_NGINX=1

cat >"$W/cliffprobe.toml" <<EOF2
store = ".cliffprobe/cliffprobe.db"

[models.nginx]
provider = "openai"
base_url = "http://127.0.0.1:18080/v1"
model = "gpt-4o-mini"
max_concurrency = $CONC
EOF2
log "writing $RECORDS logged calls"
python3 - "$RECORDS" "$FORMAT" >"$W/$LOG" <<'PY'
import json, sys
n = int(sys.argv[1])
w = sys.stdout.write
queues = ["refunds", "billing", "shipping", "accounts"]
if sys.argv[2] in ("otlp", "otlp-lines"):
    head = '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"triage"}}]},"scopeSpans":[{"scope":{"name":"bench"},"spans":['
    per_line = 100 if sys.argv[2] == "otlp-lines" else n
    for i in range(n):
        if i % per_line == 0:
            if i:
                w("]}]}]}\n")
            w(head)
        label = "BENCH-OK" if i % 2 == 0 else "OTHER"
        inp = json.dumps([{"role": "system", "parts": [{"type": "text", "content": "Answer BENCH-OK or OTHER."}]},
                          {"role": "user", "parts": [{"type": "text", "content": f"Ticket {i}: which label applies?"}]}])
        out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": f"{label}."}], "finish_reason": "stop"}])
        attrs = [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"), ("gen_ai.request.model", "gpt-4o-mini"),
                 ("queue", queues[i % 4]), ("gen_ai.input.messages", inp), ("gen_ai.output.messages", out)]
        w(("," if i % per_line else "") + json.dumps({"traceId": f"{i // 16:032x}", "spanId": f"{i:016x}", "name": "chat gpt-4o-mini",
            "startTimeUnixNano": str(1788220800000000000 + i * 1000000000),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs]}, separators=(",", ":")))
    w("]}]}]}\n")
    sys.exit(0)
for i in range(n):
    label = "BENCH-OK" if i % 2 == 0 else "OTHER"
    w(json.dumps({
        "id": f"call-{i}",
        "timestamp": f"2026-09-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "metadata": {"queue": queues[i % 4]},
        "request": {"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "Answer BENCH-OK or OTHER."},
            {"role": "user", "content": f"Ticket {i}: which label applies?"}]},
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"{label}."}, "finish_reason": "stop"}]},
    }, separators=(",", ":")))
    w("\n")
PY
LOG_MB="$(du -m "$W/$LOG" | cut -f1)"
CMD=(replay -q --format json "$LOG" --model nginx --decision 'label:BENCH-OK|OTHER' --class-field queue --concurrency "$CONC")

check() {  # check LABEL: every record replayed, half flipped, none errored
  local f="$W/$1.out"
  python3 - "$f" "$RECORDS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
ok = r["replayed"] == n and r["flipped"] == n // 2 and r["errors"] == 0 and r["undecided"] == 0
print(r["replayed"], r["flipped"], r["errors"], r["cached"])
sys.exit(0 if ok else 1)
PY
}

before="$(requests_now)"
timed_sweep "$W" nocache timeout -s INT "$REPLAY_TIMEOUT" "$BIN" "${CMD[@]}" --no-cache
after="$(requests_now)"
read -r N_REPLAYED N_FLIPPED N_ERR _ < <(check nocache) || { log "unexpected counts"; cat "$W/nocache.out" >&2; exit 1; }
N_WALL="$T_WALL"; N_CPU="$T_CPU"; N_RSS="$T_RSS_KB"; N_SENT=$(( after - before - 1 ))

before="$(requests_now)"
timed_sweep "$W" cached timeout -s INT "$REPLAY_TIMEOUT" "$BIN" "${CMD[@]}"
after="$(requests_now)"
read -r _ _ _ C_CACHED < <(check cached) || { log "unexpected counts"; cat "$W/cached.out" >&2; exit 1; }
C_WALL="$T_WALL"; C_CPU="$T_CPU"; C_RSS="$T_RSS_KB"; C_SENT=$(( after - before - 1 ))
STORE_MB="$(du -m "$W/.cliffprobe/cliffprobe.db" | cut -f1)"

f() { awk "BEGIN{printf \"$1\", $2}"; }
echo "replay uncached: $RECORDS logged calls ($LOG_MB MB of $FORMAT, --concurrency $CONC, --no-cache) in $(f %.2f "$N_WALL") s = $(f %.0f "$RECORDS/$N_WALL") cases/s, $(f %.1f "$N_CPU*1e6/$RECORDS") us CPU per case, max RSS $(f %.1f "$N_RSS/1024") MB; $N_REPLAYED replayed, $N_FLIPPED flipped, $N_ERR errors; $N_SENT requests at nginx"
echo "replay cached re-run: $(f %.2f "$C_WALL") s = $(f %.0f "$RECORDS/$C_WALL") cases/s, $(f %.1f "$C_CPU*1e6/$RECORDS") us CPU per case, max RSS $(f %.1f "$C_RSS/1024") MB, $C_CACHED from the cache, $C_SENT requests at nginx; store $STORE_MB MB after both"
cat >"$OUT" <<EOF2
{
  "bench": "replay",
  "unix_time": $(date +%s),
  "records": $RECORDS, "format": "$FORMAT", "log_mb": $LOG_MB, "concurrency": $CONC,
  "command": "cliffprobe ${CMD[*]}",
  "uncached": {"wall_s": $N_WALL, "cases_per_s": $(f %.1f "$RECORDS/$N_WALL"), "cpu_us_per_case": $(f %.2f "$N_CPU*1e6/$RECORDS"),
               "max_rss_kb": $N_RSS, "requests_at_nginx": $N_SENT, "flipped": $N_FLIPPED},
  "cached": {"wall_s": $C_WALL, "cases_per_s": $(f %.1f "$RECORDS/$C_WALL"), "cpu_us_per_case": $(f %.2f "$C_CPU*1e6/$RECORDS"),
             "max_rss_kb": $C_RSS, "requests_at_nginx": $C_SENT, "answered_from_cache": $C_CACHED},
  "store_mb": $STORE_MB
}
EOF2
log "wrote $OUT"
