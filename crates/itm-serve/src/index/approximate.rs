//! Approximate search: an HNSW graph (Malkov & Yashunin, "Efficient and robust approximate
//! nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI 2018) over
//! the unit rows of one embedding matrix, built and searched by the `instant-distance` crate.
//!
//! Why instant-distance: it is pure Rust with few dependencies (rayon, parking_lot, rand 0.8,
//! ordered-float), none of which changes a feature of a crate that burn builds, it builds the
//! graph in parallel, and it serialises through serde, so the file format is this module's own
//! and every byte of it is checked here before the crate's types are built from it. (`hnsw_rs`
//! lets one choose M, but its loader unwraps and asserts on malformed files, and it brings a
//! logger, memory maps and rand 0.10 with features other than the ones burn uses.) What it
//! fixes: M, the links per node, is 32 (64 in the bottom layer), and `ef_search` is chosen when
//! the graph is built and stored in it.
//!
//! The distance given to the crate is `1 − a·b`, i.e. `1 − cos(a, b)` for unit rows: strictly
//! decreasing in the cosine, so the nearest points are the most similar rows. Results are
//! rescored with the inner product of [`EmbeddingMatrix::top_k`](super::EmbeddingMatrix::top_k)
//! and ordered like it (best first, ties to the lower row).
//!
//! ```text
//! images.hnsw / captions.hnsw
//!   8 bytes    "itm-hnsw"
//!   4 bytes    H, the header's length (little-endian u32)
//!   H bytes    header (postcard): graph format version, library, rows, dim, parameters, and the
//!              name, length and SHA-256 of the matrix file the graph was built from
//!   the rest   the graph (postcard): instant_distance::HnswMap<UnitVector, u32>, i.e. a copy of
//!              every row, the links of each layer, and the matrix row of every point
//! ```

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use instant_distance::{Builder, HnswMap, Point, Search};
use itm_data::atomic;
use rayon::prelude::*;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::record::FileRecord;
use super::search::{Hit, dot};
use crate::ServeError;

/// The crate (and version, pinned in Cargo.toml) that builds and reads the graphs; its serde
/// layout is part of the file format, so a graph records it and is read only by the same.
pub const HNSW_LIBRARY: &str = "instant-distance 0.6.1";
/// M of the paper as instant-distance fixes it: links per node in the upper layers, twice as many
/// in the bottom one (`tests::layout_is_the_crates` checks it against the crate's files).
pub const HNSW_M: usize = 32;
/// The `k` of the recall that `itm index build` measures.
pub const RECALL_K: usize = 10;

const MAGIC: &[u8; 8] = b"itm-hnsw";
const GRAPH_VERSION: u32 = 1;
/// The longest header read (a header is a few hundred bytes).
const MAX_HEADER: usize = 1 << 16;
/// Links that mean "no more neighbours" in instant-distance (`PointId(u32::MAX)`).
const NO_LINK: u32 = u32::MAX;

/// HNSW construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswParameters {
    /// `efConstruction` of the paper: candidates kept while linking a new point. Default 100
    /// (instant-distance's default; the paper and hnswlib use 100–200).
    pub ef_construction: usize,
    /// `ef` of the paper at search time: candidates kept while searching, and so the most
    /// results one search returns. Default 100 (instant-distance's). Stored in the graph.
    pub ef_search: usize,
    /// Seed of the random layer assignment. The construction links points in parallel, so two
    /// builds with one seed may still differ slightly.
    pub seed: u64,
}

impl Default for HnswParameters {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 100,
            seed: 0,
        }
    }
}

/// A unit row as an instant-distance point.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnitVector(Vec<f32>);

impl Point for UnitVector {
    /// `1 − a·b`: the cosine distance of unit rows.
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

/// The first bytes of a graph file after the magic and its length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GraphHeader {
    version: u32,
    library: String,
    rows: u64,
    dim: u64,
    parameters: HnswParameters,
    /// The matrix file the graph was built from, as the index's manifest records it.
    indexed: FileRecord,
}

/// An HNSW graph over the `[rows, D]` unit rows of one embedding matrix.
pub struct HnswGraph {
    map: HnswMap<UnitVector, u32>,
    rows: usize,
    dim: usize,
    parameters: HnswParameters,
}

impl std::fmt::Debug for HnswGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswGraph")
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

impl HnswGraph {
    /// Builds the graph over `rows` (`[n, dim]`, row-major, unit rows), in parallel. The crate
    /// copies the points once more while ordering them, so about twice the rows' size is held
    /// while building.
    pub fn build(
        rows: &[f32],
        dim: usize,
        parameters: &HnswParameters,
    ) -> Result<Self, ServeError> {
        assert!(
            dim > 0 && rows.len().is_multiple_of(dim),
            "rows of width {dim}"
        );
        let n = rows.len() / dim;
        if n >= NO_LINK as usize {
            return Err(ServeError::Graph(format!(
                "{n} rows: an HNSW graph holds fewer than {NO_LINK}"
            )));
        }
        if parameters.ef_search == 0 || parameters.ef_construction == 0 {
            return Err(ServeError::Graph(format!(
                "ef_construction {} and ef_search {} must be at least 1",
                parameters.ef_construction, parameters.ef_search
            )));
        }
        let points = rows
            .chunks_exact(dim)
            .map(|row| UnitVector(row.to_vec()))
            .collect();
        let map = Builder::default()
            .ef_construction(parameters.ef_construction)
            .ef_search(parameters.ef_search)
            .seed(parameters.seed)
            .build(points, (0..n as u32).collect());
        Ok(Self {
            map,
            rows: n,
            dim,
            parameters: *parameters,
        })
    }

    /// Number of rows (points).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row width `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The parameters it was built with.
    pub fn parameters(&self) -> &HnswParameters {
        &self.parameters
    }

    /// The rows the graph finds nearest to each query (`queries`: `[q, D]`, row-major, unit
    /// rows): at most `k`, and at most `ef_search`, per query; best first by inner product,
    /// ties broken by the lower row. Approximate: rows the graph search does not reach are
    /// missed. Queries run in parallel.
    pub fn top_k(&self, queries: &[f32], k: usize) -> Vec<Vec<Hit>> {
        assert!(
            queries.len().is_multiple_of(self.dim),
            "queries of width {}",
            self.dim
        );
        queries
            .par_chunks_exact(self.dim)
            .map_init(Search::default, |search, query| {
                let query = UnitVector(query.to_vec());
                let mut hits: Vec<Hit> = self
                    .map
                    .search(&query, search)
                    .map(|item| Hit {
                        index: *item.value as usize,
                        score: dot(&item.point.0, &query.0),
                    })
                    .collect();
                hits.sort_by(Hit::rank_order);
                hits.truncate(k);
                hits
            })
            .collect()
    }

    /// Writes the graph to `path` atomically, its header naming the matrix file it was built
    /// from (`indexed`: that file's manifest record).
    pub fn save(&self, path: &Path, indexed: &FileRecord) -> Result<(), ServeError> {
        let header = GraphHeader {
            version: GRAPH_VERSION,
            library: HNSW_LIBRARY.to_string(),
            rows: self.rows as u64,
            dim: self.dim as u64,
            parameters: self.parameters,
            indexed: indexed.clone(),
        };
        let header = postcard::to_stdvec(&header)
            .map_err(|e| ServeError::encode(path, format!("cannot encode the header: {e}")))?;
        let mut bytes = Vec::with_capacity(self.rows * (4 * self.dim + 300) + header.len() + 16);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        let bytes = postcard::to_extend(&self.map, bytes)
            .map_err(|e| ServeError::encode(path, format!("cannot encode the graph: {e}")))?;
        Ok(atomic::write(path, &bytes)?)
    }

    /// Reads the graph at `path`, refusing it — with an error naming the file — unless it is an
    /// itm HNSW graph of [`HNSW_LIBRARY`] built from `indexed` (the matrix file's manifest
    /// record) with `shape` `[rows, dim]` and `parameters`, and unless its structure is sound:
    /// one point of width `dim` per row, finite, every link within its layer, every row the
    /// value of one point. instant-distance follows the stored links without checks of its
    /// own, so a graph that passed these cannot make a search index out of bounds.
    pub fn load(
        path: &Path,
        indexed: &FileRecord,
        shape: [usize; 2],
        parameters: &HnswParameters,
    ) -> Result<Self, ServeError> {
        let invalid = |message: String| ServeError::corrupt(path, message);
        let read_error = |e: std::io::Error| {
            if e.kind() == ErrorKind::UnexpectedEof {
                invalid("truncated: the file ends inside its header".to_string())
            } else {
                ServeError::io(path, e)
            }
        };
        let file = File::open(path).map_err(|e| ServeError::io(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut start = [0u8; 12];
        reader.read_exact(&mut start).map_err(read_error)?;
        if &start[..8] != MAGIC {
            return Err(invalid(
                "not an itm HNSW graph (it does not start with \"itm-hnsw\")".to_string(),
            ));
        }
        let header_len = u32::from_le_bytes([start[8], start[9], start[10], start[11]]) as usize;
        if header_len > MAX_HEADER {
            return Err(invalid(format!(
                "a header of {header_len} bytes; headers are at most {MAX_HEADER}"
            )));
        }
        let mut header = vec![0u8; header_len];
        reader.read_exact(&mut header).map_err(read_error)?;
        let header = match postcard::take_from_bytes::<GraphHeader>(&header) {
            Ok((header, [])) => header,
            Ok((_, rest)) => {
                return Err(invalid(format!(
                    "corrupt header: {} bytes left over",
                    rest.len()
                )));
            }
            Err(e) => return Err(invalid(format!("corrupt header: {e}"))),
        };
        check_header(&header, indexed, shape, parameters).map_err(invalid)?;

        let graph_start = (start.len() + header_len) as u64;
        let layout: MapLayout = decode(&mut reader).map_err(&invalid)?;
        let mut extra = [0u8; 1];
        if reader
            .read(&mut extra)
            .map_err(|e| ServeError::io(path, e))?
            != 0
        {
            return Err(invalid(
                "bytes after the end of the graph (corrupt or grown)".to_string(),
            ));
        }
        layout
            .check(shape, parameters.ef_search)
            .map_err(|e| invalid(format!("inconsistent graph: {e}")))?;
        drop(layout);
        reader
            .seek(SeekFrom::Start(graph_start))
            .map_err(|e| ServeError::io(path, e))?;
        let map = decode(&mut reader).map_err(invalid)?;
        Ok(Self {
            map,
            rows: shape[0],
            dim: shape[1],
            parameters: *parameters,
        })
    }
}

/// Whether a header describes a graph of this library over `indexed`, of `shape`, built with
/// `parameters`; `Err` says how it differs.
fn check_header(
    header: &GraphHeader,
    indexed: &FileRecord,
    shape: [usize; 2],
    parameters: &HnswParameters,
) -> Result<(), String> {
    if header.version != GRAPH_VERSION {
        return Err(format!(
            "graph format version {}, this build reads version {GRAPH_VERSION}",
            header.version
        ));
    }
    if header.library != HNSW_LIBRARY {
        return Err(format!(
            "written by {}, this build reads graphs of {HNSW_LIBRARY}",
            header.library
        ));
    }
    if header.indexed.name != indexed.name {
        return Err(format!(
            "a graph over {}, not over {}",
            header.indexed.name, indexed.name
        ));
    }
    if header.indexed != *indexed {
        return Err(format!(
            "built from another {} (SHA-256 {}, the index's is {})",
            indexed.name, header.indexed.sha256, indexed.sha256
        ));
    }
    if [header.rows, header.dim] != [shape[0] as u64, shape[1] as u64] {
        return Err(format!(
            "a graph of [{}, {}], {} is [{}, {}]",
            header.rows, header.dim, indexed.name, shape[0], shape[1]
        ));
    }
    if header.parameters != *parameters {
        return Err(format!(
            "built with {:?}, the manifest records {parameters:?}",
            header.parameters
        ));
    }
    Ok(())
}

/// Decodes one postcard value from `reader` (a value of owned data: no borrowed bytes).
fn decode<T: de::DeserializeOwned>(reader: &mut impl Read) -> Result<T, String> {
    let mut scratch = [0u8; 64];
    postcard::from_io((reader, &mut scratch[..]))
        .map(|(value, _)| value)
        .map_err(|e| format!("truncated or corrupt graph: {e}"))
}

/// The serde layout of instant-distance 0.6.1's `HnswMap<UnitVector, u32>`, decoded to check a
/// file before the crate's own types are built from it (the crate indexes its arrays with the
/// stored links). The points' coordinates are only counted. `tests::layout_is_the_crates`
/// keeps it in step with the crate.
#[derive(Debug, Deserialize)]
struct MapLayout {
    hnsw: HnswLayout,
    values: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct HnswLayout {
    ef_search: usize,
    points: PointsLayout,
    /// The bottom layer: one node per point.
    zero: Vec<BottomNode>,
    /// The layers above, lowest first, each a prefix of the points.
    layers: Vec<Vec<UpperNode>>,
}

/// A bottom-layer node: the crate's `[PointId; 2 M]`, encoded as `2 M` integers like two
/// M-arrays.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct BottomNode([u32; HNSW_M], [u32; HNSW_M]);

/// An upper-layer node: the crate's `[PointId; M]`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct UpperNode([u32; HNSW_M]);

impl BottomNode {
    fn links(&self) -> impl Iterator<Item = u32> + '_ {
        followed(self.0.iter().chain(&self.1))
    }
}

impl UpperNode {
    fn links(&self) -> impl Iterator<Item = u32> + '_ {
        followed(self.0.iter())
    }
}

/// The links a search follows: those before the first [`NO_LINK`].
fn followed<'a>(links: impl Iterator<Item = &'a u32>) -> impl Iterator<Item = u32> {
    links.copied().take_while(|&link| link != NO_LINK)
}

/// The points, counted: how many, their widths, and their non-finite coordinates.
#[derive(Debug, Default, PartialEq)]
struct PointsLayout {
    count: usize,
    narrowest: usize,
    widest: usize,
    non_finite: usize,
}

/// One point, counted.
struct PointLayout {
    width: usize,
    non_finite: usize,
}

impl<'de> Deserialize<'de> for PointLayout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Coordinates;
        impl<'de> Visitor<'de> for Coordinates {
            type Value = PointLayout;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of float32")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PointLayout, A::Error> {
                let mut point = PointLayout {
                    width: 0,
                    non_finite: 0,
                };
                while let Some(value) = seq.next_element::<f32>()? {
                    point.width += 1;
                    point.non_finite += usize::from(!value.is_finite());
                }
                Ok(point)
            }
        }
        deserializer.deserialize_seq(Coordinates)
    }
}

impl<'de> Deserialize<'de> for PointsLayout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Points;
        impl<'de> Visitor<'de> for Points {
            type Value = PointsLayout;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of points")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PointsLayout, A::Error> {
                let mut points = PointsLayout {
                    narrowest: usize::MAX,
                    ..PointsLayout::default()
                };
                while let Some(point) = seq.next_element::<PointLayout>()? {
                    points.count += 1;
                    points.narrowest = points.narrowest.min(point.width);
                    points.widest = points.widest.max(point.width);
                    points.non_finite += point.non_finite;
                }
                Ok(points)
            }
        }
        deserializer.deserialize_seq(Points)
    }
}

impl MapLayout {
    /// Whether the graph has one finite point of width `shape[1]` per row of `shape[0]`, links
    /// within their layers, layers that shrink upwards, `ef_search` as recorded, and every row
    /// as the value of exactly one point; `Err` names the first problem.
    fn check(&self, shape: [usize; 2], ef_search: usize) -> Result<(), String> {
        let [rows, dim] = shape;
        let points = &self.hnsw.points;
        if points.count != rows {
            return Err(format!("{} points for {rows} rows", points.count));
        }
        if rows > 0 && (points.narrowest != dim || points.widest != dim) {
            return Err(format!(
                "points {}–{} wide, the rows are {dim} wide",
                points.narrowest, points.widest
            ));
        }
        if points.non_finite > 0 {
            return Err(format!("{} non-finite coordinates", points.non_finite));
        }
        if self.hnsw.ef_search != ef_search {
            return Err(format!(
                "ef_search {}, the header records {ef_search}",
                self.hnsw.ef_search
            ));
        }
        if self.hnsw.zero.len() != rows {
            return Err(format!(
                "{} nodes in the bottom layer for {rows} points",
                self.hnsw.zero.len()
            ));
        }
        if let Some(link) = self
            .hnsw
            .zero
            .iter()
            .flat_map(BottomNode::links)
            .find(|&link| link as usize >= rows)
        {
            return Err(format!(
                "a link to point {link} in the bottom layer of {rows}"
            ));
        }
        let mut below = rows;
        for (depth, layer) in self.hnsw.layers.iter().enumerate() {
            let nodes = layer.len();
            if nodes == 0 || nodes > below {
                return Err(format!(
                    "layer {} has {nodes} nodes, the layer below {below}",
                    depth + 1
                ));
            }
            if let Some(link) = layer
                .iter()
                .flat_map(UpperNode::links)
                .find(|&link| link as usize >= nodes)
            {
                return Err(format!(
                    "a link to point {link} in layer {} of {nodes}",
                    depth + 1
                ));
            }
            below = nodes;
        }
        if self.values.len() != rows {
            return Err(format!(
                "{} row numbers for {rows} points",
                self.values.len()
            ));
        }
        let mut seen = vec![false; rows];
        for &row in &self.values {
            match seen.get_mut(row as usize) {
                Some(slot) if !*slot => *slot = true,
                Some(_) => return Err(format!("row {row} is the value of two points")),
                None => return Err(format!("row {row} is past the last row ({rows})")),
            }
        }
        Ok(())
    }
}

/// Recall@k of an approximate search against the exact one, over the same queries (`k`: the
/// length of the exact lists, `min(k, rows)`): the mean over queries of the share of the exact
/// top `k` that the approximate top `k` found. A returned row counts when its score reaches
/// the exact `k`-th score, so that a row tied with the `k`-th counts as found (ann-benchmarks
/// counts the same way, with distances).
pub fn recall_at_k(approximate: &[Vec<Hit>], exact: &[Vec<Hit>]) -> f64 {
    assert_eq!(approximate.len(), exact.len(), "one result list per query");
    if exact.is_empty() {
        return 1.0;
    }
    let total: f64 = approximate
        .iter()
        .zip(exact)
        .map(|(found, truth)| match truth.last() {
            None => 1.0,
            Some(kth) => {
                let reached = found
                    .iter()
                    .take(truth.len())
                    .filter(|hit| hit.score >= kth.score)
                    .count();
                reached as f64 / truth.len() as f64
            }
        })
        .sum();
    total / exact.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::EmbeddingMatrix;
    use crate::index::record::file_digest;
    use itm_data::npy::write_f32;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn unit_rows(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut values: Vec<f32> = (0..rows * dim)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        for row in values.chunks_exact_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= norm);
        }
        values
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("itm-hnsw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `rows` written as `name.npy` in `dir`, opened for exact search, with its record.
    fn matrix(dir: &Path, rows: &[f32], dim: usize) -> (EmbeddingMatrix, FileRecord) {
        let path = dir.join("rows.npy");
        write_f32(&path, &[rows.len() / dim, dim], rows).unwrap();
        let (sha256, bytes) = file_digest(&path).unwrap();
        let record = FileRecord {
            name: "rows.npy".to_string(),
            bytes,
            sha256,
        };
        (EmbeddingMatrix::open(&path, "[rows, dim]").unwrap(), record)
    }

    #[test]
    fn recall_counts_the_exact_top_k_found_with_ties() {
        let hit = |index, score| Hit { index, score };
        let exact = vec![
            vec![hit(0, 0.9), hit(1, 0.8), hit(2, 0.7), hit(3, 0.5)],
            vec![hit(4, 0.6), hit(5, 0.6)],
        ];
        let approximate = vec![
            // Rows 0 and 2 found, 1 and 3 missed (row 9 scores below the 4th).
            vec![hit(0, 0.9), hit(2, 0.7), hit(9, 0.4)],
            // Row 6 ties with the 2nd: found.
            vec![hit(4, 0.6), hit(6, 0.6)],
        ];
        assert_eq!(recall_at_k(&approximate, &exact), (0.5 + 1.0) / 2.0);
        assert_eq!(recall_at_k(&exact, &exact), 1.0);
    }

    /// Random unit vectors in 32 dimensions have no structure for the graph to use: the hard
    /// case. 3,000 points, 200 queries that are not points.
    #[test]
    fn recall_at_10_on_random_unit_vectors() {
        let (n, dim) = (3000, 32);
        let rows = unit_rows(n, dim, 1);
        let queries = unit_rows(200, dim, 2);
        let dir = scratch("recall");
        let (exact_matrix, _) = matrix(&dir, &rows, dim);
        let started = std::time::Instant::now();
        let graph = HnswGraph::build(&rows, dim, &HnswParameters::default()).unwrap();
        let built = started.elapsed().as_secs_f64();
        let exact = exact_matrix.top_k(&queries, RECALL_K).unwrap();
        let approximate = graph.top_k(&queries, RECALL_K);
        let recall = recall_at_k(&approximate, &exact);
        eprintln!("{n} × {dim} random unit vectors: built in {built:.2}s, recall@10 {recall:.4}");
        assert!(recall >= 0.95, "recall@10 {recall}");
        // Scores are the exact inner products of the rows found.
        for (found, query) in approximate.iter().zip(queries.chunks_exact(dim)) {
            assert_eq!(found.len(), RECALL_K);
            for hit in found {
                let row = &rows[hit.index * dim..(hit.index + 1) * dim];
                assert_eq!(hit.score, dot(row, query));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn top_1_matches_exact_search_on_a_small_index() {
        let (n, dim) = (500, 16);
        let rows = unit_rows(n, dim, 3);
        let queries = unit_rows(100, dim, 4);
        let dir = scratch("top1");
        let (exact_matrix, _) = matrix(&dir, &rows, dim);
        let graph = HnswGraph::build(&rows, dim, &HnswParameters::default()).unwrap();
        let exact = exact_matrix.top_k(&queries, 1).unwrap();
        let approximate = graph.top_k(&queries, 1);
        let same = approximate
            .iter()
            .zip(&exact)
            .filter(|(a, e)| a[0].index == e[0].index)
            .count();
        assert!(same >= 98, "top-1 equal for {same}/100 queries");
        // Asking for more rows than ef_search gives ef_search.
        assert_eq!(graph.top_k(&queries[..dim], 1000)[0].len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_graph_loads_and_answers_the_same() {
        let (n, dim) = (400, 8);
        let rows = unit_rows(n, dim, 5);
        let queries = unit_rows(20, dim, 6);
        let dir = scratch("roundtrip");
        let (_, record) = matrix(&dir, &rows, dim);
        let parameters = HnswParameters {
            ef_construction: 40,
            ef_search: 30,
            seed: 9,
        };
        let graph = HnswGraph::build(&rows, dim, &parameters).unwrap();
        let path = dir.join("rows.hnsw");
        graph.save(&path, &record).unwrap();
        let loaded = HnswGraph::load(&path, &record, [n, dim], &parameters).unwrap();
        assert_eq!(loaded.top_k(&queries, 10), graph.top_k(&queries, 10));
        assert_eq!(loaded.parameters(), &parameters);
        assert_eq!((loaded.rows(), loaded.dim()), (n, dim));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The graph part of a saved file, and where it starts.
    fn graph_bytes(path: &Path) -> (Vec<u8>, usize) {
        let bytes = std::fs::read(path).unwrap();
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        (bytes, 12 + header_len)
    }

    #[test]
    fn layout_is_the_crates() {
        let (n, dim) = (300, 4);
        let rows = unit_rows(n, dim, 7);
        let dir = scratch("layout");
        let (_, record) = matrix(&dir, &rows, dim);
        let graph = HnswGraph::build(&rows, dim, &HnswParameters::default()).unwrap();
        let path = dir.join("rows.hnsw");
        graph.save(&path, &record).unwrap();
        let (bytes, start) = graph_bytes(&path);
        let layout: MapLayout = postcard::from_bytes(&bytes[start..]).unwrap();
        layout.check([n, dim], 100).unwrap();
        assert_eq!(
            layout.hnsw.points,
            PointsLayout {
                count: n,
                narrowest: dim,
                widest: dim,
                non_finite: 0
            }
        );
        assert!(!layout.hnsw.layers.is_empty(), "300 points make two layers");
        // The full layout, coordinates included, encodes back to the very same bytes.
        #[derive(Serialize, Deserialize)]
        struct Full {
            ef_search: usize,
            points: Vec<Vec<f32>>,
            zero: Vec<BottomNode>,
            layers: Vec<Vec<UpperNode>>,
            values: Vec<u32>,
        }
        let full: Full = postcard::from_bytes(&bytes[start..]).unwrap();
        assert_eq!(postcard::to_stdvec(&full).unwrap(), bytes[start..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_graphs_are_refused_naming_the_file() {
        let (n, dim) = (300, 4);
        let rows = unit_rows(n, dim, 8);
        let dir = scratch("damaged");
        let (_, record) = matrix(&dir, &rows, dim);
        let parameters = HnswParameters::default();
        let graph = HnswGraph::build(&rows, dim, &parameters).unwrap();
        let good = dir.join("good.hnsw");
        graph.save(&good, &record).unwrap();
        let (bytes, start) = graph_bytes(&good);
        let path = dir.join("rows.hnsw");
        let refused = |content: &[u8], record: &FileRecord, shape: [usize; 2]| {
            std::fs::write(&path, content).unwrap();
            let err = HnswGraph::load(&path, record, shape, &parameters)
                .unwrap_err()
                .to_string();
            assert!(err.contains("rows.hnsw"), "{err}");
            err
        };
        let err = refused(&bytes[..6], &record, [n, dim]);
        assert!(err.contains("truncated"), "{err}");
        let err = refused(&bytes[..bytes.len() - 100], &record, [n, dim]);
        assert!(err.contains("truncated or corrupt graph"), "{err}");
        let mut grown = bytes.clone();
        grown.push(0);
        assert!(refused(&grown, &record, [n, dim]).contains("after the end"));
        let mut foreign = bytes.clone();
        foreign[..8].copy_from_slice(b"\x93NUMPY\x01\x00");
        assert!(refused(&foreign, &record, [n, dim]).contains("not an itm HNSW graph"));
        let other = FileRecord {
            sha256: "0".repeat(64),
            ..record.clone()
        };
        assert!(refused(&bytes, &other, [n, dim]).contains("built from another rows.npy"));
        assert!(refused(&bytes, &record, [n + 1, dim]).contains("a graph of [300, 4]"));
        let err = HnswGraph::load(
            &good,
            &record,
            [n, dim],
            &HnswParameters {
                ef_search: 50,
                ..parameters
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the manifest records"), "{err}");

        // Well-formed encodings of broken graphs: a link past its layer, a row given twice.
        let layout: MapLayout = postcard::from_bytes(&bytes[start..]).unwrap();
        let with = |change: &dyn Fn(&mut MapLayout)| {
            let mut layout: MapLayout = postcard::from_bytes(&bytes[start..]).unwrap();
            change(&mut layout);
            layout
        };
        let broken = [
            with(&|l| l.hnsw.layers[0][0].0[0] = l.hnsw.layers[0].len() as u32),
            with(&|l| l.hnsw.zero[5].1[0] = n as u32 + 7),
            with(&|l| l.values[1] = l.values[0]),
        ];
        for (layout, expected) in broken
            .iter()
            .zip(["in layer 1", "bottom layer", "two points"])
        {
            let mut layout_bytes = bytes[..start].to_vec();
            layout_bytes.extend(encode_layout(layout, &rows, dim));
            let err = refused(&layout_bytes, &record, [n, dim]);
            assert!(
                err.contains("inconsistent graph") && err.contains(expected),
                "{err}"
            );
        }
        // Re-encoding the unchanged layout gives a graph that loads.
        let mut same = bytes[..start].to_vec();
        same.extend(encode_layout(&layout, &rows, dim));
        assert_eq!(same, bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Encodes a checked layout back to graph bytes, with the points given. The points'
    /// order in the crate's graph is its own: recover it from the values (row numbers).
    fn encode_layout(layout: &MapLayout, rows: &[f32], dim: usize) -> Vec<u8> {
        #[derive(Serialize)]
        struct Full<'a> {
            ef_search: usize,
            points: Vec<&'a [f32]>,
            zero: &'a [BottomNode],
            layers: &'a [Vec<UpperNode>],
            values: &'a [u32],
        }
        let points = layout
            .values
            .iter()
            .map(|&row| &rows[row as usize * dim..(row as usize + 1) * dim])
            .collect();
        postcard::to_stdvec(&Full {
            ef_search: layout.hnsw.ef_search,
            points,
            zero: &layout.hnsw.zero,
            layers: &layout.hnsw.layers,
            values: &layout.values,
        })
        .unwrap()
    }
}
