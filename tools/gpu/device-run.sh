#!/bin/bash
# The prepared runs for a lent GPU machine (see ../../BENCHMARKS.md, "On a GPU"). The device
# tool allows 10 minutes a command and 15 minutes a session, and brings back at most 8 files
# under $OUT, so the work is two commands on one warm machine (call the second within the 30 s
# the machine stays warm, or it starts bare and rebuilds):
#   measure (default, ~7 min): build, the kernel/parity/generator tests on this adapter, the
#     generator and training suites (fused and unfused), the PyTorch peer side by side;
#     everything lands in $OUT/results.tgz, the headline lines in $OUT/summary.txt.
#   train (TRAIN_S seconds, default 240): train the built-in preset on the GPU backend and
#     ship its EMA generator ($OUT/emoji.safetensors, f16, with emoji.ron), the log, the metrics
#     and the newest sample grid.
# On the device machine (Vulkan loaders carried in .gl, as the device tool's README says):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; OUT=$OUT tools/gpu/device-run.sh measure
# Try it here first on lavapipe:
#   OUT=/tmp/gpu-out BENCH_BUDGET=2 PEER_SIZES=64,128 PEER_STEPS=3 tools/gpu/device-run.sh measure
#   OUT=/tmp/gpu-out TRAIN_S=30 tools/gpu/device-run.sh train
set -uo pipefail
PHASE=${1:-measure}
OUT=${OUT:-out/gpu}
TRAIN_S=${TRAIN_S:-240}
BENCH_BUDGET=${BENCH_BUDGET:-5}  # seconds per generator frame before sizes are estimated
PEER_SIZES=${PEER_SIZES:-128,256,512,1024}
PEER_STEPS=${PEER_STEPS:-16}     # timed training steps of the peer and of ours
DATA=${DATA:-emoji:smileys}
PEER_BACKEND=${PEER_BACKEND:-gpu}  # our backend beside the peer
mkdir -p "$OUT"
WORK=$(mktemp -d)                # results before they are packed (at most 8 files come back)
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }
B=target/release/inrgan

log "build ($PHASE)"
cargo build --release 2>&1 | tail -2

if [ "$PHASE" = measure ]; then
    pack() { tar -czf "$OUT/results.tgz" -C "$WORK" . ; }
    trap pack EXIT  # whatever step fails or runs out of time, what was measured comes back
    log adapter
    $B gpu 2>&1 | tee "$WORK/gpu.txt"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null \
        | tee -a "$WORK/gpu.txt"

    # Every kernel against its reference (odd shapes, finite differences) and the backends'
    # parity on this adapter: so far they have run only on lavapipe.
    log "tests: kernels, backend parity, generator on this adapter"
    cargo test --release --test gpu_kernels --test backend_parity --test generator 2>&1 \
        | grep -E "^test |test result|panicked|FAILED" > "$WORK/tests.txt"
    grep -E "test result|FAILED" "$WORK/tests.txt" | tee -a "$OUT/summary.txt"

    log "bench: generator frames (fused, then unfused) and training, both backends"
    target/release/bench --suite generator --budget "$BENCH_BUDGET" \
        --json "$WORK/bench-generator.json" > "$WORK/bench-generator.txt" 2>&1
    target/release/bench --no-fused --suite generator --filter emoji --budget "$BENCH_BUDGET" \
        --no-cpu --json "$WORK/bench-generator-unfused.json" > "$WORK/bench-generator-unfused.txt" 2>&1
    target/release/bench --suite train --json "$WORK/bench-train.json" > "$WORK/bench-train.txt" 2>&1
    for f in bench-generator bench-generator-unfused bench-train; do
        echo "-- $f" | tee -a "$OUT/summary.txt"
        grep -E "^(adapter|emoji|paper)" "$WORK/$f.txt" | cut -c1-150 | tee -a "$OUT/summary.txt"
    done

    log "peer: agreement and speed beside ours ($PEER_BACKEND backend)"
    if python3 -c "import torch" 2>/dev/null; then
        PYTHONUNBUFFERED=1 python3 tools/peer/bench_peer.py all --ours "$B" --backend "$PEER_BACKEND" \
            --weights assets/model/emoji.safetensors --size 64 --tile 1024 --sizes "$PEER_SIZES" \
            --batch 32 --steps "$PEER_STEPS" --json "$WORK/peer.json" > "$WORK/peer.txt" 2>&1
        grep -E "AGREE|DIFFER|^\|" "$WORK/peer.txt" | tee -a "$OUT/summary.txt"
    else
        echo "no torch here: peer skipped" | tee -a "$OUT/summary.txt"
    fi
    log "measure done"
elif [ "$PHASE" = train ]; then
    log "train $DATA for ${TRAIN_S}s on the GPU backend"
    timeout --signal=INT "$TRAIN_S" $B train --backend gpu --data "$DATA" --preset emoji32-smooth \
        --out "$WORK/run" --kimg 100000 --checkpoint-kimg 20 --sample-every 500 2>&1 \
        | tr '\r' '\n' | grep -v '^\s*$' | tail -40 > "$OUT/train.txt"
    # Ctrl-C (SIGINT) makes the trainer save a checkpoint; ship its EMA generator (f16).
    CK=$(ls -d "$WORK"/run/ckpt-* 2>/dev/null | sort | tail -1)
    if [ -n "$CK" ]; then
        $B ship --checkpoint "$CK" --data "$DATA" --out "$OUT/emoji.safetensors" 2>&1 | tee -a "$OUT/steps.log"
        cp "$WORK/run/metrics.jsonl" "$OUT/" 2>/dev/null
        S=$(ls "$WORK"/run/samples-*.png 2>/dev/null | sort | tail -1)
        [ -n "$S" ] && cp "$S" "$OUT/samples.png"
    fi
    log "train done"
else
    echo "usage: device-run.sh [measure|train]" >&2
    exit 2
fi
