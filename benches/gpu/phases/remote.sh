# shellcheck shell=bash
# remote: the element's remote backend on the card against the in-process engine
# The throughput bench on one card, one model, the same streams and clips: the in-process engine
# and element first (--provider cuda), then the same bench with --server on a tritonserver on
# 127.0.0.1 (the nvidia-pytriton wheel's, installed by benches/gpu/remote-install.sh) whose
# python-backend model runs ONNX Runtime's CUDA provider with the element's CUDA options
# (tools/nlexport/triton_python_model.py: instances KIND_CPU, the session on card 0; warmed up at
# every batch size before the server reports ready). One server per model, started after the
# in-process rows and stopped (its process group) before the next model. Settings (environment):
#   REMOTE_NETS       models (model_file's names), default "i3d-r50-nl-u8-stacked c2d-r50-nl-u8"
#   REMOTE_STREAMS    element streams, default 8,64; REMOTE_BATCHES engine batch sizes, default 8
#   REMOTE_CLIPS      clips per measurement, default 512
#   REMOTE_INSTANCES  the server's instances per model, default 2 (each a stub process with its
#                     own session, as the engine's two lanes); REMOTE_MAX_BATCH its max_batch_size
#                     (8) and REMOTE_QUEUE_US its dynamic batcher's queue delay (2000)
#   REMOTE_REQUESTS   --server-requests (batches in flight), default 4 (the element's default)
#   REMOTE_PROVIDER   the server's provider, cuda (default) or cpu; REMOTE_LOCAL_PROVIDER the
#                     in-process rows' (cuda)
#   REMOTE_SITE       the server's site folder, default /root/gpu-remote/site
#   REMOTE_PY         the Python the server's models run in, default $PY
#   REMOTE_SHM_MIB    the python backend's shared memory per instance at start (default 64)
#   REMOTE_DEADLINE_S the phase's time box in seconds (default 450): every step's timeout is cut
#                     to what is left, and a model with less than REMOTE_MODEL_MIN_S (150) left is
#                     skipped (said in the summary)
#   REMOTE_WORK       models' repository and server logs while running, default
#                     $HOME/.cache/nonlocal-remote (out of $OUT, which returns few files)
#   MODELS            where the models are (default $HOME/.cache/nonlocal-models, as compile)
# Writes $OUT/remote-{machine.txt,bench.txt,bench.jsonl,server.log}, a line per model to
# $OUT/summary.txt; prints the bench rows (clips/s, latency median / p99) and a table of both.
remote_settings() {
  compile_settings || return
  R_NETS=${REMOTE_NETS:-i3d-r50-nl-u8-stacked c2d-r50-nl-u8}
  R_STREAMS=${REMOTE_STREAMS:-8,64}
  R_BATCHES=${REMOTE_BATCHES:-8}
  R_CLIPS=${REMOTE_CLIPS:-512}
  R_INSTANCES=${REMOTE_INSTANCES:-2}
  R_MAX_BATCH=${REMOTE_MAX_BATCH:-8}
  R_QUEUE_US=${REMOTE_QUEUE_US:-2000}
  R_REQUESTS=${REMOTE_REQUESTS:-4}
  R_PROVIDER=${REMOTE_PROVIDER:-cuda}
  R_LOCAL=${REMOTE_LOCAL_PROVIDER:-cuda}
  R_SITE=${REMOTE_SITE:-/root/gpu-remote/site}
  R_PY=${REMOTE_PY:-$PY}
  R_SHM=$(( ${REMOTE_SHM_MIB:-64} * 1048576 ))
  R_DEADLINE=$(( SECONDS + ${REMOTE_DEADLINE_S:-450} ))
  R_MODEL_MIN=${REMOTE_MODEL_MIN_S:-150}
  R_WORK=${REMOTE_WORK:-${HOME:-/root}/.cache/nonlocal-remote}
  R_TXT=$OUT/remote-bench.txt R_JSON=$OUT/remote-bench.jsonl R_LOG=$OUT/remote-server.log
  R_PID=""
}

# A step's time box: BOX seconds, cut to what is left of the phase less 15 s (0: none left).
remote_box() {
  local left=$(( R_DEADLINE - SECONDS - 15 ))
  if [ "$left" -lt "$1" ]; then echo $(( left > 0 ? left : 0 )); else echo "$1"; fi
}

remote_stop() {
  [ -n "$R_PID" ] || return 0
  kill -TERM -- "-$R_PID" 2>/dev/null
  local i
  for i in $(seq 1 60); do
    kill -0 "$R_PID" 2>/dev/null || break
    [ "$i" = 40 ] && kill -KILL -- "-$R_PID" 2>/dev/null
    sleep 0.5
  done
  # Stubs outlive a killed server: their group goes too.
  kill -KILL -- "-$R_PID" 2>/dev/null
  R_PID=""
}

remote_say() { echo "$*" | tee -a "$R_TXT"; }

# The bench's error line since line $1 of the log, when a run failed (rc 124: its time box ran out).
remote_error() { tail -n "+$1" "$R_TXT" | grep -a "^Error:" | tail -n 1 | cut -c1-400; }

remote_one() {
  local m=$1 f t rc rep log out grpc line
  if [ "$(remote_box "$R_MODEL_MIN")" -lt "$R_MODEL_MIN" ]; then
    remote_say "rc=skip $m: less than ${R_MODEL_MIN} s of the phase's box left (REMOTE_DEADLINE_S)"
    echo "remote $m: skipped, out of time" >> "$OUT/summary.txt"
    return 1
  fi
  f=$(model_file "$m" "$R_TXT") ||
    { remote_say "rc=1 $m: no model file (export failed: $R_TXT; or MODELS)"; return 1; }
  remote_say "== $m $(date -u '+%H:%M:%S UTC'): $f"

  # In-process, on the card.
  t=$(remote_box 150)
  [ "$t" -ge 30 ] || { remote_say "rc=skip $m: out of time (REMOTE_DEADLINE_S)"; return 1; }
  line=$(wc -l < "$R_TXT")
  timeout -k 10 "$t" "$BIN/throughput" --provider "$R_LOCAL" --json "$R_JSON" --model "$f" \
    --name "$m" --batches "$R_BATCHES" --streams "$R_STREAMS" --clips "$R_CLIPS" >> "$R_TXT" 2>&1
  rc=$?
  remote_say "rc=$rc in-process $m ($R_LOCAL; time box $t s)"
  [ "$rc" = 0 ] || remote_error "$line"

  # The same model behind a local tritonserver.
  rep=$R_WORK/repo-$m log=$R_WORK/server-$m.log
  rm -rf "$rep" "$log"
  mkdir -p "$rep"
  if ! timeout 120 "$PY" tools/triton-repo --backend python --instances "$R_INSTANCES" \
      --max-batch "$R_MAX_BATCH" --queue-delay-us "$R_QUEUE_US" "$rep" "$f=$m" >> "$R_TXT" 2>&1; then
    remote_say "rc=1 remote $m: tools/triton-repo could not write the entry (above)"
    return 1
  fi
  t=$(remote_box 240)
  [ "$t" -ge 60 ] || { remote_say "rc=skip remote $m: out of time (REMOTE_DEADLINE_S)"; return 1; }
  out=$(timeout -k 5 "$t" tools/triton-serve --repo "$rep" --python "$R_PY" --site "$R_SITE" \
    --provider "$R_PROVIDER" --pid-file "$R_WORK/server.pid" --log "$log" \
    --ready-timeout $(( t > 20 ? t - 10 : 10 )) \
    --server-arg "--backend-config=python,shm-default-byte-size=$R_SHM" \
    --server-arg "--backend-config=python,shm-growth-byte-size=$R_SHM" 2>> "$R_TXT")
  rc=$?
  R_PID=$(cat "$R_WORK/server.pid" 2>/dev/null)
  grpc=$(echo "$out" | tr ' ' '\n' | sed -n 's/^grpc=//p')
  if [ "$rc" != 0 ] || [ -z "$grpc" ]; then
    [ "$rc" != 0 ] || rc=1
    remote_say "rc=$rc remote $m: tritonserver did not become ready (time box $t s; tools/triton-serve's reason above, the server's log in $R_LOG)"
    remote_stop
    { echo "== $m (not ready)"; cat "$log"; } >> "$R_LOG" 2>/dev/null
    echo "remote $m: server not ready (remote-server.log)" >> "$OUT/summary.txt"
    return 1
  fi
  remote_say "server $m: $out ($R_INSTANCES instances, provider $R_PROVIDER, ready $(date -u '+%H:%M:%S UTC'))"
  grep -h "warmed up\|CUDA provider\|cuDNN has no fused" "$log" >> "$R_TXT" 2>/dev/null
  t=$(remote_box 150)
  if [ "$t" -lt 30 ]; then
    remote_say "rc=skip remote $m: out of time (REMOTE_DEADLINE_S)"
    remote_stop
    return 1
  fi
  line=$(wc -l < "$R_TXT")
  timeout -k 10 "$t" "$BIN/throughput" --provider "$R_LOCAL" --json "$R_JSON" --model "$f" \
    --name "$m-remote" --server "$grpc" --server-model "$m" --server-requests "$R_REQUESTS" \
    --batches "$R_BATCHES" --streams "$R_STREAMS" --clips "$R_CLIPS" >> "$R_TXT" 2>&1
  rc=$?
  remote_say "rc=$rc remote $m (server $grpc, $R_REQUESTS requests in flight; time box $t s)"
  [ "$rc" = 0 ] || remote_error "$line"
  # The server's own count of requests against model runs (its dynamic batching).
  "$R_PY" - "${out##*http=}" "$m" 2>&1 <<'EOF' | tee -a "$R_TXT"
import json, sys, urllib.request
http, name = sys.argv[1].split()[0], sys.argv[2]
s = json.load(urllib.request.urlopen(f"http://{http}/v2/models/{name}/stats", timeout=10))
st = s["model_stats"][0]
print(f"server {name}: {st['inference_count']} clips in {st['execution_count']} model runs")
EOF
  remote_stop
  { echo "== $m"; cat "$log"; } >> "$R_LOG" 2>/dev/null
}

remote() {
  remote_settings || return
  local m missing=""
  mkdir -p "$R_WORK"
  [ -x "$BIN/throughput" ] || missing="$BIN/throughput (the release bench binary, cargo bench --no-run)"
  [ -f "$BIN/libgstnonlocal.so" ] || missing="$missing $BIN/libgstnonlocal.so"
  [ -x "$R_SITE/pytriton/tritonserver/bin/tritonserver" ] ||
    missing="$missing $R_SITE/pytriton/tritonserver/bin/tritonserver (benches/gpu/remote-install.sh with the parts of benches/gpu/remote-parts.sh)"
  if [ -n "$missing" ]; then
    echo "remote: missing: $missing" | tee -a "$OUT/summary.txt" >&2
    return 1
  fi
  : > "$R_TXT"; : > "$R_JSON"; : > "$R_LOG"
  trap 'remote_stop' EXIT
  {
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
      --format=csv 2>&1
    echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "ORT (in-process): ${ORT_DYLIB_PATH:-unset}"
    echo "server models' Python: $(command -v "$R_PY") $("$R_PY" -V 2>&1)"
    PYTHONPATH=$R_SITE "$R_PY" -c 'import numpy, onnxruntime as o; print("server packages: numpy", numpy.__version__, "onnxruntime", o.__version__, o.get_available_providers())' 2>&1
    head -5 "$R_SITE/NONLOCAL-SITE.txt" 2>/dev/null
    df -h /dev/shm 2>&1 | tail -1
    echo "models $R_NETS; streams $R_STREAMS; batches $R_BATCHES; clips $R_CLIPS; server: $R_INSTANCES instances, max batch $R_MAX_BATCH, queue delay $R_QUEUE_US us, provider $R_PROVIDER; $R_REQUESTS requests in flight"
  } > "$OUT/remote-machine.txt" 2>&1
  for m in $R_NETS; do
    remote_one "$m"
  done
  remote_stop
  trap - EXIT
  grep -E "^model|^\| (engine|element)" "$R_TXT"
  remote_table | tee -a "$R_TXT"
}
