#!/usr/bin/env bash
# The two-stage search table of docs/search.md: trains every fine-grained zoo entry briefly on
# `shapes` (2,000 training images, 1 epoch, D = 64, region features of width 64), then measures
# recall@10 of two-stage against exhaustive ranking and the time of both on the 1,000-image test
# split at k = 10, 100, 1000 (examples/two_stage_search.rs).
#
#   scripts/two_stage_shapes.sh [OUTPUT_FOLDER]      (default: /tmp/two-stage-shapes)
#
# Set RAYON_NUM_THREADS to fix the thread count; the table's timings depend on the machine.
set -euo pipefail
out=${1:-/tmp/two-stage-shapes}
mkdir -p "$out"
cargo build --workspace --examples
bin=${CARGO_TARGET_DIR:-target}/debug
models=(scan_t2i scan_i2t chan chan_asdg esl_h esl_a xdim)
checkpoints=()
for model in "${models[@]}"; do
  run="$out/$model"
  if [ ! -f "$run/model.bpk" ]; then
    cat > "$out/$model.toml" <<TOML
output = "$run"
[model]
embed = 64
word_dim = 64
[data]
kind = "shapes"
train_images = 2000
dev_images = 100
test_images = 1000
feature_width = 64
[training]
epochs = 1
batch_size = 64
learning_rate = 2e-3
warmup_epochs = 0
lr_decay_epoch = 1
validation_captions = 500
TOML
    "$bin/itm" train --model "$model" --config "$out/$model.toml" --quiet > "$out/$model.train.txt"
  fi
  checkpoints+=(--checkpoint "$run")
done
"$bin/examples/two_stage_search" "${checkpoints[@]}" --k 10 --k 100 --k 1000
