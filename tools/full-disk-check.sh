#!/usr/bin/env bash
# What a full disk during training does, on a real full file system: a 120 MB tmpfs holds one
# emoji32 checkpoint (109 MB) but not a second. Needs root (mount). Expected: warnings that
# later checkpoints were not saved, the run goes on and ends with an error only for its final
# save; ckpt-00000002 stays complete and loadable, and no partial folder is left.
#   sudo tools/full-disk-check.sh [path/to/inrgan]
set -euo pipefail
B=${1:-target/release/inrgan}
M=$(mktemp -d)
mount -t tmpfs -o size=120m tmpfs "$M"
trap 'umount "$M"; rmdir "$M"' EXIT
set +e
"$B" train --preset emoji32 --data emoji:smileys --out "$M/run" --kimg 0.32 \
    --checkpoint-kimg 0.064 --backend cpu --batch 32 2>&1 | grep -v '^\s*[0-9]*:' | tail -n 12
echo "exit status: ${PIPESTATUS[0]}"
set -e
echo "-- the run folder:"; ls -la "$M/run"; du -sh "$M/run"/* 2>/dev/null
echo "-- the complete checkpoint loads:"
"$B" info --weights "$M/run/ckpt-00000002/g_ema.safetensors" | head -n 3
