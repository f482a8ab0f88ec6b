//! `itm evaluate --sims S.npy`.

use std::path::Path;

use itm_core::eval::{Metrics, Protocol, evaluate};
use itm_data::npy::MappedF32;
use rayon::prelude::*;

/// Evaluates the `[N, 5N]` matrix in `path` and prints a table or JSON.
pub fn run(path: &Path, protocol: Protocol, json: bool) -> Result<(), String> {
    let sims = MappedF32::open(path, 2, "[images, captions]").map_err(|e| e.to_string())?;
    let (n_img, n_cap) = (sims.shape()[0], sims.shape()[1]);
    if n_cap != 5 * n_img {
        return Err(format!(
            "{}: a similarity matrix must be [N, 5N] (5 captions per image), found [{n_img}, {n_cap}]",
            path.display()
        ));
    }
    if let Some(position) = sims.values().par_iter().position_first(|v| !v.is_finite()) {
        return Err(format!(
            "{}: the score of image {} and caption {} is {}",
            path.display(),
            position / n_cap,
            position % n_cap,
            sims.values()[position]
        ));
    }
    if protocol == Protocol::Coco1k && !n_img.is_multiple_of(5) {
        return Err(format!(
            "{}: coco1k needs a multiple of 5 images, found {n_img}",
            path.display()
        ));
    }
    let caption_image: Vec<usize> = (0..n_cap).map(|j| j / 5).collect();
    let report = evaluate(sims.values(), n_img, &caption_image, protocol);
    if json {
        println!("{}", to_json(&report.metrics));
    } else {
        print_table(&report.metrics, protocol, n_img, n_cap);
    }
    Ok(())
}

fn to_json(m: &Metrics) -> serde_json::Value {
    serde_json::json!({
        "i2t_r1": m.i2t_recall[0], "i2t_r5": m.i2t_recall[1], "i2t_r10": m.i2t_recall[2],
        "i2t_medr": m.i2t_medr, "i2t_meanr": m.i2t_meanr,
        "t2i_r1": m.t2i_recall[0], "t2i_r5": m.t2i_recall[1], "t2i_r10": m.t2i_recall[2],
        "t2i_medr": m.t2i_medr, "t2i_meanr": m.t2i_meanr,
        "rsum": m.rsum(),
    })
}

fn print_table(m: &Metrics, protocol: Protocol, n_img: usize, n_cap: usize) {
    let name = match protocol {
        Protocol::Flickr30k => "Flickr30K 1K (whole matrix)",
        Protocol::Coco1k => "COCO 1K (mean of 5 folds)",
        Protocol::Coco5k => "COCO 5K (whole matrix)",
    };
    println!("{name}: {n_img} images, {n_cap} captions");
    println!("           R@1    R@5   R@10   medr   meanr");
    for (direction, recall, medr, meanr) in [
        ("image→text", m.i2t_recall, m.i2t_medr, m.i2t_meanr),
        ("text→image", m.t2i_recall, m.t2i_medr, m.t2i_meanr),
    ] {
        println!(
            "{direction} {:>5.1}  {:>5.1}  {:>5.1}  {:>5.1}  {:>6.1}",
            recall[0], recall[1], recall[2], medr, meanr
        );
    }
    println!("rsum {:.1}", m.rsum());
}
