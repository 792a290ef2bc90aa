#!/usr/bin/env bash
# The long background run of the built-in model (issue 14): emoji32 with bilinear links on all
# 1,906 emoji (x-flipped), batch 32, DiffAugment fixed, CPU backend, 600 kimg, a checkpoint and
# SWD every 10 kimg. It runs at the lowest priority from a copy of the release binary, in a run
# folder outside the repository, so that builds and tests in the checkout do not disturb it.
#
#   tools/train-builtin.sh start     # copy target/release/inrgan, start (or resume) detached
#   tools/train-builtin.sh status    # the last log lines and checkpoints
#   tools/train-builtin.sh stop      # Ctrl-C: the trainer saves a checkpoint and exits
#
# RUNS (default ~/inrgan-runs) holds the run folder `emoji32-all`, its log and the binary copy.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$HOME/inrgan-runs}
RUN=$RUNS/emoji32-all
LOG=$RUNS/emoji32-all.log
KIMG=${KIMG:-600}

case "${1:-status}" in
start)
    mkdir -p "$RUNS/bin"
    cp target/release/inrgan "$RUNS/bin/inrgan.new"
    mv "$RUNS/bin/inrgan.new" "$RUNS/bin/inrgan"
    resume=()
    if ls -d "$RUN"/ckpt-* >/dev/null 2>&1; then resume=(--resume); fi
    # nice alone does not lower a setsid job under autogroup scheduling: lower the group too.
    (setsid nohup bash -c "echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 \
        '$RUNS/bin/inrgan' train --data emoji --preset emoji32 --out '$RUN' --kimg $KIMG \
        --batch 32 --backend cpu --augment fixed --checkpoint-kimg 10 ${resume[*]:-}" \
        >> "$LOG" 2>&1 < /dev/null &)
    echo "started ${resume[*]:-fresh} in $RUN; log: $LOG"
    ;;
status)
    tail -n 3 "$LOG" 2>/dev/null || echo "no log at $LOG"
    ls -d "$RUN"/ckpt-* 2>/dev/null | tail -n 3 || true
    ;;
stop)
    pkill -INT -f "$RUNS/bin/inrgan train" && echo "asked the trainer to save and stop"
    ;;
*)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
