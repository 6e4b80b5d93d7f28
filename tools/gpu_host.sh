#!/usr/bin/env bash
# Run on the GPU test host (see docs/performance.md): install the carried wheels, then one of
#   bash tools/gpu_host.sh tests      # the gpu-marked tests + bench_recon
#   bash tools/gpu_host.sh entrypoints  # infer.py / train.py / evaluate.py as subprocesses (docs/performance.md)
#   bash tools/gpu_host.sh generate   # bench_generate (random 14B weights)
#   bash tools/gpu_host.sh levers     # bench_generate --levers: the issue-6 table, under 9 minutes
#   bash tools/gpu_host.sh cli [...]  # bench_generate --through-cli: infer.py stage=all, reference path vs default
#                                     # (carry .whl_av too: av writes the mp4s)
#   bash tools/gpu_host.sh text       # bench_text_encoder: UMT5-XXL resident vs streamed
#   bash tools/gpu_host.sh warmup     # bench_compile_warmup --real: a new process's compile cost, with and without
#                                     # dynamo's caching precompile
#   bash tools/gpu_host.sh parallel   # 2+ GPUs: one 480x832x81 video over all GPUs vs one (bench_parallel)
#   bash tools/gpu_host.sh scaling    # 2+ GPUs: train.py ZeRO-3 on 1 and all GPUs (bench_train_scaling)
#   bash tools/gpu_host.sh train      # bench_train: compiled ZeRO-2 steps, full vs selective checkpointing
#   bash tools/gpu_host.sh profile    # profile_dit: kernel time per category, kernel-bound floor
#   bash tools/gpu_host.sh attention  # bench_attention: SDPA backends (+ FA4 / FA3 when importable) at the DiT's shapes
set -uo pipefail
# .whl_av (PyAV, 36 MB: carried beside .whl when the mp4s are written, e.g. `cli`) is installed when present
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  $(ls .whl_av/*.whl 2>/dev/null) || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$OUT/gpu.txt"
case "${1:-tests}" in
  tests)
    python3 -m pytest -q -m gpu tests/gpu -s -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
    python3 tools/bench_recon.py --out "$OUT/bench_recon.json" 2>&1 | tee "$OUT/bench_recon.log"
    python3 tools/bench_recon.py --static --sizes 49x512x768 --out "$OUT/bench_recon_static.json" 2>&1 | tail -5 | tee -a "$OUT/bench_recon.log"
    ;;
  entrypoints)
    EX4D_GPU_REPORT="$OUT/entrypoints.jsonl" python3 -m pytest -q -m gpu tests/gpu/test_entrypoints_gpu.py -s \
      -p no:cacheprovider 2>&1 | tee "$OUT/entrypoints.log"
    ;;
  generate)
    shift
    python3 tools/bench_generate.py --json "$OUT/bench_generate.json" "$@" 2>&1 | tee "$OUT/bench_generate.log"
    ;;
  levers)
    shift
    python3 tools/bench_generate.py --levers --json "$OUT/levers.json" "$@" 2>&1 | tee "$OUT/levers.log"
    ;;
  parallel)
    shift
    N=$(nvidia-smi -L | wc -l)
    timeout 420 torchrun --nproc_per_node="$N" tools/bench_parallel.py --context ulysses --baseline \
      --save-baseline /tmp/cp_base.pt --json "$OUT/parallel_ulysses.json" "$@" 2>&1 | tee "$OUT/parallel.log"
    timeout 150 torchrun --nproc_per_node="$N" tools/bench_parallel.py --context ring --load-baseline /tmp/cp_base.pt \
      --no-video --json "$OUT/parallel_ring.json" "$@" 2>&1 | tee -a "$OUT/parallel.log"
    ;;
  scaling)
    shift
    N=$(nvidia-smi -L | wc -l)
    python3 tools/bench_train_scaling.py --devices "1,$N" --json "$OUT/scaling.json" "$@" 2>&1 | tee "$OUT/scaling.log"
    ;;
  train)
    shift
    for policy in save_self_attention full; do
      python3 tools/bench_train.py --compile --modes cached --steps 4 --warmup 3 --checkpoint-policy $policy \
        --out "$OUT/bench_train_$policy.json" "$@" 2>&1 | tee "$OUT/bench_train_$policy.log"
    done
    ;;
  attention)
    shift
    python3 tools/bench_attention.py --json "$OUT/bench_attention.json" "$@" 2>&1 | tee "$OUT/bench_attention.log"
    ;;
  cli)
    shift
    python3 tools/bench_generate.py --through-cli --json "$OUT/through_cli.json" --doc docs/performance.md "$@" \
      2>&1 | tee "$OUT/through_cli.log"
    cp docs/performance.md "$OUT/performance.md"
    ;;
  text)
    shift
    python3 tools/bench_text_encoder.py --json "$OUT/bench_text_encoder.json" "$@" 2>&1 | tee "$OUT/bench_text_encoder.log"
    ;;
  warmup)
    shift
    python3 tools/bench_compile_warmup.py --real --json "$OUT/compile_warmup.json" "$@" 2>&1 | tee "$OUT/compile_warmup.log"
    ;;
  profile)
    shift
    python3 tools/profile_dit.py --json "$OUT/profile_dit.json" "$@" 2>&1 | tee "$OUT/profile_dit.log"
    ;;
esac
