//! `itm search --index INDEX "text"`, `itm search --index INDEX --image ID|FILE`, and
//! `itm sheet --index INDEX --output sheet.png`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::Args;
use itm_core::similarity::{FeatureSets, QueryModality, ShardedScorer, mean_of_sets};
use itm_data::TokenBatch;
use itm_serve::index::{
    Collection, Hit, Index, RECALL_K, SecondStage, encode_image_file, encode_texts,
};
use itm_serve::{sidecar, write_contact_sheet, write_image_sheet};

/// Options of `itm search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The index folder (written by `itm index build`).
    #[arg(long, value_name = "INDEX")]
    index: PathBuf,
    /// Text → image: the images that best match this caption.
    #[arg(
        value_name = "TEXT",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    text: Option<String>,
    /// Image → text: the captions that best match an image of the index (by id) or an image
    /// file (pixel models only).
    #[arg(long, value_name = "ID|FILE")]
    image: Option<String>,
    /// Results to show.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Score every row even when the index has an HNSW graph (built with --approximate).
    #[arg(long)]
    exact: bool,
    /// Candidates the first stage keeps for the model's fine-grained head to re-score (an
    /// index of a fine-grained model is searched in two stages; default 100).
    #[arg(long, value_name = "K")]
    rerank_top: Option<usize>,
}

/// Candidates re-scored by default.
const RERANK_TOP: usize = 100;

/// Options of `itm sheet`.
#[derive(Args, Debug)]
pub struct SheetArgs {
    /// The index folder (built from shapes or a Karpathy JSON: precomp has no pixels).
    #[arg(long, value_name = "INDEX")]
    index: PathBuf,
    /// The PNG to write; its rows are described in the .json beside it.
    #[arg(long, value_name = "sheet.png")]
    output: PathBuf,
    /// Captions to show, spread evenly over the index (ignored with --caption or --image).
    #[arg(long, default_value_t = 6)]
    captions: usize,
    /// A caption row of the index to show (repeatable).
    #[arg(long = "caption", value_name = "ROW", conflicts_with = "image_ids")]
    caption_rows: Vec<usize>,
    /// Image queries instead: an image id of the index (repeatable); each row shows the image
    /// on the left and the captions found beside it.
    #[arg(long = "image", value_name = "ID")]
    image_ids: Vec<String>,
    /// Images per caption (captions per image with --image).
    #[arg(long, default_value_t = 5)]
    top: usize,
}

fn open(folder: &Path) -> Result<Index, String> {
    Index::open(folder).map_err(|e| format!("cannot open the index: {e}"))
}

/// Runs `itm search`.
pub fn run(args: &SearchArgs) -> Result<(), String> {
    if args.top == 0 {
        return Err("--top must be at least 1".to_string());
    }
    let index = open(&args.index)?;
    let items = index.items();
    let second = second_stage(&index, args)?;
    if let Some(text) = &args.text {
        let device = Device::default();
        let (model, _, tokenizer) = index
            .checkpoint()
            .load(&device)
            .map_err(|e| e.to_string())?;
        let (hits, used) = match &second {
            None => {
                let query = encode_texts(&model, &tokenizer, std::slice::from_ref(text), &device)
                    .map_err(|e| e.to_string())?;
                let (hits, used) = rank(&index, Collection::Images, &query, args.top, args)?;
                (hits, Stages::One(used))
            }
            Some((sets, k)) => {
                let ids = tokenizer
                    .encode_all(std::slice::from_ref(text))
                    .map_err(|e| e.to_string())?;
                let refs: Vec<&[i64]> = ids.iter().map(Vec::as_slice).collect();
                let batch = TokenBatch::pad(&refs);
                if batch.lengths.contains(&0) {
                    return Err(format!("{text:?}: the query has no words"));
                }
                let (words, lengths) =
                    model.encode_caption_sets(batch.to_tensor(&device), &batch.lengths);
                let [_, slots, dim] = words.dims();
                let values = words
                    .into_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| format!("{e:?}"))?;
                let query = FeatureSets::new(&values, &lengths, slots, dim);
                let method = model
                    .fine_grained()
                    .ok_or("the index's model has no fine-grained head")?;
                two_stage(
                    &index,
                    method,
                    QueryModality::Captions,
                    query,
                    sets.images(),
                    *k,
                    args,
                    &device,
                )?
            }
        };
        let rows: Vec<serde_json::Value> = hits
            .iter()
            .enumerate()
            .map(|(rank, hit)| {
                let item = &items.images[hit.index];
                serde_json::json!({"rank": rank + 1, "image": hit.index, "id": item.id,
                                   "file": item.file, "score": hit.score})
            })
            .collect();
        if args.json {
            println!(
                "{}",
                serde_json::json!({"query": text, "search": used.json(), "results": rows})
            );
        } else {
            println!("{}", used.line());
            println!("rank  image  id          score   file");
            for (rank, hit) in hits.iter().enumerate() {
                let item = &items.images[hit.index];
                println!(
                    "{:>4}  {:>5}  {:<10}  {:.4}  {}",
                    rank + 1,
                    hit.index,
                    item.id,
                    hit.score,
                    item.file.as_deref().unwrap_or("-")
                );
            }
        }
        return Ok(());
    }
    let image = args
        .image
        .as_deref()
        .expect("clap requires TEXT or --image");
    let (hits, used) = match &second {
        None => {
            let query = image_query(&index, image)?;
            let (hits, used) = rank(&index, Collection::Captions, &query, args.top, args)?;
            (hits, Stages::One(used))
        }
        Some((sets, k)) => {
            let Some(row) = items.images.iter().position(|item| item.id == image) else {
                return Err(format!(
                    "{image}: not an image id of the index (a fine-grained model's index is \
                     queried by the ids of its images)"
                ));
            };
            let device = Device::default();
            let (model, _, _) = index
                .checkpoint()
                .load(&device)
                .map_err(|e| e.to_string())?;
            let method = model
                .fine_grained()
                .ok_or("the index's model has no fine-grained head")?;
            let images = sets.images();
            let lengths = [images.lengths[row]];
            let query = FeatureSets::new(images.set(row), &lengths, lengths[0], images.dim);
            two_stage(
                &index,
                method,
                QueryModality::Images,
                query,
                sets.captions(),
                *k,
                args,
                &device,
            )?
        }
    };
    if args.json {
        let rows: Vec<serde_json::Value> = hits
            .iter()
            .enumerate()
            .map(|(rank, hit)| {
                let caption = &items.captions[hit.index];
                serde_json::json!({"rank": rank + 1, "caption": hit.index, "text": caption.text,
                                   "image": caption.image, "image_id": items.images[caption.image].id,
                                   "score": hit.score})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"query": image, "search": used.json(), "results": rows})
        );
    } else {
        println!("{}", used.line());
        println!("rank  caption  image id    score   text");
        for (rank, hit) in hits.iter().enumerate() {
            let caption = &items.captions[hit.index];
            println!(
                "{:>4}  {:>7}  {:<10}  {:.4}  {}",
                rank + 1,
                hit.index,
                items.images[caption.image].id,
                hit.score,
                caption.text
            );
        }
    }
    Ok(())
}

/// The stages a search ran.
enum Stages {
    /// One stage: the model's own score is the cosine of the rows.
    One(SearchUsed),
    /// A first stage over the rows (cosine of set means), then the model's fine-grained head
    /// on its top `k`.
    Two {
        first: SearchUsed,
        k: usize,
        head: String,
        rescored: usize,
        collection: Collection,
    },
}

impl Stages {
    /// The line printed above the table.
    fn line(&self) -> String {
        match self {
            Stages::One(used) => used.line(),
            Stages::Two {
                first,
                k,
                head,
                rescored,
                collection,
            } => format!(
                "two-stage search: 1. {} by the cosine of mean features, top {k} kept; 2. {head} \
                 re-scored {rescored} {}s (--rerank-top to change {k})",
                first.line(),
                collection.row_noun()
            ),
        }
    }

    /// The `"search"` field of the JSON output.
    fn json(&self) -> serde_json::Value {
        match self {
            Stages::One(used) => used.json(),
            Stages::Two {
                first,
                k,
                head,
                rescored,
                ..
            } => serde_json::json!({"method": "two-stage", "first_stage": first.json(),
                                    "rerank_top": k,
                                    "second_stage": {"head": head, "rescored": rescored}}),
        }
    }
}

/// Which search ranked the rows.
enum SearchUsed {
    /// Every row scored.
    Exact {
        rows: usize,
        collection: Collection,
        /// Why not the index's graph, when it has one.
        instead_of_graph: Option<String>,
    },
    /// The HNSW graph searched.
    Approximate {
        file: String,
        ef_search: usize,
        recall_at_10: f64,
    },
}

impl SearchUsed {
    /// The line printed above the table.
    fn line(&self) -> String {
        match self {
            SearchUsed::Exact {
                rows,
                collection,
                instead_of_graph,
            } => {
                let mut line = format!("exact search over {rows} {}s", collection.row_noun());
                if let Some(reason) = instead_of_graph {
                    line += &format!(" ({reason})");
                }
                line
            }
            SearchUsed::Approximate {
                file,
                ef_search,
                recall_at_10,
            } => format!(
                "approximate search: HNSW graph {file}, ef_search {ef_search} (recall@{RECALL_K} \
                 {recall_at_10:.4} measured at build; --exact to score every row)"
            ),
        }
    }

    /// The `"search"` field of the JSON output.
    fn json(&self) -> serde_json::Value {
        match self {
            SearchUsed::Exact {
                rows,
                instead_of_graph,
                ..
            } => serde_json::json!({"method": "exact", "rows": rows, "note": instead_of_graph}),
            SearchUsed::Approximate {
                file,
                ef_search,
                recall_at_10,
            } => serde_json::json!({"method": "approximate", "graph": file,
                                    "ef_search": ef_search, "recall_at_10": recall_at_10}),
        }
    }
}

/// The second stage of a search on `index`, with the candidates it re-scores: `None` for an
/// index of a cosine model (unless `--rerank-top` asks for one: refused, saying how to build
/// an index that has it); refused likewise for a fine-grained model's index without its sets.
fn second_stage(index: &Index, args: &SearchArgs) -> Result<Option<(SecondStage, usize)>, String> {
    if index.manifest().rerank.is_none() && args.rerank_top.is_none() {
        // A fine-grained model's rows are only its first stage: never searched alone.
        let config = index.checkpoint().config().map_err(|e| e.to_string())?;
        if config.is_cosine() {
            return Ok(None);
        }
    }
    let k = args.rerank_top.unwrap_or(RERANK_TOP);
    if k == 0 {
        return Err("--rerank-top must be at least 1".to_string());
    }
    let sets = index
        .second_stage()
        .map_err(|e| format!("cannot re-rank: {e}"))?;
    Ok(Some((sets, k)))
}

/// Two-stage search for `query` (one set): the first stage ranks the rows of the collection
/// `modality` searches by the cosine of the query's mean (graph or exact, as [`rank`]) and keeps
/// `k`; `method` re-scores those against `collection`'s sets; the best `--top` are returned.
#[allow(clippy::too_many_arguments)]
fn two_stage(
    index: &Index,
    method: &dyn itm_core::similarity::FineGrainedSimilarity,
    modality: QueryModality,
    query: FeatureSets,
    collection: FeatureSets,
    k: usize,
    args: &SearchArgs,
    device: &Device,
) -> Result<(Vec<Hit>, Stages), String> {
    let rows = match modality {
        QueryModality::Captions => Collection::Images,
        QueryModality::Images => Collection::Captions,
    };
    let mean = mean_of_sets(query);
    let (candidates, first) = rank(index, rows, &mean, k.max(args.top), args)?;
    let candidates: Vec<usize> = candidates
        .into_iter()
        .take(k)
        .map(|hit| hit.index)
        .collect();
    let rescored = candidates.len();
    let found = ShardedScorer::new(device.clone()).rerank(
        method,
        modality,
        query,
        collection,
        &[candidates],
    );
    let hits = found[0]
        .iter()
        .take(args.top)
        .map(|&(index, score)| Hit { index, score })
        .collect();
    let head = index
        .manifest()
        .rerank
        .as_ref()
        .map_or_else(String::new, |r| r.head.clone());
    Ok((
        hits,
        Stages::Two {
            first,
            k,
            head,
            rescored,
            collection: rows,
        },
    ))
}

/// The best `top` rows of `collection` for `query` (`[1, D]`): by the index's HNSW graph over
/// them when it has one, unless `--exact` is given or `top` exceeds the graph's ef_search;
/// otherwise by scoring every row.
fn rank(
    index: &Index,
    collection: Collection,
    query: &[f32],
    top: usize,
    args: &SearchArgs,
) -> Result<(Vec<Hit>, SearchUsed), String> {
    let mut instead_of_graph = None;
    if let Some(record) = index.graph_record(collection) {
        if args.exact {
            instead_of_graph = Some(format!("--exact: {} not used", record.file));
        } else if let Some(graph) = index
            .load_graph(collection)
            .map_err(|e| format!("cannot open the index: {e}"))?
        {
            let ef_search = graph.parameters().ef_search;
            if top <= ef_search {
                let hits = graph.top_k(query, top).swap_remove(0);
                let used = SearchUsed::Approximate {
                    file: record.file.clone(),
                    ef_search,
                    recall_at_10: record.recall_at_10,
                };
                return Ok((hits, used));
            }
            let asked = if top == args.top {
                format!("--top {top} exceeds")
            } else {
                format!("the first stage's {top} candidates exceed")
            };
            instead_of_graph = Some(format!(
                "{asked} the ef_search {ef_search} of {}",
                record.file
            ));
        }
    }
    let matrix = match collection {
        Collection::Images => index.images(),
        Collection::Captions => index.captions(),
    };
    let hits = first(matrix.top_k(query, top))?;
    let used = SearchUsed::Exact {
        rows: matrix.rows(),
        collection,
        instead_of_graph,
    };
    Ok((hits, used))
}

fn first(found: Result<Vec<Vec<Hit>>, itm_serve::ServeError>) -> Result<Vec<Hit>, String> {
    found
        .map_err(|e| e.to_string())
        .map(|mut all| all.swap_remove(0))
}

/// The embedding of `image`: an image id of the index (its stored row), else an image file
/// encoded by the index's model.
fn image_query(index: &Index, image: &str) -> Result<Vec<f32>, String> {
    if let Some(row) = index
        .items()
        .images
        .iter()
        .position(|item| item.id == image)
    {
        return index.images().row(row).map_err(|e| e.to_string());
    }
    let path = Path::new(image);
    if !path.is_file() {
        return Err(format!(
            "{image}: neither an image id of the index nor an image file"
        ));
    }
    let Some(size) = index.manifest().source.pixel_size() else {
        return Err(format!(
            "{image}: the index's model reads region features, so only its images can be \
             queried (by id)"
        ));
    };
    let device = Device::default();
    let (model, config, _) = index
        .checkpoint()
        .load(&device)
        .map_err(|e| e.to_string())?;
    encode_image_file(&model, &config.image, path, size, &device).map_err(|e| e.to_string())
}

/// Runs `itm sheet`.
pub fn sheet(args: &SheetArgs) -> Result<(), String> {
    if args.top == 0 {
        return Err("--top must be at least 1".to_string());
    }
    let index = open(&args.index)?;
    if !args.image_ids.is_empty() {
        return image_sheet(&index, args);
    }
    let n = index.items().captions.len();
    let rows: Vec<usize> = if args.caption_rows.is_empty() {
        let count = args.captions.clamp(1, n);
        (0..count).map(|i| i * n / count).collect()
    } else {
        args.caption_rows.clone()
    };
    let sheet =
        write_contact_sheet(&index, &rows, args.top, &args.output).map_err(|e| e.to_string())?;
    let found = sheet
        .iter()
        .filter(|row| row.ground_truth_rank.is_some())
        .count();
    println!(
        "wrote {} ({} captions × top {}; the caption's image found in {found}) and {}",
        args.output.display(),
        sheet.len(),
        args.top,
        sidecar(&args.output).display()
    );
    Ok(())
}

/// `itm sheet --image ID ...`: image queries, each with the captions found.
fn image_sheet(index: &Index, args: &SheetArgs) -> Result<(), String> {
    let images = &index.items().images;
    let rows = args
        .image_ids
        .iter()
        .map(|id| {
            images
                .iter()
                .position(|item| &item.id == id)
                .ok_or_else(|| format!("{id}: not an image id of the index"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let sheet =
        write_image_sheet(index, &rows, args.top, &args.output).map_err(|e| e.to_string())?;
    let found: usize = sheet.iter().map(|row| row.ground_truth_found).sum();
    println!(
        "wrote {} ({} images × top {} captions; {found} of the captions shown describe their \
         image) and {}",
        args.output.display(),
        sheet.len(),
        args.top,
        sidecar(&args.output).display()
    );
    Ok(())
}
