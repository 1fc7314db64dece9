#!/usr/bin/env bash
# The one-shot GPU check (see GPU.md in the project's notes): on a machine with an NVIDIA GPU it
#   1. prints nvidia-smi and the CUDA, cuBLAS and NCCL versions found,
#   2. builds the addon with the CUDA backend, or verifies a given build,
#   3. runs the CUDA-vs-CPU tests (test/cuda), then NCCL's, saving the logs,
#   4. runs the GPU benchmarks against PyTorch on the same GPU, saving their JSON, then the rest
#      of the test suite with CUDA available, with the time left,
#   5. ends with a table: each step, pass or fail, its figure and the ratio to PyTorch.
# Everything goes under $OUT (default: ./gpu-check-out): gpu-check.log (all of the output),
# summary.txt (the table, written even when a step failed or the script was interrupted), the
# logs of the tests and benchmarks, and their JSON. It exits non-zero when a step failed.
# Every step runs under a time limit taken from one budget (IGNIS_GPU_CHECK_SECONDS, default 480
# s), so that a step that hangs cannot take the time of the others; a step with no time left is
# skipped.
#
#   scripts/gpu-check.sh            the check on the GPU
#   scripts/gpu-check.sh --cpu      the same steps with the CPU backend (CI runs it: no GPU there)
#   scripts/gpu-check.sh --quick    smaller tests and benchmarks (with --cpu: under a minute)
#   scripts/gpu-check.sh --pack     prepares .gpu/ here for a GPU machine without Node or network
#                                   (about 50 MB): node.xz, node_modules.tar.xz, dist.tar.xz,
#                                   ignis.node.xz (from build-cuda/: `npm run build:cuda` first)
#                                   and libs.tar.xz (the addon's libraries: OpenBLAS, Gloo, ...)
#
# What it uses on the GPU machine, in order: the addon named by IGNIS_ADDON, else .gpu/ignis.node.xz,
# else build-cuda/Release/ignis.node, else a build with `npm run build:cuda` (nvcc, CMake and
# Node's headers needed) for the GPU's own architecture (IGNIS_CUDA_ARCHITECTURES overrides).
# Node comes from PATH when it is Node 20 or later, else .gpu/node.xz; node_modules and dist/ from
# .gpu/*.tar.xz when missing. PyTorch is the first of $IGNIS_BENCH_TORCH_PYTHON, python3,
# /usr/bin/python3 that has it; the folders of its nvidia-* wheels (cuBLAS, NCCL) are handed to the
# addon's loader through IGNIS_CUDA_LIBS unless that is set.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=cuda
quick=0
pack=0
for arg in "$@"; do
  case "$arg" in
    --cpu) mode=cpu ;;
    --quick) quick=1 ;;
    --pack) pack=1 ;;
    *) echo "gpu-check: unknown option $arg (expected --cpu, --quick, --pack)" >&2; exit 2 ;;
  esac
done

# The tools, through node alone: a machine with a Node binary brought along has no npm or npx.
tool() { node "$root/node_modules/$1" "${@:2}"; }

if [ "$pack" = 1 ]; then
  set -e
  mkdir -p .gpu && rm -f .gpu/ignis.node .gpu/bin/node
  [ -f build-cuda/Release/ignis.node ] || { echo "gpu-check --pack: build first with npm run build:cuda" >&2; exit 1; }
  [ -f dist/lib/index.js ] || tool typescript/bin/tsc -p .
  xz -T0 -6 -c build-cuda/Release/ignis.node >.gpu/ignis.node.xz.tmp && mv .gpu/ignis.node.xz.tmp .gpu/ignis.node.xz
  # stripped: the symbols are most of Node's binary
  strip -o .gpu/node.tmp "$(command -v node)" && xz -T0 -6 -c .gpu/node.tmp >.gpu/node.xz.tmp && rm .gpu/node.tmp &&
    mv .gpu/node.xz.tmp .gpu/node.xz
  tar -C "$(readlink -f node_modules)/.." -cJhf .gpu/node_modules.tar.xz.tmp --exclude=node_modules/typescript node_modules &&
    mv .gpu/node_modules.tar.xz.tmp .gpu/node_modules.tar.xz
  tar -cJf .gpu/dist.tar.xz.tmp dist && mv .gpu/dist.tar.xz.tmp .gpu/dist.tar.xz
  # the addon's libraries a GPU machine may lack (OpenBLAS, Gloo and theirs); there, only the ones
  # it lacks are put on LD_LIBRARY_PATH
  rm -rf .gpu/libs.tmp && mkdir -p .gpu/libs.tmp
  ldd build-cuda/Release/ignis.node | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    grep -Ev '/lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s)\.so' | xargs -r cp -L -t .gpu/libs.tmp
  tar -C .gpu/libs.tmp -cJf .gpu/libs.tar.xz.tmp . && mv .gpu/libs.tar.xz.tmp .gpu/libs.tar.xz && rm -rf .gpu/libs.tmp
  du -ch .gpu/* | tail -n 1
  exit 0
fi

OUT=${OUT:-$root/gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/gpu-check.log") 2>&1

budget=${IGNIS_GPU_CHECK_SECONDS:-480}
deadline=$((SECONDS + budget))
rows=()  # step|status|figure|ratio
failed=0
record() {
  rows+=("$1|$2|$3|$4")
  if [ "$2" = fail ]; then failed=1; fi
}
section() { printf '\n=== %s\n' "$1"; }
# The table: written on every exit, a failed or interrupted step included.
summary() {
  section "summary"
  {
    printf '%-44s %-6s %-44s %s\n' step status figure "speed vs PyTorch"
    for row in "${rows[@]}"; do
      IFS='|' read -r step status figure ratio <<<"$row"
      printf '%-44s %-6s %-44s %s\n' "$step" "$status" "$figure" "$ratio"
    done
  } | tee "$OUT/summary.txt"
}
trap 'summary' EXIT
trap 'record "gpu-check" fail "interrupted" ""; exit 130' INT TERM
# limited CAP COMMAND...: runs COMMAND for at most CAP seconds, and never past the budget (a few
# seconds kept for the summary); 124 when it ran out of time, 125 when none was left to start it.
limited() {
  local cap=$1 left=$((deadline - SECONDS - 10))
  shift
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 5 ]; then
    echo "gpu-check: no time left for: $*"
    return 125
  fi
  timeout -k 5 "$cap" "$@"
}
# Why a command run by limited() ended early, from its exit status.
timed_out() { case "$1" in 124 | 137) echo " (timed out)" ;; 125) echo " (not run: no time left)" ;; esac; }
# "N passed, M failed, K skipped in S s" from an ava log, timed from $2 (SECONDS at the start).
ava_summary() {
  local passed failures skipped
  passed=$(grep -Eo '[0-9]+ tests? passed' "$1" | tail -n 1 | grep -Eo '^[0-9]+')
  failures=$(grep -Eo '[0-9]+ tests? failed' "$1" | tail -n 1 | grep -Eo '^[0-9]+')
  skipped=$(grep -Eo '[0-9]+ tests? skipped' "$1" | tail -n 1 | grep -Eo '^[0-9]+')
  echo "${passed:-0} passed, ${failures:-0} failed, ${skipped:-0} skipped in $((SECONDS - $2)) s"
}

section "gpu-check ($mode$([ "$quick" = 1 ] && echo ', quick')) in $root, results in $OUT"
date -u

# --- Node, node_modules and dist/ (brought along when the machine lacks them) ---------------
# The node on PATH when it is recent enough (package.json: Node 20 or later), else the one brought along.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null || [ "$(node_major node)" -lt 20 ]; then
  if [ -f .gpu/node.xz ]; then
    mkdir -p .gpu/bin && xz -dc .gpu/node.xz >.gpu/bin/node.tmp && chmod +x .gpu/bin/node.tmp && mv .gpu/bin/node.tmp .gpu/bin/node
    export PATH="$root/.gpu/bin:$PATH"
  fi
fi
if ! command -v node >/dev/null; then
  record "node" fail "no node on PATH and no .gpu/node.xz" ""
elif [ "$(node_major node)" -lt 20 ]; then
  record "node" fail "$(node --version) is too old (Node 20 or later) and no .gpu/node.xz" ""
else
  record "node" pass "$(node --version)" ""
fi
# unpacked through temporary names: an interrupted first run leaves nothing half-written behind
unpack_tar() { [ -f "$1" ] && rm -rf .gpu/unpack && mkdir -p .gpu/unpack && tar -C .gpu/unpack -xJf "$1" && mv ".gpu/unpack/$2" "$2"; }
[ -e node_modules ] || unpack_tar .gpu/node_modules.tar.xz node_modules || echo "gpu-check: node_modules missing"
[ -f dist/lib/index.js ] || { rm -rf dist && unpack_tar .gpu/dist.tar.xz dist; } || echo "gpu-check: dist/ missing"
if [ ! -f .gpu/ignis.node ] && [ -f .gpu/ignis.node.xz ]; then
  xz -dc .gpu/ignis.node.xz >.gpu/ignis.node.tmp && mv .gpu/ignis.node.tmp .gpu/ignis.node
fi
if [ ! -f dist/lib/index.js ] && [ -f node_modules/typescript/bin/tsc ]; then limited 120 node node_modules/typescript/bin/tsc -p . || true; fi

# --- 1. the machine ----------------------------------------------------------------------
section "machine"
uname -a
if command -v nvidia-smi >/dev/null; then
  limited 30 nvidia-smi | tee "$OUT/nvidia-smi.txt"
  gpu_name=$(limited 30 nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
  capability=$(limited 30 nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1)
  record "nvidia-smi" pass "$gpu_name, compute $capability" ""
elif [ "$mode" = cuda ]; then
  record "nvidia-smi" fail "nvidia-smi not found" ""
else
  echo "nvidia-smi: not found (CPU mode)"
fi
command -v nvcc >/dev/null && nvcc --version | tail -n 2

torch_python=""
for py in ${IGNIS_BENCH_TORCH_PYTHON:-} python3 /usr/bin/python3; do
  command -v "$py" >/dev/null || continue
  if limited 60 "$py" -c 'import torch' 2>/dev/null; then torch_python=$(command -v "$py"); break; fi
done
if [ -n "$torch_python" ]; then
  export IGNIS_BENCH_TORCH_PYTHON=$torch_python
  limited 60 "$torch_python" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "GPU available:", torch.cuda.is_available())'
else
  echo "PyTorch: not found (benchmarks run without their peer)"
fi
# The nvidia-* wheels beside PyTorch: CUDA 13's gather their libraries in nvidia/cu13/lib, NCCL
# keeps nvidia/nccl/lib (CUDA 12's: one folder per library).
if [ -z "${IGNIS_CUDA_LIBS:-}" ] && [ -n "$torch_python" ]; then
  wheel_libs=$(limited 30 "$torch_python" -c '
import os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
found = [os.path.join(d, sub, "lib") for d in nvidia.__path__ for sub in ("cu13", "cublas", "nccl")]
print(":".join(p for p in found if os.path.isdir(p)))' 2>/dev/null)
  if [ -n "$wheel_libs" ]; then
    export IGNIS_CUDA_LIBS=$wheel_libs
    echo "IGNIS_CUDA_LIBS=$IGNIS_CUDA_LIBS (the nvidia-* wheels of $torch_python)"
  fi
fi

# --- 2. the addon --------------------------------------------------------------------------
section "build"
addon=""
if [ -n "${IGNIS_ADDON:-}" ]; then
  addon=$IGNIS_ADDON
  echo "using IGNIS_ADDON=$addon"
elif [ "$mode" = cpu ]; then
  [ -f build/Release/ignis.node ] || limited 600 node node_modules/node-gyp/bin/node-gyp.js rebuild -j 2
  addon=build/Release/ignis.node
elif [ -f .gpu/ignis.node ]; then
  addon=.gpu/ignis.node
elif [ -f build-cuda/Release/ignis.node ]; then
  addon=build-cuda/Release/ignis.node
else
  archs=${IGNIS_CUDA_ARCHITECTURES:-$(echo "${capability:-9.0}" | tr -d .)-real}
  echo "building with the CUDA backend for $archs"
  # as `npm run build:cuda`
  if { IGNIS_CUDA_ARCHITECTURES=$archs limited 60 node node_modules/cmake-js/bin/cmake-js configure --out build-cuda --CDIGNIS_CUDA=ON &&
    limited 360 node node_modules/cmake-js/bin/cmake-js build --out build-cuda; } >"$OUT/build.log" 2>&1; then
    addon=build-cuda/Release/ignis.node
  else
    tail -n 30 "$OUT/build.log"
  fi
fi
# the libraries the addon needs and this machine lacks, from .gpu/libs.tar.xz (only those: the
# others stay the system's)
if [ -n "$addon" ] && [ -f .gpu/libs.tar.xz ] && ldd "$addon" | grep -q 'not found'; then
  rm -rf .gpu/libs .gpu/lib && mkdir -p .gpu/libs .gpu/lib && tar -C .gpu/libs -xJf .gpu/libs.tar.xz
  export LD_LIBRARY_PATH="$root/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for _ in 1 2 3 4 5; do
    missing=$(ldd "$addon" | awk '/not found/ {print $1}' | sort -u)
    [ -z "$missing" ] && break
    for lib in $missing; do [ -f ".gpu/libs/$lib" ] && cp ".gpu/libs/$lib" .gpu/lib/; done
  done
  echo "libraries brought along: $(ls .gpu/lib | tr '\n' ' ')"
  ldd "$addon" | grep 'not found' || true
fi
export IGNIS_ADDON=${addon:+$(readlink -f "$addon")}
status_js='const ig = require("."); const s = { built: ig.cuda.isBuilt(), available: ig.cuda.isAvailable(),
  devices: ig.cuda.deviceCount(), reason: ig.cuda.unavailableReason() }; console.log(JSON.stringify(s));'
ready=0
if [ -z "$addon" ] || ! status=$(limited 60 node -e "$status_js"); then
  record "build / load" fail "${addon:-no addon built}" ""
else
  echo "$status"
  if [ "$mode" = cuda ] && ! echo "$status" | grep -q '"available":true'; then
    record "build / load" fail "CUDA not available: $(echo "$status" | sed 's/.*"reason":"\([^"]*\)".*/\1/')" ""
  else
    record "build / load" pass "${IGNIS_ADDON#"$root"/}" ""
    ready=1
  fi
fi
if [ "$ready" = 0 ]; then
  record "tests" skip "no usable addon" ""
  record "benchmarks" skip "no usable addon" ""
fi

if [ "$ready" = 1 ]; then
  # --- the CUDA runtime and libraries --------------------------------------------------------
  section "CUDA runtime and libraries"
  versions_js='const ig = require(".");
  if (!ig.cuda.isBuilt()) { console.log(`CUDA: not used (${ig.cuda.unavailableReason()})`); process.exit(0); }
  const v = ig.cuda.versions(); const libs = ig.cuda.libraries();
  const props = ig.cuda.isAvailable() ? ig.cuda.getDeviceProperties(0) : null;
  require("fs").writeFileSync(process.argv[1], JSON.stringify({ ...v, device: props, libraries: libs }, null, 2));
  console.log(`CUDA runtime ${v.runtime}, driver ${v.driver || "none"}`);
  for (const l of libs) console.log(l.loaded ? `${l.name} ${l.version} at ${l.path}` : `${l.name}: ${l.error}`);'
  if limited 60 node -e "$versions_js" "$OUT/versions.json"; then
    if [ -f "$OUT/versions.json" ]; then
      libs=$(node -e 'const v = require(process.argv[1]); console.log(v.libraries.map((l) => `${l.name} ${l.loaded ? l.version : "missing"}`).join(", "))' "$OUT/versions.json")
      # on the GPU, matmul needs cuBLAS
      if [ "$mode" = cuda ] && echo "$libs" | grep -q 'cublas missing'; then record "cuBLAS / NCCL" fail "$libs" ""; else record "cuBLAS / NCCL" pass "$libs" ""; fi
    fi
  else
    record "cuBLAS / NCCL" fail "could not query the libraries" ""
  fi

  # --- 3. tests ------------------------------------------------------------------------------
  # run_tests NAME CAP LOG FILES...: one ava run (at most CAP seconds), its log under $OUT, a row.
  run_tests() {
    local name=$1 cap=$2 log=$3 rc start=$SECONDS
    shift 3
    limited "$cap" node node_modules/ava/entrypoints/cli.mjs "$@" >"$OUT/$log" 2>&1
    rc=$?
    tail -n 25 "$OUT/$log"
    local summary
    summary=$(ava_summary "$OUT/$log" "$start")
    if [ "$rc" = 0 ]; then record "$name" pass "$summary" ""; else record "$name" fail "$summary (exit $rc)$(timed_out "$rc")" ""; fi
  }
  # The CUDA-vs-CPU tests first: what only a GPU can tell (with --cpu they compare the CPU with
  # itself, which checks the tests). The rest of the suite runs last, with the time left.
  section "CUDA tests"
  mapfile -t cuda_tests < <(find test/cuda -name '*.test.ts' ! -name nccl.test.ts | sort)
  if [ "$mode" = cuda ]; then
    # the emulated-GPU test checks kernel source on the CPU: no use of the GPU's time
    mapfile -t gpu_tests < <(printf '%s\n' "${cuda_tests[@]}" | grep -v emulated.test.ts)
    run_tests "CUDA tests" 150 cuda-tests.log "${gpu_tests[@]}"
  else
    export IGNIS_TEST_DEVICE=cpu
    run_tests "CUDA tests (CPU against CPU)" 150 cuda-tests.log "${cuda_tests[@]}"
    unset IGNIS_TEST_DEVICE
  fi

  # NCCL: the version found, and its tests on their own (every collective and dtype on one GPU;
  # two ranks, and a killed rank, where there are two GPUs).
  if [ "$mode" = cuda ]; then
    if nccl_version=$(limited 60 node -e 'try { console.log(require(".").dist.ncclVersion()) } catch (e) { console.error(e.message); process.exit(1) }' 2>"$OUT/nccl-version.err"); then
      start=$SECONDS
      limited 50 node node_modules/ava/entrypoints/cli.mjs test/cuda/nccl.test.ts >"$OUT/nccl-tests.log" 2>&1
      nccl_rc=$?
      summary=$(ava_summary "$OUT/nccl-tests.log" "$start")
      if [ "$nccl_rc" = 0 ]; then record "NCCL $nccl_version" pass "$summary" ""; else record "NCCL $nccl_version" fail "$summary (exit $nccl_rc)$(timed_out "$nccl_rc")" ""; fi
    else
      record "NCCL" fail "$(head -c 120 "$OUT/nccl-version.err")" ""
    fi
  else
    record "NCCL" skip "CPU backend" ""
  fi

  # --- 4. benchmarks -------------------------------------------------------------------------
  section "benchmarks"
  bench_args=(--device "$mode")
  [ "$quick" = 1 ] && bench_args+=(--quick)
  [ "$mode" = cpu ] && bench_args+=(--threads 1)
  # bench_rows SCRIPT RESULT CAP: runs bench/SCRIPT.js (at most CAP seconds, its output in
  # $OUT/bench-RESULT.log) and records one row per case of its JSON bench/results/RESULT.json: the
  # first ignis figure and its ratio to PyTorch.
  bench_rows() {
    local script=$1 result=bench/results/$2.json cap=$3 rc
    rm -f "$result"
    limited "$cap" node "bench/$script.js" "${bench_args[@]}" 2>&1 | tee "$OUT/bench-$2.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ] && [ -f "$result" ]; then
      cp "$result" "$OUT/"
      while IFS='|' read -r name figure ratio; do record "$name" pass "$figure" "$ratio"; done < <(node -e '
        const [file, script] = process.argv.slice(1);
        const r = require(file);
        for (const row of r.rows) {
          const key = Object.keys(row).find((k) => k.startsWith("ignis ") && k !== "ignis/torch");
          const unit = key.replace("ignis ", "");
          // as a speed ratio (above 1: ignis is faster), whether the figure is a rate or a time
          const ratio = row["ignis/torch"] === undefined ? undefined : unit === "ms" ? 1 / row["ignis/torch"] : row["ignis/torch"];
          const fmt = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
          console.log(`${script} ${row.case ?? row.step}|${fmt(row[key])} ${unit}|${ratio === undefined ? "no PyTorch" : ratio.toFixed(2) + "x PyTorch"}`);
          // other variants with their own ratio (e.g. "tensor-core ms" and "tensor-core/torch"), times only
          for (const k of Object.keys(row)) {
            const variant = k.endsWith("/torch") && k !== "ignis/torch" ? k.slice(0, -"/torch".length) : null;
            if (variant === null || typeof row[`${variant} ms`] !== "number") continue;
            const speed = typeof row[k] === "number" ? (1 / row[k]).toFixed(2) + "x PyTorch" : "no PyTorch";
            console.log(`${script} ${row.case ?? row.step} (${variant})|${fmt(row[`${variant} ms`])} ms|${speed}`);
          }
        }' "$(readlink -f "$result")" "$script")
    else
      record "$script benchmark" fail "bench/$script.js ${bench_args[*]} failed (exit $rc)$(timed_out "$rc")" ""
    fi
  }
  # collective_rows: allreduce and allgather through NCCL at world size 1 (bench/collectives.js
  # --nccl, against torch.distributed's nccl backend), one row each at the largest size: its
  # algbw (busbw = algbw * 2(n-1)/n or (n-1)/n is 0 at one rank) and the ratio of PyTorch's time
  # to ignis's; a wrong result fails the row.
  collective_rows() {
    local result=bench/results/collectives-nccl.json rc
    rm -f "$result"
    limited 45 node bench/collectives.js --nccl --ranks 1 --rounds 1 --step 16 --max-mb 64 --target-ms 100 2>&1 |
      tee "$OUT/bench-collectives-nccl.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ] && [ -f "$result" ]; then
      cp "$result" "$OUT/"
      while IFS='|' read -r name status figure ratio; do record "$name" "$status" "$figure" "$ratio"; done < <(node -e '
        const r = require(process.argv[1]);
        for (const op of ["allreduce", "allgather"]) {
          const rows = r.rows.filter((x) => x.op === op);
          const row = rows[rows.length - 1];
          if (!row) continue;
          const ratio = typeof row["torch us"] === "number" ? (row["torch us"] / row["time us"]).toFixed(2) + "x PyTorch" : "no PyTorch";
          const status = rows.some((x) => x["#wrong"] > 0) ? "fail" : "pass";
          console.log(`nccl ${op} ${row.size}|${status}|${row["algbw GB/s"].toFixed(1)} GB/s algbw, ${row["time us"].toFixed(0)} us|${ratio}`);
        }' "$(readlink -f "$result")")
    else
      record "nccl collectives benchmark" fail "bench/collectives.js --nccl failed (exit $rc)$(timed_out "$rc")" ""
    fi
  }
  # matmul (bf16, TF32, float32), the LoRA layer forward + backward, a LoRA fine-tuning step
  # (on the GPU: eager and replayed from a CUDA graph)
  if [ "$mode" = cuda ]; then
    bench_rows matmul matmul-cuda 55
    bench_rows lora lora-cuda 75
    bench_rows finetune-cuda finetune-cuda 70
    bench_rows attention attention-cuda 40
    collective_rows
  else
    bench_rows matmul matmul 55
    bench_rows lora lora 55
    bench_rows finetune finetune 70
  fi

  section "tests"
  if [ "$quick" = 1 ]; then
    other_tests=(test/errors.test.ts test/ops/elementwise.test.ts test/ops/matmul.test.ts)
  else
    mapfile -t other_tests < <(find test -name '*.test.ts' ! -path 'test/cuda/*' | sort)
  fi
  run_tests "tests" 170 tests.log "${other_tests[@]}"
fi

# --- 5. the table (written by the exit trap) -----------------------------------------------
exit "$failed"
