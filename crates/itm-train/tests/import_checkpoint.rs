//! Reading the authors' checkpoints: the zip format and PyTorch's legacy format give the same
//! tensors and options (SCAN's published files are legacy), `opt` is read whole.

use itm_data::pickle::Value;
use itm_test_support::train_fixtures;
use itm_train::import::AuthorsCheckpoint;

#[test]
fn zip_and_legacy_files_read_the_same() {
    let folder = train_fixtures().path("authors/scan_t2i_avg");
    let zip = AuthorsCheckpoint::open(&folder.join("model_best.pth.tar")).unwrap();
    let legacy = AuthorsCheckpoint::open(&folder.join("model_best_legacy.pth.tar")).unwrap();
    assert_eq!(zip.opt, legacy.opt);
    assert_eq!(zip.epoch, Some(0));
    assert_eq!(zip.epoch, legacy.epoch);
    assert_eq!(zip.best_rsum, legacy.best_rsum);
    assert_eq!(zip.state_dicts.len(), 2);
    for (a, b) in zip.state_dicts.iter().zip(&legacy.state_dicts) {
        assert_eq!(a.keys(), b.keys());
        for key in a.keys() {
            let data = |dict: &itm_train::import::StateDict| {
                let tensor = dict.tensors.iter().find(|t| t.name == key).unwrap();
                (tensor.shape.clone(), tensor.to_bytes().unwrap().to_vec())
            };
            assert_eq!(data(a), data(b), "{key}");
        }
    }
    // The options that the tensors do not show.
    assert_eq!(zip.opt_str("cross_attn").unwrap(), "t2i");
    assert_eq!(zip.opt_str("agg_func").unwrap(), "Mean");
    assert_eq!(zip.opt_f64("lambda_softmax").unwrap(), 9.0);
    assert_eq!(zip.opt_value("bi_gru"), Some(&Value::Bool(true)));
    assert_eq!(zip.state_dicts[0].keys(), vec!["fc.bias", "fc.weight"]);
    assert_eq!(zip.state_dicts[1].shape("embed.weight"), Some(vec![62, 16]));
}

#[test]
fn options_of_the_wrong_type_name_the_option() {
    let path = train_fixtures().path("authors/vse_infty_bigru/model_best.pth");
    let checkpoint = AuthorsCheckpoint::open(&path).unwrap();
    assert_eq!(checkpoint.opt_usize("embed_size").unwrap(), 32);
    assert!(!checkpoint.state_dicts[0].data_parallel);
    let message = checkpoint
        .opt_usize("precomp_enc_type")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("model_best.pth") && message.contains("opt.precomp_enc_type"),
        "{message}"
    );
    let message = checkpoint
        .opt_str("no_such_option")
        .unwrap_err()
        .to_string();
    assert!(message.contains("no_such_option"), "{message}");
}
