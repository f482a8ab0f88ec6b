//! Process-wide settings of the CPU runtime.
//!
//! **Freed memory stays in the process** ([`keep_freed_memory`], our design). glibc's
//! allocator serves a block above its mmap threshold (128 KiB at start, raised as blocks are
//! freed up to 32 MiB) with pages mapped for it alone, and unmaps them on free; it also hands
//! the top of its heap back to the system above a trim threshold. A training step on `flex`
//! allocates and frees tensors of tens to hundreds of MiB many times (a fine-grained head's
//! `[B, B, K, L]` attention, the activations kept for the backward pass), so each step the
//! kernel maps those pages again, faults on each one and zero-fills it: in a profile of a
//! `hat` epoch on `shapes` (2-core AMD EPYC, 2026-12-07) the page faults and page clearing held
//! about 15 % of the samples and system time was 45 % of the wall time. Raising both
//! thresholds to 1 GiB keeps the freed blocks for the next step: the same epoch took 41–44 s
//! instead of 76–82 s. The price is that the process keeps its peak heap until it exits
//! (the peak itself is unchanged), which suits the `itm` command and the benchmarks; a
//! library caller decides for its own process.
//!
//! On targets without glibc (musl, macOS, Windows) it does nothing.

/// Threshold of both settings: blocks up to 1 GiB come from the heap, and up to 1 GiB of free
/// heap top stays mapped.
const THRESHOLD: i32 = 1 << 30;

/// Tells the C allocator to serve blocks up to 1 GiB from its heap and to keep freed memory
/// mapped for reuse (see the module documentation). Call it once, early in `main`, before
/// threads allocate. Returns whether the allocator accepted both settings (`false` on targets
/// without glibc).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes two tunables of glibc's allocator; it takes no
        // pointers and is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::keep_freed_memory());
        // Blocks above the old thresholds still allocate, and are freed.
        let block = vec![1.0f32; 64 << 20];
        assert_eq!((block.len(), block[block.len() - 1]), (64 << 20, 1.0));
    }
}
