# shellcheck shell=bash
# The engine's threads at a higher priority than the pipelines' (NONLOCAL_ENGINE_NICE, needs
# root or CAP_SYS_NICE), more lanes and CUDA graphs, alone and together: this build, the engine
# at batch 8 and the element at 32 and 64 I3D streams per variant (PRIO_RUNS, variant_env's
# words), PRIO_ROUNDS rounds of them all (default 2; PRIO_ROUND_LIST names them instead, e.g. "2"
# for a second round in a later machine session); prio-table: element/engine per row. A run
# written old:VARIANT runs the bench in $BIN_OLD instead (a bench registers its own element), so
# that two builds alternate in one run; its rows are named old-VARIANT. The word `resample` runs
# the element with resample=engine (the centre crop's source pixels resampled on the card).
PRIO_RUNS=${PRIO_RUNS:-base graph nice nice+graph 3lanes+graph nice+3lanes+graph}
prio_ab() {
  steps_env
  compile_settings || return
  local m=i3d-r50-nl-u8-stacked f round run env dir build
  f=$(compile_model "$m") || return
  for round in ${PRIO_ROUND_LIST:-$(seq 1 "${PRIO_ROUNDS:-2}")}; do
    for run in $PRIO_RUNS; do
      dir=$BIN build=
      case $run in
        old:*) dir=${BIN_OLD:-} build=old- run=${run#old:}
               [ -x "$dir/throughput" ] ||
                 { echo "rc=2 old:$run: BIN_OLD holds no throughput bench" >> "$OUT/prio.txt"; continue; } ;;
      esac
      env=$(variant_env "$run") || { echo "rc=2 $run: unknown variant" >> "$OUT/prio.txt"; continue; }
      # shellcheck disable=SC2086
      env $env timeout 200 "$dir/throughput" --provider cuda --json "$OUT/prio.jsonl" \
        --model "$f" --name "$m-$build$run-r$round" --batches 8 --streams 32,64 --clips 1024 \
        $(resample_arg "$run") >> "$OUT/prio.txt" 2>&1
      echo "rc=$? $m $build$run round $round:${env:- defaults}" >> "$OUT/prio.txt"
    done
  done
  grep -E "^model|^engine threads|^\| (engine|element)|^rc=" "$OUT/prio.txt"
}

# The bench's --resample for a variant: engine when one of its words is `resample` (nothing
# otherwise, so that a bench without the argument, such as an older build's in $BIN_OLD, runs
# the other variants).
resample_arg() {
  case "+$1+" in
    *+resample+*) echo "--resample engine" ;;
  esac
}
