//! Cosine similarity of global embeddings, on the device for a batch and in bounded blocks for
//! whole test sets.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::masking::l2_normalize;

/// `S = l2norm(images) · l2norm(captions)ᵀ`.
///
/// - `images`: `[n_img, dim]`, `captions`: `[n_cap, dim]`
/// - returns `[n_img, n_cap]`
pub fn cosine_similarity(images: Tensor<2>, captions: Tensor<2>) -> Tensor<2> {
    l2_normalize(images).matmul(l2_normalize(captions).transpose())
}

/// Cosine similarity of two host-side embedding sets, computed on a device in blocks so that
/// no more than `block_rows × block_cols` scores live on the device at once.
///
/// Embeddings are row-major `[n, dim]` slices and are l2-normalised per row here. The result is
/// the full `[n_img, n_cap]` row-major matrix on the host (the evaluation protocol needs it).
///
/// On the `flex` (CPU) device the embeddings already are where the kernel runs: the rows are
/// normalised once and one GEMM writes the whole matrix into the result buffer (our design;
/// no upload, no block copies, no transposed operand view). Other devices take the blocked path.
#[derive(Debug, Clone)]
pub struct BlockedCosine {
    /// Device the block products run on.
    pub device: Device,
    /// Image rows per block.
    pub block_rows: usize,
    /// Caption columns per block.
    pub block_cols: usize,
    /// Whether a `flex` device takes the host GEMM (default `true`); `false` forces the blocked
    /// device path, e.g. to compare the two.
    pub host_gemm: bool,
}

impl BlockedCosine {
    /// Blocks of 1024 × 8192 scores (32 MiB of f32) on `device`.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            block_rows: 1024,
            block_cols: 8192,
            host_gemm: true,
        }
    }

    /// Sets the block shape.
    pub fn with_blocks(mut self, block_rows: usize, block_cols: usize) -> Self {
        assert!(
            block_rows > 0 && block_cols > 0,
            "block sizes must be positive"
        );
        self.block_rows = block_rows;
        self.block_cols = block_cols;
        self
    }

    /// `images`: `[n_img, dim]`, `captions`: `[n_cap, dim]`, row-major → `[n_img, n_cap]`.
    pub fn compute(&self, images: &[f32], captions: &[f32], dim: usize) -> Vec<f32> {
        assert!(dim > 0, "embedding width must be positive");
        assert!(
            images.len().is_multiple_of(dim) && captions.len().is_multiple_of(dim),
            "embedding buffers must hold whole rows of width {dim}"
        );
        let n_img = images.len() / dim;
        let n_cap = captions.len() / dim;
        if self.host_gemm && self.device == Device::flex() {
            return host_cosine(images, captions, n_img, n_cap, dim);
        }
        let mut scores = vec![0.0f32; n_img * n_cap];
        let caption_blocks: Vec<Tensor<2>> = (0..n_cap)
            .step_by(self.block_cols)
            .map(|start| {
                let end = (start + self.block_cols).min(n_cap);
                self.upload(&captions[start * dim..end * dim], end - start, dim)
                    .transpose()
            })
            .collect();
        for row_start in (0..n_img).step_by(self.block_rows) {
            let row_end = (row_start + self.block_rows).min(n_img);
            let rows = row_end - row_start;
            let image_block = self.upload(&images[row_start * dim..row_end * dim], rows, dim);
            let mut col_start = 0;
            for captions_t in &caption_blocks {
                let [_, cols] = captions_t.dims();
                let block = image_block.clone().matmul(captions_t.clone());
                let values = block.into_data().try_into_vec::<f32>().expect("f32 scores");
                scores[row_start * n_cap..row_end * n_cap]
                    .par_chunks_mut(n_cap)
                    .zip(values.par_chunks(cols))
                    .for_each(|(out, block_row)| {
                        out[col_start..col_start + cols].copy_from_slice(block_row)
                    });
                col_start += cols;
            }
        }
        scores
    }

    fn upload(&self, rows: &[f32], count: usize, dim: usize) -> Tensor<2> {
        l2_normalize(Tensor::from_data(
            TensorData::new(rows.to_vec(), [count, dim]),
            &self.device,
        ))
    }
}

/// `l2norm(images) · l2norm(captions)ᵀ` on the host: `[n_img, dim]`, `[n_cap, dim]` →
/// `[n_img, n_cap]`, row-major, with the norms of [`l2_normalize`] (`x / (‖x‖ + ε)`).
fn host_cosine(
    images: &[f32],
    captions: &[f32],
    n_img: usize,
    n_cap: usize,
    dim: usize,
) -> Vec<f32> {
    let images = normalized_rows(images, dim);
    let captions = normalized_rows(captions, dim);
    let mut scores = vec![0.0f32; n_img * n_cap];
    host_inner_products(&images, &captions, dim, &mut scores, true);
    scores
}

/// `a · bᵀ` on the host, at the speed of the GEMM kernel `flex` runs: `a` `[n_a, dim]` and `b`
/// `[n_b, dim]` row-major, written into `out` `[n_a, n_b]` row-major (overwritten, not read).
/// `parallel`: `false` inside work that is already parallel (a rayon task per block), `true` to
/// use rayon's pool (sequential when the pool has one thread).
///
/// # Panics
/// If the buffers' lengths are not multiples of `dim` or `out` is not `n_a · n_b` long.
pub fn host_inner_products(a: &[f32], b: &[f32], dim: usize, out: &mut [f32], parallel: bool) {
    let (n_a, n_b) = (a.len() / dim.max(1), b.len() / dim.max(1));
    assert!(
        a.len() == n_a * dim && b.len() == n_b * dim && out.len() == n_a * n_b,
        "host_inner_products: [{n_a}, {dim}] · [{n_b}, {dim}]ᵀ into {} values",
        out.len()
    );
    if out.is_empty() {
        return;
    }
    // SAFETY: `out` is [n_a, n_b] (row stride n_b, column stride 1), `a` is [n_a, dim] (row
    // stride dim), and the right operand is bᵀ, [dim, n_b]: its element (p, j) is b[j·dim + p]
    // (row stride 1, column stride dim). Every index stays inside its buffer (lengths checked
    // above); the destination is not read (`read_dst` false).
    unsafe {
        gemm::gemm(
            n_a,
            n_b,
            dim,
            out.as_mut_ptr(),
            1,
            n_b as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            if parallel {
                parallelism()
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// The GEMM's threading: rayon's pool when it has more than one thread, else none. `gemm`'s
/// rayon mode with a one-thread pool runs at half the speed of its sequential mode (measured:
/// 453 ms against 215 ms for the 1,000 × 5,000 matrix, `RAYON_NUM_THREADS=1`, docs/performance.md).
fn parallelism() -> gemm::Parallelism {
    if rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// Each row of a row-major `[n, dim]` buffer divided by its Euclidean norm plus
/// [`L2_EPSILON`](crate::masking::L2_EPSILON).
fn normalized_rows(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut out = rows.to_vec();
    normalize_rows(&mut out, dim);
    out
}

/// Divides each row of `rows` (row-major, `dim` wide) by its l2 norm plus the masking
/// epsilon, in place, rows in parallel (the `l2norm` of METHODS §1 on host buffers).
pub(super) fn normalize_rows(rows: &mut [f32], dim: usize) {
    let epsilon = crate::masking::L2_EPSILON as f32;
    rows.par_chunks_mut(dim.max(1)).for_each(|row| {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt() + epsilon;
        row.iter_mut().for_each(|x| *x /= norm);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn naive(images: &[f32], captions: &[f32], dim: usize) -> Vec<f32> {
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt() + 1e-8;
        let mut out = Vec::new();
        for a in images.chunks(dim) {
            for b in captions.chunks(dim) {
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                out.push(dot / (norm(a) * norm(b)));
            }
        }
        out
    }

    #[test]
    fn blocked_equals_naive_for_ragged_blocks() {
        let mut rng = StdRng::seed_from_u64(0);
        let dim = 7;
        let images: Vec<f32> = (0..11 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let captions: Vec<f32> = (0..23 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut scorer = BlockedCosine::new(Device::flex()).with_blocks(4, 5);
        scorer.host_gemm = false;
        let blocked = scorer.compute(&images, &captions, dim);
        let expected = naive(&images, &captions, dim);
        assert_eq!(blocked.len(), 11 * 23);
        for (a, b) in blocked.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn host_gemm_equals_naive_and_the_device_path() {
        let mut rng = StdRng::seed_from_u64(1);
        // Wide enough for the GEMM's vector kernels and their remainders, with a zero row
        // (ε keeps it finite) and a caption set of one.
        for (n_img, n_cap, dim) in [(37, 129, 67), (3, 1, 5), (64, 256, 128)] {
            let mut images: Vec<f32> = (0..n_img * dim)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            images[..dim].iter_mut().for_each(|x| *x = 0.0);
            let captions: Vec<f32> = (0..n_cap * dim)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let scorer = BlockedCosine::new(Device::flex());
            assert!(scorer.host_gemm);
            let host = scorer.compute(&images, &captions, dim);
            let mut device_path = scorer.clone();
            device_path.host_gemm = false;
            let blocked = device_path.compute(&images, &captions, dim);
            let expected = naive(&images, &captions, dim);
            assert_eq!(host.len(), n_img * n_cap);
            for ((h, b), e) in host.iter().zip(&blocked).zip(&expected) {
                assert!((h - e).abs() < 1e-5, "host {h} vs naive {e}");
                assert!((h - b).abs() < 1e-6, "host {h} vs device path {b}");
            }
            assert!(
                host[..n_cap].iter().all(|&s| s == 0.0),
                "a zero row scores 0"
            );
        }
    }

    #[test]
    fn host_gemm_of_empty_sets_is_empty() {
        let scorer = BlockedCosine::new(Device::flex());
        assert!(scorer.compute(&[], &[1.0, 0.0], 2).is_empty());
        assert!(scorer.compute(&[1.0, 0.0], &[], 2).is_empty());
    }

    #[test]
    fn cosine_of_parallel_vectors_is_one() {
        let device = Device::default();
        let a = Tensor::<2>::from_floats([[1.0, 2.0], [0.0, -1.0]], &device);
        let b = Tensor::<2>::from_floats([[2.0, 4.0]], &device);
        let s = cosine_similarity(a, b)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!((s[0] - 1.0).abs() < 1e-6);
        assert!((s[1] + 2.0 / 5f32.sqrt()).abs() < 1e-6);
    }
}
