//! `itm`: the command-line face of the library.

mod check;
mod encode_text;
mod evaluate;
mod index;
mod search;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Image–text matching: evaluate retrieval results, check datasets, encode captions.
#[derive(Parser, Debug)]
#[command(name = "itm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate a saved similarity matrix with the standard protocol.
    ///
    /// The matrix is a float32 .npy file of shape [N, 5N]: rows are images, columns captions,
    /// captions 5i..5i+4 describe image i. Ranks count competitors with a strictly greater score.
    Evaluate {
        /// The similarity matrix (.npy, float32, [N, 5N]).
        #[arg(long, value_name = "S.npy")]
        sims: PathBuf,
        /// f30k and coco5k rank over the whole matrix; coco1k averages 5 folds of N/5 images.
        #[arg(long, value_enum, default_value_t = ProtocolArg::F30k)]
        protocol: ProtocolArg,
        /// Print one JSON object (i2t_r1 … t2i_meanr, rsum) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Encode captions into sentence embeddings with a BERT-family model (e.g. all-MiniLM-L6-v2).
    ///
    /// The model folder has the Hugging Face layout: config.json, model.safetensors and
    /// tokenizer.json, and optionally sentence_bert_config.json, whose max_seq_length caps the
    /// tokens of a caption (else max_position_embeddings). Longer captions are truncated, and
    /// their number reported. Each embedding is the mean of the token features over the
    /// caption's tokens, l2-normalised; rows follow the input order.
    EncodeText {
        /// The model folder.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// The captions: UTF-8 text, one non-empty caption per line.
        #[arg(long, value_name = "captions.txt")]
        input: PathBuf,
        /// The embeddings to write (.npy, float32, [captions, hidden]), replaced atomically.
        #[arg(long, value_name = "emb.npy")]
        output: PathBuf,
        /// Captions per forward pass.
        #[arg(long, value_name = "N", default_value_t = 32)]
        batch_size: usize,
    },
    /// Build retrieval indexes (embeddings of a split, searched by `itm search`).
    Index {
        #[command(subcommand)]
        command: index::IndexCommand,
    },
    /// Search an index: text → images, or image → captions (exact cosine, top-k).
    Search(search::SearchArgs),
    /// Contact sheet: a few captions of an index and their top images as a PNG grid.
    Sheet(search::SheetArgs),
    /// Inspect datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Validate a dataset and print a summary: a SCAN precomp folder or a Karpathy split JSON.
    ///
    /// Exits non-zero when a problem is found; every problem names the file.
    Check {
        /// A precomp folder ({split}_ims.npy, _caps.txt, _ids.txt) or a Karpathy JSON.
        path: PathBuf,
        /// Image folder of a Karpathy JSON (default: the JSON's folder).
        #[arg(long, value_name = "DIR")]
        images: Option<PathBuf>,
        /// Also decode every image of a Karpathy dataset (slow on large sets).
        #[arg(long)]
        decode: bool,
    },
}

/// Evaluation protocols.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ProtocolArg {
    /// Flickr30K 1K: the whole matrix.
    F30k,
    /// COCO 1K: mean over 5 folds.
    Coco1k,
    /// COCO 5K: the whole matrix.
    Coco5k,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Evaluate {
            sims,
            protocol,
            json,
        } => evaluate::run(&sims, protocol.into(), json),
        Command::EncodeText {
            model,
            input,
            output,
            batch_size,
        } => encode_text::run(&model, &input, &output, batch_size),
        Command::Index { command } => index::run(&command),
        Command::Search(args) => search::run(&args),
        Command::Sheet(args) => search::sheet(&args),
        Command::Data {
            command:
                DataCommand::Check {
                    path,
                    images,
                    decode,
                },
        } => check::run(&path, images.as_deref(), decode),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

impl From<ProtocolArg> for itm_core::eval::Protocol {
    fn from(value: ProtocolArg) -> Self {
        match value {
            ProtocolArg::F30k => Self::Flickr30k,
            ProtocolArg::Coco1k => Self::Coco1k,
            ProtocolArg::Coco5k => Self::Coco5k,
        }
    }
}
