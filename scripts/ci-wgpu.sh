#!/usr/bin/env bash
# CI's `wgpu` variant: builds the `wgpu` feature so that it cannot rot, and runs
# tests/backend_wgpu.rs (PyTorch references and flex parity on a wgpu device) on Mesa's
# software Vulkan renderer (lavapipe), which runs the compute shaders on the CPU: no GPU needed.
#
# Called from .ci/run after the main test suite (`scripts/ci-wgpu.sh`). Needs the Debian
# packages mesa-vulkan-drivers and libvulkan1; when they are missing and this runs as root
# with apt-get, it installs them (ITM_CI_NO_APT=1 turns that off and only checks).
# It builds in the `ci-wgpu` profile (Cargo.toml: no optimisation), because the wgpu feature set
# builds burn a second time; ITM_WGPU_PROFILE=dev builds it like the rest (optimised
# dependencies, as scripts/gpu-smoke.sh does). Mesa prints "XDG_RUNTIME_DIR is invalid" without
# that variable, so a temporary one is set.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan() {
    # grep reads everything: with -q it would stop early, and pipefail would report
    # ldconfig's broken pipe as a missing library.
    ldconfig -p | grep 'libvulkan\.so\.1' >/dev/null &&
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

profile="${ITM_WGPU_PROFILE:-ci-wgpu}"
output="$profile"
[[ "$profile" == dev ]] && output=debug
runtime_dir="$(mktemp -d)"
log="$runtime_dir/log"
trap 'rm -rf "$runtime_dir"' EXIT
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$runtime_dir}"

# The examples with `--device wgpu` (they share the test's dependency build).
cargo build --profile "$profile" --features wgpu --examples
# One test binary: the reference checks on the first wgpu adapter (lavapipe on a CI machine).
cargo test --profile "$profile" --features wgpu --test backend_wgpu
# The example names a missing adapter instead of panicking.
if "${CARGO_TARGET_DIR:-target}/$output/examples/vse_shapes" --device wgpu:64 2>"$log"; then
    echo "ci-wgpu: --device wgpu:64 should have failed" >&2
    exit 1
fi
grep -q 'no wgpu device 64 on this machine' "$log" || {
    cat "$log" >&2
    exit 1
}
echo "ci-wgpu: ok"
