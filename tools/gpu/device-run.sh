#!/bin/bash
# One prepared run for a lent GPU machine (see ../../BENCHMARKS.md, "On a GPU"): the adapter,
# the kernel tests on it, the benchmark suite, the PyTorch peer side by side, and a training run of the built-in model
# through wgpu on that GPU, each writing under $OUT. Try it here first on lavapipe:
#   OUT=/tmp/gpu-out TRAIN_S=30 BENCH_BUDGET=2 PEER_SIZES=64,128 tools/gpu/device-run.sh
# On the device machine (Vulkan loaders carried in .gl, as the device tool's README says):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; OUT=$OUT tools/gpu/device-run.sh
set -uo pipefail
OUT=${OUT:-out/gpu}
TRAIN_S=${TRAIN_S:-420}          # seconds of training (the rest of a 15-minute loan)
BENCH_BUDGET=${BENCH_BUDGET:-5}  # seconds per generator frame before sizes are estimated
PEER_SIZES=${PEER_SIZES:-128,256,512,1024}
DATA=${DATA:-emoji:smileys}
PEER_BACKEND=${PEER_BACKEND:-gpu}  # our backend beside the peer
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }

log build
cargo build --release 2>&1 | tail -2
B=target/release/inrgan

log adapter
$B gpu 2>&1 | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null | tee -a "$OUT/gpu.txt"

# Every kernel against its reference (odd shapes, finite differences) and the backends' parity,
# on this adapter: so far they have run only on lavapipe.
log "tests: kernels, backend parity, generator on this adapter"
cargo test --release --test gpu_kernels --test backend_parity --test generator 2>&1 \
    | grep -E "^test |test result|panicked|FAILED" | tee "$OUT/tests.txt" | tail -8

log "bench: generator frames and training, both backends"
target/release/bench --suite generator --budget "$BENCH_BUDGET" --json "$OUT/bench-generator.json" 2>&1 \
    | tee "$OUT/bench-generator.txt"
# The same frames through the unfused kernels (the fused blocks are the default).
INRGAN_FUSED=0 target/release/bench --suite generator --filter emoji --budget "$BENCH_BUDGET" \
    --no-cpu --json "$OUT/bench-generator-unfused.json" 2>&1 | tee "$OUT/bench-generator-unfused.txt"
target/release/bench --suite train --json "$OUT/bench-train.json" 2>&1 | tee "$OUT/bench-train.txt"

log "peer: agreement and speed beside ours ($PEER_BACKEND backend)"
if python3 -c "import torch" 2>/dev/null; then
    PYTHONUNBUFFERED=1 python3 tools/peer/bench_peer.py all --ours "$B" --backend "$PEER_BACKEND" \
        --weights assets/model/emoji.safetensors --size 64 --tile 1024 --sizes "$PEER_SIZES" \
        --batch 32 --steps 16 --json "$OUT/peer.json" 2>&1 | tee "$OUT/peer.txt"
else
    echo "no torch here: peer skipped" | tee "$OUT/peer.txt"
fi

log "train $DATA for ${TRAIN_S}s on the GPU backend"
timeout --signal=INT "$TRAIN_S" $B train --backend gpu --data "$DATA" --preset emoji32 \
    --out "$OUT/run" --kimg 100000 --checkpoint-kimg 20 --sample-every 500 2>&1 \
    | tr '\r' '\n' | grep -v '^\s*$' | tail -40 > "$OUT/train.txt"
# Ctrl-C (SIGINT) makes the trainer save a checkpoint; keep only what the repo needs.
rm -f "$OUT"/run/ckpt-*/adam.* "$OUT"/run/ckpt-*/d.* 2>/dev/null
ls -la "$OUT/run" | tee -a "$OUT/steps.log"
log done
