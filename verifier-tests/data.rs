//! Dataset loading (src/data/dataset.rs, src/data/images.rs) on the bundled SYNTHETIC
//! dermatology demo (`demo/`, made by `verifier-tests/gen_demo.py`): the MedMNIST v2 npz
//! layout, the image folder exported from it, selection and manifests, hostile inputs, and the
//! demo model's accuracy against its model card.

use crate::common::root;
use robustcert::data::dataset::{
    parse_indices, random_subset, ArrayRef, Dataset, LoadOptions, Preprocess, Selection, SUBSET_ALGORITHM,
};
use robustcert::data::{npy::npz_names, read_array, read_npz_array};
use robustcert::ir::Tensor;
use std::path::{Path, PathBuf};

const CLASSES: [&str; 7] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"];

fn demo() -> PathBuf {
    root().join("demo")
}

fn npz() -> PathBuf {
    demo().join("synthetic_dermamnist.npz")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robustcert-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn card() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(demo().join("model_card.json")).unwrap()).unwrap()
}

fn test_split() -> Dataset {
    Dataset::load(npz().to_str().unwrap(), &LoadOptions::default()).unwrap()
}

/// Writes a float64 `.npy` (NEP 1 v1.0) by hand.
fn write_f64_npy(path: &Path, shape: &[usize], data: &[f64]) {
    let dims = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
    };
    let mut dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {dims}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn demo_npz_has_the_medmnist_layout_and_is_marked_synthetic() {
    let names = npz_names(&npz()).unwrap();
    for split in ["train", "val", "test"] {
        assert!(names.contains(&format!("{split}_images")) && names.contains(&format!("{split}_labels")), "{names:?}");
    }
    assert!(names.contains(&"SYNTHETIC_DATA_NOTICE".to_string()));
    let meta: Vec<u8> = read_npz_array(npz(), "metadata_json").unwrap().data().iter().map(|&v| v as u8).collect();
    let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    assert_eq!(meta["synthetic"], true);
    assert!(meta["notice"].as_str().unwrap().starts_with("SYNTHETIC DATA"));

    // Raw arrays: uint8 N x 28 x 28 x 3 and N x 1.
    let raw = read_npz_array(npz(), "test_images").unwrap();
    assert_eq!(raw.shape(), &[300, 28, 28, 3]);
    assert_eq!(read_npz_array(npz(), "test_labels").unwrap().shape(), &[300, 1]);

    for (split, n) in [("train", 1100), ("val", 200), ("test", 300)] {
        let opts = LoadOptions { split: split.into(), ..Default::default() };
        let d = Dataset::load(npz().to_str().unwrap(), &opts).unwrap();
        assert_eq!(d.format, "medmnist-npz");
        assert_eq!(d.inputs.shape(), &[n, 3, 28, 28], "{split}");
        assert_eq!(d.labels.len(), n);
        assert_eq!(d.class_names.as_deref().unwrap(), &CLASSES.map(String::from));
        let counts = d.class_counts();
        assert_eq!(counts.len(), 7);
        assert!(counts.iter().all(|&c| c > 0), "{split}: every class present: {counts:?}");
        assert!(d.inputs.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(d.ids[5], format!("{split}[5]"));
    }
    // NHWC uint8 -> NCHW / 255 exactly.
    let d = test_split();
    let (i, y, x, c) = (17, 3, 20, 2);
    assert_eq!(d.inputs.data()[((i * 3 + c) * 28 + y) * 28 + x], raw.data()[((i * 28 + y) * 28 + x) * 3 + c] / 255.0);
    // The same file as plain arrays with array names.
    let opts = LoadOptions {
        labels: Some("test_labels".into()),
        preprocess: Some(Preprocess::pixels()),
        ..Default::default()
    };
    let a = Dataset::load(&format!("{}:test_images", npz().display()), &opts).unwrap();
    assert_eq!(a.format, "npz");
    assert_eq!(a.inputs, d.inputs);
    assert_eq!(a.labels, d.labels);
}

#[test]
fn image_folder_matches_the_npz_pixel_exactly() {
    let f = Dataset::from_image_folder(demo().join("images"), 3, &Preprocess::pixels()).unwrap();
    let d = test_split();
    assert_eq!(f.format, "image-folder");
    assert_eq!(f.len(), 64);
    assert_eq!(f.inputs.shape(), &[64, 3, 28, 28]);
    assert_eq!(f.class_names.as_deref().unwrap(), &CLASSES.map(String::from));
    let per = 3 * 28 * 28;
    let mut seen = Vec::new();
    for (k, id) in f.ids.iter().enumerate() {
        // ids are class/synthetic_test_XXXX.png, sorted by class then file name.
        let (class, file) = id.split_once('/').unwrap();
        let idx: usize = file.trim_start_matches("synthetic_test_").trim_end_matches(".png").parse().unwrap();
        assert_eq!(CLASSES[f.labels[k]], class);
        assert_eq!(f.labels[k], d.labels[idx], "{id}");
        assert_eq!(f.inputs.data()[k * per..(k + 1) * per], d.inputs.data()[idx * per..(idx + 1) * per], "{id}");
        seen.push(idx);
    }
    seen.sort();
    assert_eq!(seen, (0..64).collect::<Vec<_>>());
    // Deterministic: the same order and digest twice.
    let g = Dataset::load(demo().join("images").to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(g.ids, f.ids);
    assert_eq!(g.manifest().sha256().unwrap(), f.manifest().sha256().unwrap());
    // One channel: luma.
    let grey = Dataset::from_image_folder(demo().join("images"), 1, &Preprocess::pixels()).unwrap();
    assert_eq!(grey.inputs.shape(), &[64, 1, 28, 28]);
}

#[test]
fn selection_is_deterministic_and_recorded() {
    let d = test_split();
    let first = d.select(&Selection::first(10)).unwrap();
    assert_eq!(first.len(), 10);
    assert_eq!(first.selection.method, "first-n");
    assert_eq!(first.selection.indices, (0..10).collect::<Vec<_>>());
    assert_eq!(first.inputs.data(), &d.inputs.data()[..10 * 3 * 28 * 28]);
    assert_eq!(d.select(&Selection::first(1000)).unwrap().len(), 300);

    let idx = parse_indices("1,5,9-12").unwrap();
    let s = d.select(&Selection::indices(idx.clone())).unwrap();
    assert_eq!(s.selection.method, "indices");
    assert_eq!(s.selection.indices, idx);
    assert_eq!(s.labels, idx.iter().map(|&i| d.labels[i]).collect::<Vec<_>>());
    assert_eq!(s.ids, vec!["test[1]", "test[5]", "test[9]", "test[10]", "test[11]", "test[12]"]);
    assert!(s.selection.description.contains("1,5,9-12"));

    let r1 = d.select(&Selection::random(32, 2024)).unwrap();
    let r2 = d.select(&Selection::random(32, 2024)).unwrap();
    let r3 = d.select(&Selection::random(32, 2025)).unwrap();
    assert_eq!(r1.selection, r2.selection);
    assert_eq!(r1.inputs, r2.inputs);
    assert_ne!(r1.selection.indices, r3.selection.indices);
    assert_eq!(r1.selection.method, "random-subset");
    assert_eq!(r1.selection.seed, Some(2024));
    assert_eq!(r1.selection.count, 32);
    assert_eq!(r1.selection.indices, random_subset(300, 32, 2024));
    assert!(r1.selection.description.contains(SUBSET_ALGORITHM));
    // Pinned: the algorithm must not drift (certificates record these indices).
    assert_eq!(random_subset(300, 5, 2024), vec![70, 82, 123, 177, 266]);

    // Composition: indices, then a random subset of them, then a limit; then a further limit.
    let c = d
        .select(&Selection {
            indices: Some((100..200).collect()),
            random: Some(robustcert::data::dataset::RandomSubset { count: 20, seed: 9 }),
            limit: Some(5),
        })
        .unwrap();
    assert_eq!(c.selection.method, "indices+random-subset+first-n");
    assert_eq!(c.len(), 5);
    assert!(c.selection.indices.iter().all(|i| (100..200).contains(i)));
    let c2 = c.select(&Selection::first(2)).unwrap();
    assert_eq!(c2.selection.indices, c.selection.indices[..2]);
    assert_eq!(c2.selection.source_count, 300);
    assert_eq!(c2.selection.method, "indices+random-subset+first-n+first-n");
    let sub = r1.select(&Selection::indices(vec![3, 0])).unwrap();
    assert_eq!(sub.selection.indices, vec![r1.selection.indices[3], r1.selection.indices[0]]);
    assert_eq!(sub.selection.seed, Some(2024));

    // Bad selections.
    assert!(d.select(&Selection::indices(vec![300])).is_err());
    assert!(d.select(&Selection::indices(vec![1, 1])).is_err());
    assert!(d.select(&Selection::indices(vec![])).is_err());
    assert!(d.select(&Selection::random(301, 1)).is_err());
    assert!(d.select(&Selection::first(0)).is_err());
    assert!(parse_indices("3-1").is_err() && parse_indices("x").is_err());
}

#[test]
fn manifest_is_canonical_and_plugs_into_certificates() {
    let d = test_split().select(&Selection::random(16, 7)).unwrap();
    let m = d.manifest();
    assert_eq!(m.count, 16);
    assert_eq!(m.source, "synthetic_dermamnist.npz");
    assert_eq!(m.input_shape, vec![16, 3, 28, 28]);
    assert_eq!(m.selection.seed.as_deref(), Some("7"));
    let json = m.canonical_json().unwrap();
    assert!(json.starts_with("{\"classNames\":[\"akiec\""), "{json}");
    assert_eq!(m.sha256().unwrap(), d.manifest().sha256().unwrap());
    let other = test_split().select(&Selection::random(16, 8)).unwrap();
    assert_ne!(other.manifest().sha256().unwrap(), m.sha256().unwrap());
    assert_ne!(other.manifest().inputs_sha256, m.inputs_sha256);

    // The canonical .npy files read back exactly, and DatasetSubject hashes the same bytes.
    let dir = tmpdir("manifest");
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    d.write_npy(&xp, &yp).unwrap();
    assert_eq!(read_array(&xp).unwrap(), d.inputs);
    assert_eq!(read_array(&yp).unwrap().data(), &d.labels.iter().map(|&l| l as f64).collect::<Vec<_>>()[..]);
    let rec = &d.selection;
    let subject = robustcert::cert::DatasetSubject::from_files(&xp, &yp).unwrap().with_selection(
        &rec.method,
        rec.seed,
        &rec.description,
    );
    assert_eq!(subject.manifest.inputs.sha256, m.inputs_sha256);
    assert_eq!(subject.manifest.labels.sha256, m.labels_sha256);
    assert_eq!(subject.labels(), &d.labels[..]);
    assert_eq!(subject.inputs(), &d.inputs);
    // Loaded again as plain arrays, the data are identical.
    let back = Dataset::from_arrays(
        &ArrayRef::parse(xp.to_str().unwrap()),
        &ArrayRef::parse(yp.to_str().unwrap()),
        &Preprocess::none(),
    )
    .unwrap();
    assert_eq!(back.inputs, d.inputs);
    assert_eq!(back.manifest().inputs_sha256, m.inputs_sha256);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tmpdir("bad");
    let err = |r: robustcert::Result<Dataset>| r.expect_err("must fail").to_string();
    let arrays = |x: &Path, y: &Path| {
        Dataset::from_arrays(
            &ArrayRef::parse(x.to_str().unwrap()),
            &ArrayRef::parse(y.to_str().unwrap()),
            &Preprocess::none(),
        )
    };

    // Missing files.
    let e = err(Dataset::load(dir.join("nope.npz").to_str().unwrap(), &LoadOptions::default()));
    assert!(e.contains("no such file"), "{e}");
    let x = dir.join("x.npy");
    write_f64_npy(&x, &[4, 2], &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
    let e = err(arrays(&x, &dir.join("missing.npy")));
    assert!(e.contains("missing.npy") && e.contains("no such file"), "{e}");
    let e = err(Dataset::load(x.to_str().unwrap(), &LoadOptions::default()));
    assert!(e.contains("labels"), "{e}");

    // Label count mismatch, non-integer and multi-label labels.
    let y3 = dir.join("y3.npy");
    write_f64_npy(&y3, &[3], &[0.0, 1.0, 2.0]);
    let e = err(arrays(&x, &y3));
    assert!(e.contains("3 labels") && e.contains("4 inputs"), "{e}");
    let yf = dir.join("yf.npy");
    write_f64_npy(&yf, &[4], &[0.0, 1.5, 2.0, 1.0]);
    assert!(err(arrays(&x, &yf)).contains("not a class index"));
    let yn = dir.join("yn.npy");
    write_f64_npy(&yn, &[4], &[0.0, -1.0, 2.0, 1.0]);
    assert!(err(arrays(&x, &yn)).contains("not a class index"));
    let ym = dir.join("ym.npy");
    write_f64_npy(&ym, &[4, 3], &[0.0; 12]);
    assert!(err(arrays(&x, &ym)).contains("multi-label"));

    // Labels out of range for the class names.
    let y = dir.join("y.npy");
    write_f64_npy(&y, &[4], &[0.0, 1.0, 7.0, 1.0]);
    let d = arrays(&x, &y).unwrap();
    let e = d.clone().with_class_names(CLASSES.map(String::from).to_vec()).unwrap_err().to_string();
    assert!(e.contains("label 7") && e.contains("7 classes"), "{e}");
    assert!(d.check_labels(8).is_ok() && d.check_labels(7).is_err());

    // NaN and infinity in float data.
    let xn = dir.join("xn.npy");
    write_f64_npy(&xn, &[4, 2], &[0.0, 0.1, f64::NAN, 0.3, 0.4, 0.5, 0.6, 0.7]);
    let e = err(arrays(&xn, &y));
    assert!(e.contains("NaN") && e.contains("input 1"), "{e}");
    write_f64_npy(&xn, &[4, 2], &[0.0, 0.1, 0.2, 0.3, 0.4, f64::INFINITY, 0.6, 0.7]);
    assert!(err(arrays(&xn, &y)).contains("input 2"));

    // Preprocessing mismatches.
    let bad = Preprocess::none().normalised(vec![0.1, 0.2, 0.3], vec![1.0]);
    let e = Dataset::from_arrays(&ArrayRef::parse(x.to_str().unwrap()), &ArrayRef::parse(y.to_str().unwrap()), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 values") && e.contains("2 channels"), "{e}");

    // MedMNIST: wrong split, missing arrays.
    assert!(err(Dataset::from_medmnist(npz(), "holdout", &Preprocess::pixels())).contains("split"));
    let e = err(Dataset::from_medmnist(&x, "test", &Preprocess::pixels()));
    assert!(e.contains("npz"), "{e}");

    // Image folders: not a folder, no classes, an empty class, a broken file, mixed sizes.
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let e = err(Dataset::from_image_folder(&imgs, 3, &Preprocess::pixels()));
    assert!(e.contains("no class sub-folders"), "{e}");
    let e = err(Dataset::from_image_folder(imgs.join("none"), 3, &Preprocess::pixels()));
    assert!(e.contains("not a directory"), "{e}");
    std::fs::create_dir_all(imgs.join("a")).unwrap();
    std::fs::create_dir_all(imgs.join("b")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30])).save(imgs.join("a/0.png")).unwrap();
    std::fs::write(imgs.join("b/readme.txt"), "not an image").unwrap();
    let e = err(Dataset::from_image_folder(&imgs, 3, &Preprocess::pixels()));
    assert!(e.contains("'b' holds no"), "{e}");
    std::fs::write(imgs.join("b/broken.png"), "not a png at all").unwrap();
    let e = err(Dataset::from_image_folder(&imgs, 3, &Preprocess::pixels()));
    assert!(e.contains("broken.png"), "{e}");
    std::fs::remove_file(imgs.join("b/broken.png")).unwrap();
    image::RgbImage::from_pixel(9, 8, image::Rgb([1, 2, 3])).save(imgs.join("b/1.png")).unwrap();
    let e = err(Dataset::from_image_folder(&imgs, 3, &Preprocess::pixels()));
    assert!(e.contains("same size") && e.contains("9x8") && e.contains("8x8"), "{e}");

    // Grey, grey+alpha, RGBA and JPEG images convert to RGB (alpha dropped); 1 channel gives luma.
    std::fs::remove_file(imgs.join("b/1.png")).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([77])).save(imgs.join("b/1.png")).unwrap();
    image::RgbaImage::from_pixel(8, 8, image::Rgba([200, 100, 50, 7])).save(imgs.join("b/2.png")).unwrap();
    image::GrayAlphaImage::from_pixel(8, 8, image::LumaA([5, 0])).save(imgs.join("b/3.PNG")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128])).save(imgs.join("b/4.jpg")).unwrap();
    std::fs::write(imgs.join("b/.hidden.png"), "ignored").unwrap();
    let d = Dataset::from_image_folder(&imgs, 3, &Preprocess { scale: 1.0, ..Preprocess::pixels() }).unwrap();
    assert_eq!(d.ids, vec!["a/0.png", "b/1.png", "b/2.png", "b/3.PNG", "b/4.jpg"]);
    assert_eq!(d.labels, vec![0, 1, 1, 1, 1]);
    assert_eq!(d.inputs.shape(), &[5, 3, 8, 8]);
    let px = |i: usize, c: usize| d.inputs.data()[(i * 3 + c) * 64];
    assert_eq!([px(0, 0), px(0, 1), px(0, 2)], [10.0, 20.0, 30.0]);
    assert_eq!([px(1, 0), px(1, 1), px(1, 2)], [77.0, 77.0, 77.0]);
    assert_eq!([px(2, 0), px(2, 1), px(2, 2)], [200.0, 100.0, 50.0]);
    assert_eq!([px(3, 0), px(3, 1), px(3, 2)], [5.0, 5.0, 5.0]);
    assert!((px(4, 0) - 128.0).abs() <= 2.0);
    let g = Dataset::from_image_folder(&imgs, 1, &Preprocess { scale: 1.0, ..Preprocess::pixels() }).unwrap();
    assert_eq!(g.inputs.shape(), &[5, 1, 8, 8]);
    assert_eq!(g.inputs.data()[64], 77.0);
    assert!(Dataset::from_image_folder(&imgs, 2, &Preprocess::pixels()).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn demo_model_matches_its_model_card() {
    let card = card();
    assert_eq!(card["synthetic_training_data"], true);
    let names: Vec<&str> = card["class_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, CLASSES);
    assert_eq!(card["input"]["shape"], serde_json::json!(["N", 3, 28, 28]));
    assert_eq!(card["input"]["dtype"], "float32");
    assert_eq!(card["input"]["value_range"], serde_json::json!([0.0, 1.0]));
    assert_eq!(card["input"]["channel_order"], "RGB");
    assert_eq!(card["training"]["script"], "verifier-tests/gen_demo.py");

    let m = robustcert::onnx::load_file(demo().join("dermacnn.onnx")).unwrap();
    for op in ["Sub", "Div", "Conv", "Gemm"] {
        assert!(m.info.op_counts.contains_key(op), "{op}: {:?}", m.info.op_counts);
    }
    let d = test_split();
    assert_eq!(d.len() as u64, card["test_set_size"].as_u64().unwrap());
    let x: Tensor<f32> = d.inputs.map(|v| v as f32);
    let samples = m.graph.as_samples(x).unwrap();
    let logits = m.graph.run_samples(&samples).unwrap();
    assert_eq!(logits.shape(), &[300, 7]);
    let correct = logits
        .data()
        .chunks(7)
        .zip(&d.labels)
        .filter(|(row, &l)| {
            let best = (0..7).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            best == l
        })
        .count();
    let acc = correct as f64 / d.len() as f64;
    let stated = card["test_accuracy"].as_f64().unwrap();
    assert!((acc - stated).abs() <= 0.01, "accuracy {acc} vs model card {stated}");
    assert!((0.7..=0.95).contains(&acc), "{acc}");
}
