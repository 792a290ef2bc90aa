#!/usr/bin/env bash
# Re-makes the README's pictures of a model beside the previous built-in model, same seeds:
#   bash tools/pictures.sh NEW.safetensors OLD.safetensors OUT_DIR
# grid (36 seeds at 64 px), 8x superresolution of seed 1 (256² of the training square),
# extrapolation of seed 1 over [-2, 2]² and [-8, 8]², and a far zoom-out over [-32, 32]² at 256²
# single-sampled and anti-aliased (supersampled). Uses target/release/inrgan.
set -euo pipefail
new=$1 old=$2 out=$3
B=${INRGAN:-target/release/inrgan}
mkdir -p "$out"
for tag in new old; do
    w=${!tag}
    $B render --weights "$w" --grid 6 --size 64 --seed 1 --backend cpu --out "$out/grid-$tag.png"
    $B render --weights "$w" --seed 1 --size 32 --backend cpu --out "$out/seed1-32-$tag.png"
    $B render --weights "$w" --seed 1 --size 256 --backend cpu --out "$out/superres-8x-$tag.png"
    $B render --weights "$w" --seed 1 --size 256 --window=-2,-2,2,2 --backend cpu --out "$out/extrapolation-2x-$tag.png"
    $B render --weights "$w" --seed 1 --size 256 --window=-8,-8,8,8 --backend cpu --out "$out/extrapolation-8x-$tag.png"
    $B render --weights "$w" --seed 1 --size 256 --window=-32,-32,32,32 --backend cpu --supersample 1 --out "$out/far-single-$tag.png"
    $B render --weights "$w" --seed 1 --size 256 --window=-32,-32,32,32 --backend cpu --out "$out/far-aa-$tag.png"
done
$B seams "$out"/superres-8x-*.png
