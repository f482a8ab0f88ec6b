#!/usr/bin/env bash
# CI's `wgpu` variant: builds the `wgpu` feature so that it cannot rot, and runs
# tests/backend_wgpu.rs (PyTorch references and flex parity on a wgpu device) on Mesa's
# software Vulkan renderer (lavapipe), which runs the compute shaders on the CPU: no GPU needed.
#
# Called from .ci/run after the main test suite (`scripts/ci-wgpu.sh`). Needs the Debian
# packages mesa-vulkan-drivers and libvulkan1; when they are missing and this runs as root
# with apt-get, it installs them (ITM_CI_NO_APT=1 turns that off and only checks).
# Cost on an unloaded 2-core machine: the wgpu build adds ≈5 min and ≈5 GB to target/ (burn is
# built a second time with the wgpu feature set).
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan() {
    ldconfig -p | grep -q 'libvulkan\.so\.1' &&
        compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null
}

if ! have_vulkan; then
    if [[ -z "${ITM_CI_NO_APT:-}" && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "ci-wgpu: installing Mesa's Vulkan driver (mesa-vulkan-drivers libvulkan1)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            mesa-vulkan-drivers libvulkan1 >/dev/null
    fi
    if ! have_vulkan; then
        echo "ci-wgpu: no Vulkan loader or driver: install mesa-vulkan-drivers and libvulkan1" >&2
        exit 1
    fi
fi

# The examples with `--device wgpu` (they share the test's dependency build).
cargo build --features wgpu --examples
# One test binary: the reference checks on the first wgpu adapter (lavapipe on a CI machine).
cargo test --features wgpu --test backend_wgpu
# The example names a missing adapter instead of panicking.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if target/debug/examples/vse_shapes --device wgpu:64 2>"$log"; then
    echo "ci-wgpu: --device wgpu:64 should have failed" >&2
    exit 1
fi
grep -q 'no wgpu device 64 on this machine' "$log" || {
    cat "$log" >&2
    exit 1
}
echo "ci-wgpu: ok"
