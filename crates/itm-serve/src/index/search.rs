//! Exact top-k search over a `[rows, D]` float32 `.npy` matrix, read in blocks.
//!
//! Scores are inner products of unit vectors, i.e. cosine similarities. The matrix is never
//! copied into the process: each search maps the file's values read-only and unmaps them when
//! it returns (where the values cannot be read in place, a big-endian machine, blocks are read
//! into a buffer instead), scores them block by block against every query, and folds each
//! block into one `k`-sized min-heap per query; a scanned block is released from the resident
//! set (the page cache keeps it). Memory is `O(threads · (BLOCK_BYTES + queries · k))` whatever
//! the number of rows. Mapping instead of reading saves the copy out of the page cache, which
//! took two thirds of a one-query scan (profile in docs/performance.md).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use itm_core::similarity::host_inner_products;
use itm_data::npy::MappedF32;
use rayon::prelude::*;

use crate::ServeError;

/// Bytes of matrix read per block at most (rows per block: this over the row size, at least
/// one). The page cache maps large files in 2 MiB pages: releasing a scanned block splits the
/// huge pages at its edges and flushes the other cores' TLBs, which took about a fifth of a
/// one-query scan with 1 MiB blocks (perf, 100,000 × 1,024 rows, 2 threads, 2026-12-07).
/// 8 MiB blocks: 17.1 ms → 12.1 ms at 2 threads, 18.6 ms → 16.5 ms at 1
/// (`benches/retrieval.rs` `search/100k/1q`); 16 MiB was no faster.
pub const BLOCK_BYTES: usize = 8 << 20;

/// Bytes per block at least, and blocks per matrix at least when the blocks are smaller than
/// [`BLOCK_BYTES`]: small matrices keep enough blocks for rayon's threads to balance, and the
/// blocks being scanned stay a small fraction of the matrix.
const MIN_BLOCK_BYTES: usize = 1 << 20;
const MIN_BLOCKS: usize = 48;

/// From this many queries on, a block is scored by one GEMM (`[rows, D] · [queries, D]ᵀ`) instead
/// of one inner product per (row, query): on 100,000 × 1,024 rows (benches/retrieval.rs `search`)
/// a batch of 1,000 queries takes 2.1 s with the GEMM on 2 threads, against NumPy's 2.7 s
/// (docs/performance.md, 2026-12-07). Fewer queries keep the inner products (a GEMM of a few
/// columns runs below the kernel's speed). Scores of the two paths agree to rounding (the order
/// of the additions differs).
const GEMM_QUERIES: usize = 8;

/// One result: a row of the matrix and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Row (image or caption number).
    pub index: usize,
    /// Inner product with the query.
    pub score: f32,
}

impl Hit {
    /// Best first: higher score, then lower index (a total order, so results are
    /// deterministic under ties).
    pub fn rank_order(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.index.cmp(&other.index))
    }
}

/// A heap entry ordered so that the worst kept hit is at the top of a max-heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Worst(Hit);

impl Eq for Worst {}

impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_order(&other.0)
    }
}

/// The best `k` hits seen so far.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && hit.rank_order(&worst.0) == Ordering::Less
        {
            *worst = Worst(hit);
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for Worst(hit) in other.heap {
            self.push(hit);
        }
        self
    }

    fn into_sorted(self) -> Vec<Hit> {
        // `into_sorted_vec` is ascending in `Worst` order, i.e. best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| w.0)
            .collect()
    }
}

/// A `[rows, dim]` little-endian float32 `.npy` file whose header and size were checked.
#[derive(Debug, Clone)]
pub struct EmbeddingMatrix {
    path: PathBuf,
    offset: u64,
    rows: usize,
    dim: usize,
}

impl EmbeddingMatrix {
    /// Checks the header, shape and byte size of `path` (an `[axes]` matrix).
    pub fn open(path: &Path, axes: &str) -> Result<Self, ServeError> {
        let mapped = MappedF32::open(path, 2, axes)?;
        let (rows, dim) = (mapped.shape()[0], mapped.shape()[1]);
        let size = std::fs::metadata(path)
            .map_err(|e| ServeError::io(path, e))?
            .len();
        Ok(Self {
            path: path.to_path_buf(),
            offset: size - (rows * dim * 4) as u64,
            rows,
            dim,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads rows `start..start + count` into `buffer` (resized to `count · dim`).
    fn read_rows(
        &self,
        file: &mut std::fs::File,
        start: usize,
        count: usize,
        buffer: &mut Vec<f32>,
    ) -> Result<(), ServeError> {
        buffer.resize(count * self.dim, 0.0);
        file.seek(SeekFrom::Start(self.offset + (start * self.dim * 4) as u64))
            .and_then(|_| file.read_exact(bytemuck_bytes(buffer)))
            .map_err(|e| ServeError::io(&self.path, e))?;
        if cfg!(target_endian = "big") {
            for value in buffer.iter_mut() {
                *value = f32::from_bits(u32::from_le(value.to_bits()));
            }
        }
        Ok(())
    }

    /// Row `index`.
    pub fn row(&self, index: usize) -> Result<Vec<f32>, ServeError> {
        assert!(index < self.rows, "row {index} of {}", self.rows);
        let mut file =
            std::fs::File::open(&self.path).map_err(|e| ServeError::io(&self.path, e))?;
        let mut buffer = Vec::new();
        self.read_rows(&mut file, index, 1, &mut buffer)?;
        Ok(buffer)
    }

    /// The `k` rows with the highest inner product with each query (`queries`: `[q, dim]`,
    /// row-major), best first, ties broken by the lower row. Exact: every row is scored.
    pub fn top_k(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, ServeError> {
        let matrix_bytes = self.rows * self.dim * 4;
        let block_bytes = (matrix_bytes / MIN_BLOCKS).clamp(MIN_BLOCK_BYTES, BLOCK_BYTES);
        self.top_k_blocked(queries, k, (block_bytes / (4 * self.dim)).max(1))
    }

    /// [`EmbeddingMatrix::top_k`] with `block_rows` rows per block.
    pub fn top_k_blocked(
        &self,
        queries: &[f32],
        k: usize,
        block_rows: usize,
    ) -> Result<Vec<Vec<Hit>>, ServeError> {
        assert!(
            queries.len().is_multiple_of(self.dim),
            "queries of width {}",
            self.dim
        );
        let n_queries = queries.len() / self.dim;
        let k = k.min(self.rows);
        let blocks: Vec<usize> = (0..self.rows.div_ceil(block_rows.max(1))).collect();
        let empty = || (0..n_queries).map(|_| TopK::new(k)).collect::<Vec<_>>();
        let mapped = self.map_matrix()?;
        let matrix: Option<&[f32]> = mapped
            .as_deref()
            .and_then(|bytes| bytemuck::try_cast_slice(bytes).ok());
        let best = blocks
            .par_iter()
            .map_init(
                || (None, Vec::new(), Vec::new()),
                |(file, buffer, scores), &block| {
                    let start = block * block_rows;
                    let count = block_rows.min(self.rows - start);
                    let rows: &[f32] = match matrix {
                        Some(matrix) => &matrix[start * self.dim..(start + count) * self.dim],
                        None => {
                            // Read instead (a big-endian machine): one file per thread.
                            if file.is_none() {
                                *file = Some(
                                    std::fs::File::open(&self.path)
                                        .map_err(|e| ServeError::io(&self.path, e))?,
                                );
                            }
                            let file = file.as_mut().expect("opened above");
                            self.read_rows(file, start, count, buffer)?;
                            buffer.as_slice()
                        }
                    };
                    let mut heaps = empty();
                    if n_queries >= GEMM_QUERIES {
                        // [count, n_queries]: one GEMM per block (this task is one of rayon's).
                        scores.resize(count * n_queries, 0.0);
                        host_inner_products(rows, queries, self.dim, scores, false);
                        for (row, row_scores) in scores.chunks_exact(n_queries).enumerate() {
                            for (heap, &score) in heaps.iter_mut().zip(row_scores) {
                                heap.push(Hit {
                                    index: start + row,
                                    score,
                                });
                            }
                        }
                    } else {
                        for (row, values) in rows.chunks_exact(self.dim).enumerate() {
                            for (heap, query) in
                                heaps.iter_mut().zip(queries.chunks_exact(self.dim))
                            {
                                heap.push(Hit {
                                    index: start + row,
                                    score: dot(values, query),
                                });
                            }
                        }
                    }
                    if let Some(map) = &mapped {
                        release(map, start * self.dim * 4, count * self.dim * 4);
                    }
                    Ok::<_, ServeError>(heaps)
                },
            )
            .try_reduce(empty, |a, b| {
                Ok(a.into_iter().zip(b).map(|(a, b)| a.merge(b)).collect())
            })?;
        Ok(best.into_iter().map(TopK::into_sorted).collect())
    }
}

impl EmbeddingMatrix {
    /// The matrix's values, mapped read-only for one search; `None` on a big-endian machine
    /// (the values must be swapped: read them instead) or for an empty matrix.
    fn map_matrix(&self) -> Result<Option<memmap2::Mmap>, ServeError> {
        if cfg!(target_endian = "big") || self.rows * self.dim == 0 {
            return Ok(None);
        }
        let io = |e| ServeError::io(&self.path, e);
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let bytes = self.rows * self.dim * 4;
        // A file cut short since `open` would fault the mapping past its end: refuse it.
        let size = file.metadata().map_err(io)?.len();
        if size < self.offset + bytes as u64 {
            return Err(ServeError::corrupt(
                &self.path,
                format!(
                    "{size} bytes, where the header's [{}, {}] float32 values need {}",
                    self.rows,
                    self.dim,
                    self.offset + bytes as u64
                ),
            ));
        }
        // SAFETY: a read-only mapping of the values the header sized, within the file (checked
        // just above); `itm` replaces the files of an index by renaming (atomic writes), never
        // rewrites them in place, so the mapped bytes do not change during the search.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(self.offset)
                .len(bytes)
                .map(&file)
        }
        .map_err(io)?;
        Ok(Some(map))
    }
}

/// Drops the scanned bytes `offset..offset + len` of `map` from the process's resident set (the
/// page cache keeps them): the scan then holds about one block per thread, not the matrix.
/// Best effort: a refusal only leaves the pages mapped until the search returns.
fn release(map: &memmap2::Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: the map is a read-only mapping of a file, shared: `MADV_DONTNEED` unmaps its
    // pages from this process, and a later read faults the same bytes back in from the page
    // cache (a page shared with a neighbouring block that another thread is scanning reads
    // the same values again).
    unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            .ok();
    }
    #[cfg(not(unix))]
    let _ = (map, offset, len);
}

/// The bytes of a float buffer, to read into.
fn bytemuck_bytes(values: &mut [f32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(values)
}

/// Inner product, accumulated in 8 lanes (vectorises; a fixed order, so repeatable).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use itm_data::npy::write_f32;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn matrix(name: &str, rows: usize, dim: usize, seed: u64) -> (EmbeddingMatrix, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        // Values on a coarse grid, so that many scores tie exactly.
        let values: Vec<f32> = (0..rows * dim)
            .map(|_| rng.random_range(-2i32..=2) as f32 * 0.5)
            .collect();
        let path = std::env::temp_dir().join(format!("itm-topk-{name}-{}.npy", std::process::id()));
        write_f32(&path, &[rows, dim], &values).unwrap();
        (EmbeddingMatrix::open(&path, "[rows, dim]").unwrap(), values)
    }

    /// A matrix file cut short after it was opened is refused by name, not read past its end.
    #[test]
    fn a_file_truncated_after_opening_is_an_error() {
        let (matrix, values) = matrix("truncated", 50, 8, 3);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&matrix.path)
            .unwrap();
        let size = file.metadata().unwrap().len();
        file.set_len(size - 64).unwrap();
        let Err(error) = matrix.top_k(&values[..8], 3) else {
            panic!("a truncated matrix is refused")
        };
        let message = error.to_string();
        assert!(
            message.contains("itm-topk-truncated") && message.contains("bytes"),
            "{message}"
        );
        std::fs::remove_file(&matrix.path).ok();
    }

    #[test]
    fn blocked_top_k_equals_a_full_sort() {
        let (rows, dim) = (1000, 11);
        let (matrix, values) = matrix("sort", rows, dim, 1);
        let queries = &values[..3 * dim];
        for block in [1, 7, 64, 5000] {
            let found = matrix.top_k_blocked(queries, 25, block).unwrap();
            for (q, hits) in found.iter().enumerate() {
                let query = &queries[q * dim..(q + 1) * dim];
                let mut all: Vec<Hit> = (0..rows)
                    .map(|i| Hit {
                        index: i,
                        score: dot(&values[i * dim..(i + 1) * dim], query),
                    })
                    .collect();
                all.sort_by(Hit::rank_order);
                assert_eq!(hits[..], all[..25], "block {block}, query {q}");
            }
        }
        assert_eq!(matrix.top_k(queries, 5000).unwrap()[0].len(), rows);
        assert_eq!(matrix.row(3).unwrap(), values[3 * dim..4 * dim]);
        std::fs::remove_file(matrix.path()).unwrap();
    }

    #[test]
    fn a_batch_of_queries_scored_by_gemm_equals_a_full_sort() {
        // On the coarse grid every product and sum is exact, so both paths give equal scores.
        let (rows, dim) = (700, 13);
        let (matrix, values) = matrix("gemm", rows, dim, 2);
        let queries = &values[..(GEMM_QUERIES + 3) * dim];
        for block in [1, 64, 5000] {
            let found = matrix.top_k_blocked(queries, 9, block).unwrap();
            assert_eq!(found.len(), GEMM_QUERIES + 3);
            for (q, hits) in found.iter().enumerate() {
                let query = &queries[q * dim..(q + 1) * dim];
                let mut all: Vec<Hit> = (0..rows)
                    .map(|i| Hit {
                        index: i,
                        score: dot(&values[i * dim..(i + 1) * dim], query),
                    })
                    .collect();
                all.sort_by(Hit::rank_order);
                assert_eq!(hits[..], all[..9], "block {block}, query {q}");
            }
        }
        std::fs::remove_file(matrix.path()).unwrap();
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.5).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), plain);
    }
}
