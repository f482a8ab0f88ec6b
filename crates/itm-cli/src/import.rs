//! `itm import`: an authors' checkpoint as an `itm` checkpoint folder.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::Args;
use itm_train::import::{ImportInputs, SYSTEMS, import_checkpoint};

/// The systems `itm import` converts, for the help text.
pub fn about() -> String {
    let systems: Vec<String> = SYSTEMS
        .iter()
        .map(|s| format!("{} ({})", s.name, s.repository))
        .collect();
    format!(
        "Convert a checkpoint saved by a system's own train.py into an itm checkpoint folder \
         (systems: {})",
        systems.join("; ")
    )
}

/// `itm import --checkpoint FILE [--vocab VOCAB.json] [--bert DIR] [--system NAME] --output DIR`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint as the authors' train.py saved it (model_best.pth, *.pth.tar).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The vocabulary JSON the BiGRU systems were trained with (word2idx / idx2word / idx).
    #[arg(long, value_name = "VOCAB.json")]
    vocab: Option<PathBuf>,
    /// The Hugging Face folder whose config and tokenizer a BERT system was built from.
    #[arg(long, value_name = "DIR")]
    bert: Option<PathBuf>,
    /// The system, when it is not recognised from the checkpoint's keys and options.
    #[arg(long, value_name = "NAME")]
    system: Option<String>,
    /// The itm checkpoint folder to write (model.bpk, model.json, vocabulary, import.json).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
}

/// Runs the import and prints what was read.
pub fn run(args: ImportArgs) -> Result<(), String> {
    let inputs = ImportInputs {
        checkpoint: args.checkpoint,
        vocab: args.vocab,
        bert: args.bert,
        system: args.system,
    };
    let report =
        import_checkpoint(&inputs, &args.output, &Device::default()).map_err(|e| e.to_string())?;
    println!(
        "{}: {} ({}), epoch {}, best rsum {}",
        report.source.display(),
        report.system,
        report.repository,
        report
            .epoch
            .map_or_else(|| "?".to_string(), |e| e.to_string()),
        report
            .best_rsum
            .map_or_else(|| "?".to_string(), |r| format!("{r:.2}")),
    );
    for note in &report.notes {
        println!("  {note}");
    }
    println!(
        "wrote {} (evaluate it with: itm evaluate --checkpoint {} --data PRECOMP --split test)",
        args.output.display(),
        args.output.display()
    );
    Ok(())
}
