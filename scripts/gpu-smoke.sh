#!/usr/bin/env bash
# GPU smoke test, one command: on a machine with a GPU, runs the wgpu tests
# (tests/backend_wgpu.rs) and a short training run of the main example (examples/vse_shapes.rs)
# on the GPU, and prints its throughput beside the same run on the CPU (flex).
#
#   scripts/gpu-smoke.sh [DEVICE]      DEVICE: wgpu (default: the adapter wgpu prefers), wgpu:N
#
# Environment:
#   ITM_SMOKE_IMAGES  training images of the short run (default 2000; 5 captions each)
#   ITM_SMOKE_EPOCHS  epochs of the short run (default 1)
#   ITM_SMOKE_FLEX=0  skip the CPU baseline run
#   ITM_SMOKE_CUDA=1  also build the `cuda` feature and run on `cuda` (needs the LLVM bundle
#                     of tracel-llvm-bundler, fetched from GitHub at build time or pre-seeded:
#                     docs/backends.md, and an NVIDIA driver at run time)
#
# On an NVIDIA machine wgpu reaches the GPU through Vulkan (the driver's own ICD, from the
# driver package). Without a GPU it runs on Mesa's software Vulkan (lavapipe), which proves the
# script end to end but measures a CPU, slowly: use a small ITM_SMOKE_IMAGES there.
set -euo pipefail
cd "$(dirname "$0")/.."

device="${1:-wgpu}"
images="${ITM_SMOKE_IMAGES:-2000}"
epochs="${ITM_SMOKE_EPOCHS:-1}"
features="wgpu"
if [[ "${ITM_SMOKE_CUDA:-0}" == 1 ]]; then
    features="wgpu,cuda"
fi

echo "== machine"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
if command -v vulkaninfo >/dev/null; then
    vulkaninfo --summary 2>/dev/null | grep -E '^\s*(deviceName|deviceType|driverName)' || true
fi

echo "== tests on $device (features $features)"
ITM_TEST_WGPU_DEVICE="$device" cargo test --features "$features" --test backend_wgpu

echo "== building the main example"
cargo build --features "$features" --example vse_shapes
example="${CARGO_TARGET_DIR:-target}/debug/examples/vse_shapes"

# Trains on `$1` and prints the epoch throughput read back from metrics.jsonl.
run() {
    local name="$1" out
    out="$(mktemp -d)"
    echo "== vse_shapes on $name: $images images x 5 captions, $epochs epoch(s)"
    "$example" --device "$name" --train-images "$images" --epochs "$epochs" --quiet \
        --output "$out" | tail -n 4
    # Each metrics.jsonl line holds one epoch's "seconds" (training and dev validation).
    awk -v pairs="$((images * 5))" -v name="$name" '
        match($0, /"seconds":[0-9.eE+-]+/) {
            s = substr($0, RSTART + 10, RLENGTH - 10)
            total += s; n += 1
        }
        END {
            if (n == 0) { print name ": no epoch recorded" > "/dev/stderr"; exit 1 }
            printf "THROUGHPUT %s: %.0f image-caption pairs/s (%.1f s per epoch incl. validation)\n",
                name, pairs * n / total, total / n
        }' "$out/metrics.jsonl"
    rm -rf "$out"
}

run "$device"
if [[ "${ITM_SMOKE_CUDA:-0}" == 1 ]]; then
    run cuda
fi
if [[ "${ITM_SMOKE_FLEX:-1}" != 0 ]]; then
    run flex
fi
