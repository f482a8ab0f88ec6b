//! `itm data check <dir-or-json>`.

use std::path::Path;

use itm_data::images::decode;
use itm_data::karpathy::{self, KarpathySplit};
use itm_data::precomp::{self, SPLITS};
use itm_data::tokenize;
use rayon::prelude::*;

/// Words per caption: minimum, mean, maximum.
fn caption_lengths(captions: &[String]) -> String {
    let lengths: Vec<usize> = captions.par_iter().map(|c| tokenize(c).len()).collect();
    let min = lengths.iter().min().copied().unwrap_or(0);
    let max = lengths.iter().max().copied().unwrap_or(0);
    let mean = lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64;
    format!("words per caption {min}/{mean:.1}/{max} (min/mean/max)")
}

/// Checks a precomp folder or a Karpathy JSON, printing a summary; fails if a problem is found.
pub fn run(path: &Path, images: Option<&Path>, decode_images: bool) -> Result<(), String> {
    let problems = if path.is_dir() {
        check_precomp(path)
    } else if path.is_file() {
        let root = images.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")));
        check_karpathy(path, root, decode_images)
    } else {
        return Err(format!("{}: no such file or folder", path.display()));
    };
    if problems.is_empty() {
        println!("no problem found");
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("problem: {problem}");
        }
        Err(format!(
            "{} problem(s) found in {}",
            problems.len(),
            path.display()
        ))
    }
}

fn check_precomp(folder: &Path) -> Vec<String> {
    println!("SCAN precomp folder {}", folder.display());
    let mut problems = Vec::new();
    let mut found = 0;
    for split in SPLITS {
        let [ims, _, _] = precomp::split_files(folder, split);
        if !ims.exists() {
            continue;
        }
        found += 1;
        match precomp::read_split(folder, split) {
            Ok(data) => {
                let regions = data.regions().expect("precomp splits hold region features");
                println!(
                    "{split}: {} images × {} regions × {} features, {} captions ({} per image), {}",
                    regions.len(),
                    regions.n_regions(),
                    regions.d_feature(),
                    data.captions.len(),
                    data.captions.len() / regions.len(),
                    caption_lengths(&data.captions)
                );
                if let Err(e) = regions.check_finite() {
                    problems.push(e.to_string());
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if found == 0 {
        problems.push(format!(
            "{}: no {{split}}_ims.npy for any split of {SPLITS:?}",
            folder.display()
        ));
    }
    problems
}

fn check_karpathy(json: &Path, root: &Path, decode_images: bool) -> Vec<String> {
    println!(
        "Karpathy split JSON {} (images under {})",
        json.display(),
        root.display()
    );
    let mut problems = Vec::new();
    for split in [
        KarpathySplit::Train,
        KarpathySplit::Dev,
        KarpathySplit::Test,
    ] {
        match karpathy::load(json, root, split) {
            Ok(data) => {
                println!(
                    "{split:?}: {} images, {} captions, {}",
                    data.images.len(),
                    data.captions.len(),
                    caption_lengths(&data.captions)
                );
                if decode_images {
                    let bad: Vec<String> = data
                        .images
                        .par_iter()
                        .filter_map(|p| decode(p).err().map(|e| e.to_string()))
                        .collect();
                    problems.extend(bad);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    problems
}
