#!/usr/bin/env bash
# The long background run of the built-in model (issue 14): emoji32-smooth (bilinear links,
# coordinate embeddings at the 8² level only; the lattice of the emoji32 runs is in BENCHMARKS) on
# all 1,906 emoji (x-flipped), batch 32, DiffAugment colour + translation (no cutout: the policy for a
# few thousand images), CPU backend, 600 kimg, a checkpoint and SWD every 10 kimg. It runs at the lowest priority from a copy of the release binary, in a run
# folder outside the repository, so that builds and tests in the checkout do not disturb it.
#
#   tools/train-builtin.sh start     # copy target/release/inrgan, start (or resume) detached
#   tools/train-builtin.sh status    # the last log lines and checkpoints
#   tools/train-builtin.sh stop      # Ctrl-C: the trainer saves a checkpoint and exits
#   tools/train-builtin.sh carry     # the newest checkpoint, compact, into carry/emoji32-smooth
#
# RUNS (default ~/inrgan-runs) holds the run folder `emoji32-smooth`, its log and the binary copy.
# Home folders do not outlive a machine here, so at the end of a sitting `carry` puts a compact
# copy of the newest checkpoint (`inrgan carry`: G-EMA and D in half floats and the run's state,
# ~15 MB) in the repository; `start` on a machine without the run folder resumes from it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$HOME/inrgan-runs}
RUN=$RUNS/emoji32-smooth
LOG=$RUNS/emoji32-smooth.log
KIMG=${KIMG:-600}
CARRY=carry/emoji32-smooth

case "${1:-status}" in
start)
    mkdir -p "$RUNS/bin"
    cp target/release/inrgan "$RUNS/bin/inrgan.new"
    mv "$RUNS/bin/inrgan.new" "$RUNS/bin/inrgan"
    resume=()
    if ! ls -d "$RUN"/ckpt-* >/dev/null 2>&1 && ls -d "$CARRY"/ckpt-* >/dev/null 2>&1; then
        mkdir -p "$RUN"
        src=$(ls -d "$CARRY"/ckpt-* | sort | tail -n 1)
        cp -r "$src" "$RUN/"
        echo "seeded $RUN from $src"
    fi
    if ls -d "$RUN"/ckpt-* >/dev/null 2>&1; then resume=(--resume); fi
    # nice alone does not lower a setsid job under autogroup scheduling: lower the group too.
    (setsid nohup bash -c "echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 \
        '$RUNS/bin/inrgan' train --data emoji --preset emoji32-smooth --out '$RUN' --kimg $KIMG \
        --batch 32 --backend cpu --augment fixed --cutout 0 --checkpoint-kimg 10 ${resume[*]:-}" \
        >> "$LOG" 2>&1 < /dev/null &)
    echo "started ${resume[*]:-fresh} in $RUN; log: $LOG"
    ;;
status)
    tail -n 3 "$LOG" 2>/dev/null || echo "no log at $LOG"
    ls -d "$RUN"/ckpt-* 2>/dev/null | tail -n 3 || true
    ;;
carry)
    src=$(ls -d "$RUN"/ckpt-* | sort | tail -n 1)
    rm -rf "$CARRY.new" && mkdir -p "$CARRY.new"
    target/release/inrgan carry --checkpoint "$src" --out "$CARRY.new"
    rm -rf "$CARRY" && mv "$CARRY.new" "$CARRY"
    ;;
stop)
    pkill -INT -f "$RUNS/bin/inrgan train" && echo "asked the trainer to save and stop"
    ;;
*)
    echo "usage: $0 start|status|stop|carry" >&2
    exit 2
    ;;
esac
