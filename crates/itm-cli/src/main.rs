//! `itm`: the command-line face of the library.

mod check;
mod encode;
mod encode_text;
mod evaluate;
mod import;
mod index;
mod search;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Image–text matching: train and evaluate models, encode images and captions, check datasets.
#[derive(Parser, Debug)]
#[command(name = "itm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a system of the zoo and evaluate its best epoch (the about text lists the zoo's
    /// families: [`train::about`]).
    #[command(about = train::about(), long_about = train::long_about())]
    Train(train::TrainArgs),
    /// Evaluate with the standard protocol: a saved similarity matrix, or checkpoints.
    ///
    /// `--sims S.npy` reads a float32 [N, 5N] matrix. `--checkpoint DIR` (repeatable: an
    /// ensemble averaging the matrices) scores a split with the model's own similarity. Ranks
    /// are pessimistic: a competitor scored equal to the ground truth is ahead of it, and the
    /// table counts the queries with such a tie.
    Evaluate(evaluate::EvaluateArgs),
    /// Write the embeddings of images or captions under a trained checkpoint.
    ///
    /// Rows follow the input order and have unit length; the dot product of an image row and
    /// a caption row is the model's score of the pair.
    Encode(encode::EncodeArgs),
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
    /// Convert an authors' checkpoint (model_best.pth) into an itm checkpoint folder.
    ///
    /// The system is recognised from the checkpoint's keys and options (--system names it
    /// otherwise); BiGRU systems need the vocabulary they were trained with (--vocab), BERT
    /// systems the Hugging Face folder of their BERT (--bert).
    #[command(about = import::about())]
    Import(import::ImportArgs),
    /// Build retrieval indexes (embeddings of a split, searched by `itm search`).
    Index {
        #[command(subcommand)]
        command: index::IndexCommand,
    },
    /// Search an index: text → images, or image → captions (cosine, top-k; two stages for a
    /// fine-grained model).
    ///
    /// Exact (every row scored) unless the index was built with --approximate: then its HNSW
    /// graph is searched, unless --exact is given. A fine-grained model's index is searched in
    /// two stages: that search keeps the top --rerank-top rows, and the model's head re-scores
    /// them. The output says which searches ran.
    Search(search::SearchArgs),
    /// Contact sheet: a few captions of an index and their top images as a PNG grid, captions
    /// and scores written on it (or, with --image, images and the captions found).
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

fn main() -> ExitCode {
    // Training and scoring free and reallocate large tensors every step: keep the memory.
    itm_core::runtime::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Encode(args) => encode::run(args),
        Command::EncodeText {
            model,
            input,
            output,
            batch_size,
        } => encode_text::run(&model, &input, &output, batch_size),
        Command::Import(args) => import::run(args),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use itm_core::similarity::HEADS;
    use itm_train::{ImageTower, zoo};

    /// `itm --help` names every family of the zoo (it used to omit HREM, CLIP, DAIM and AAHR),
    /// and `itm train --help` every system, head and image tower: the lists come from the
    /// zoo and the tables.
    #[test]
    fn help_lists_what_the_zoo_and_the_tables_hold() {
        let top = Cli::command().render_help().to_string();
        for family in ["HREM", "CLIP", "DAIM", "AAHR", "VSE∞", "X-Dim"] {
            assert!(top.contains(family), "{family}: {top}");
        }
        let mut cli = Cli::command();
        let train = cli
            .find_subcommand_mut("train")
            .expect("the train subcommand")
            .render_long_help()
            .to_string();
        for entry in zoo::ZOO {
            assert!(train.contains(entry.name), "{}", entry.name);
            assert!(top.contains(entry.family), "{}", entry.family);
        }
        for head in HEADS {
            assert!(train.contains(head.summary), "{}", head.name);
        }
        for tower in ImageTower::ALL {
            assert!(train.contains(tower.summary()), "{}", tower.name());
        }
    }
}
