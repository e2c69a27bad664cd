//! Evaluation datasets for batch certification: inputs `[N, ...]` with integer labels, loaded
//! from NumPy arrays (`.npy`, NEP 1 format, or arrays of a `.npz` archive), from the MedMNIST v2
//! `.npz` layout (`{train,val,test}_images` uint8 `N x H x W [x C]`, `{split}_labels` uint8
//! `N x 1`, as in `dermamnist.npz`), or from an image folder (`ROOT/<class>/<image>.png`, see
//! [`super::images`]); then declared preprocessing ([`Preprocess`]), a recorded selection
//! ([`Selection`]: first N, explicit indices, seeded random subset) and a canonical manifest
//! ([`Manifest`]: RFC 8785 JSON plus SHA-256 digests of the selected data).
//!
//! Nothing here panics on bad input: missing files, label count mismatch, labels out of range,
//! empty folders, mixed image sizes and NaN/infinite values are errors naming the file.
//!
//! To put a dataset under a certificate (`crate::cert::DatasetSubject` reads .npy files):
//!
//! ```no_run
//! use robustcert::data::dataset::{Dataset, LoadOptions, Selection};
//! let data = Dataset::load("demo/synthetic_dermamnist.npz", &LoadOptions::default())?
//!     .select(&Selection::random(32, 7))?;
//! data.write_npy("x.npy", "y.npy")?;
//! let rec = &data.selection;
//! let subject = robustcert::cert::DatasetSubject::from_files("x.npy", "y.npy")?
//!     .with_selection(&rec.method, rec.seed, &rec.description);
//! # Ok::<(), robustcert::Error>(())
//! ```

use super::images;
use crate::cert::sha256_hex;
use crate::error::{Error, Result};
use crate::ir::tensor::checked_numel;
use crate::ir::Tensor;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Schema name of [`Manifest`].
pub const MANIFEST_SCHEMA: &str = "https://robustcert.dev/dataset-manifest/v1";

/// The deterministic random-subset algorithm, as recorded in selection descriptions.
pub const SUBSET_ALGORITHM: &str = "ChaCha20 (key = \"rcsubset\" || seed as u64 LE || 16 zero bytes, nonce 0), \
    Fisher-Yates shuffle of positions 0..m (for i = m-1 down to 1: j = x mod (i+1) for the first next_u64 x \
    below floor(2^64 / (i+1)) * (i+1)), first k positions, sorted ascending";

/// How `inputs_npy` encodes the selected inputs (and so what `inputsSha256` hashes).
pub const INPUTS_ENCODING: &str = "NumPy .npy v1.0, dtype '<f8', C order, header padded to 64 bytes";
/// How `labels_npy` encodes the labels.
pub const LABELS_ENCODING: &str = "NumPy .npy v1.0, dtype '<i8', shape [N], header padded to 64 bytes";

/// An evaluation dataset: model inputs with one class label each.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `[N, C, H, W]` for images (after [`Preprocess`]), `[N, ...]` otherwise.
    pub inputs: Tensor<f64>,
    pub labels: Vec<usize>,
    /// Class names, index = label, when the source names them.
    pub class_names: Option<Vec<String>>,
    /// Where the data came from, as given (path, split or array names).
    pub source: String,
    /// One id per input, stable across selections: `test[17]`, `x.npy[3]`, `mel/img_0001.png`.
    pub ids: Vec<String>,
    /// "npy", "npz", "medmnist-npz" or "image-folder".
    pub format: String,
    /// SHA-256 of a `sha256sum`-style listing (`<hex>  <name>\n`, sorted by name) of every source
    /// file: binds the selection to the exact files it was drawn from.
    pub source_sha256: String,
    /// The preprocessing applied ([`Preprocess::describe`]).
    pub preprocess: String,
    /// How these inputs were chosen from the source; indices refer to the source's order.
    pub selection: SelectionRecord,
}

/// Declared preprocessing from stored values to model inputs:
/// `input[c] = (x * scale - mean[c]) / std[c]`, then, with `channels_first`, the channels-last
/// layout `[N, H, W, C]` is transposed to `[N, C, H, W]`. Use it only when the normalisation is
/// NOT inside the model graph (otherwise leave mean/std unset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preprocess {
    /// Multiplier of stored values (1/255 for 8-bit images). A scale of exactly the double nearest
    /// to 1/k, k an integer, divides by k instead (correctly rounded, like numpy's `x / 255`).
    pub scale: f64,
    /// The stored data are channels-last (`N, H, W, C`, as images and MedMNIST are); transpose.
    pub channels_first: bool,
    /// Per-channel mean (one value, or one per channel: the last axis when `channels_first`, else
    /// axis 1).
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation (nonzero, finite).
    pub std: Option<Vec<f64>>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess::none()
    }
}

impl Preprocess {
    /// Values used as stored.
    pub fn none() -> Self {
        Preprocess { scale: 1.0, channels_first: false, mean: None, std: None }
    }

    /// 8-bit channels-last images to `[N, C, H, W]` in [0, 1]: x / 255, HWC -> CHW.
    pub fn pixels() -> Self {
        Preprocess { scale: 1.0 / 255.0, channels_first: true, mean: None, std: None }
    }

    /// Adds a per-channel normalisation `(x - mean) / std` (after scaling).
    pub fn normalised(mut self, mean: Vec<f64>, std: Vec<f64>) -> Self {
        self.mean = Some(mean);
        self.std = Some(std);
        self
    }

    fn divisor(&self) -> Option<f64> {
        let k = (1.0 / self.scale).round();
        (k > 1.0 && k < 9.0e15 && 1.0 / k == self.scale).then_some(k)
    }

    /// A canonical one-line description, recorded in manifests.
    pub fn describe(&self) -> String {
        let mut s = match self.divisor() {
            Some(k) => format!("x / {k}"),
            None if self.scale == 1.0 => "x".to_string(),
            None => format!("x * {:e}", self.scale),
        };
        if let Some(m) = &self.mean {
            s = format!("({s} - mean {m:?})");
        }
        if let Some(d) = &self.std {
            s = format!("{s} / std {d:?}");
        }
        if self.channels_first {
            s.push_str("; channels-last -> channels-first (NHWC -> NCHW)");
        }
        s
    }

    /// Applies the preprocessing to stored values `x` (`[N, ...]`).
    pub fn apply(&self, x: Tensor<f64>) -> Result<Tensor<f64>> {
        let bad = |m: String| Error::InvalidArgument(format!("preprocessing: {m}"));
        if !(self.scale.is_finite() && self.scale != 0.0) {
            return Err(bad(format!("scale {} must be finite and nonzero", self.scale)));
        }
        if self.channels_first && x.rank() < 3 {
            return Err(bad(format!("channels-last to channels-first needs [N, ..., C] data, got {:?}", x.shape())));
        }
        let shape = x.shape().to_vec();
        let (c_axis, channels) = if self.channels_first {
            (shape.len() - 1, shape[shape.len() - 1])
        } else {
            (1, shape.get(1).copied().unwrap_or(1))
        };
        let per_channel = |v: &Option<Vec<f64>>, what: &str| -> Result<Option<Vec<f64>>> {
            match v {
                None => Ok(None),
                Some(v) if v.iter().any(|a| !a.is_finite()) => Err(bad(format!("{what} {v:?} is not finite"))),
                Some(v) if v.len() == 1 => Ok(Some(vec![v[0]; channels])),
                Some(v) if v.len() == channels => Ok(Some(v.clone())),
                Some(v) => Err(bad(format!(
                    "{what} has {} values but the data have {channels} channels (axis {c_axis} of {shape:?})",
                    v.len()
                ))),
            }
        };
        let mean = per_channel(&self.mean, "mean")?;
        let std = per_channel(&self.std, "std")?;
        if let Some(s) = &std {
            if s.contains(&0.0) {
                return Err(bad(format!("std {s:?} holds a zero")));
            }
        }
        // Index of the channel of flat position i.
        let inner: usize = shape[c_axis + 1..].iter().product::<usize>().max(1);
        let channel_of = |i: usize| if channels == 0 { 0 } else { (i / inner) % channels };
        let divisor = self.divisor();
        let mut data = x.into_data();
        for (i, v) in data.iter_mut().enumerate() {
            let mut y = match divisor {
                Some(k) => *v / k,
                None => *v * self.scale,
            };
            if let Some(m) = &mean {
                y -= m[channel_of(i)];
            }
            if let Some(s) = &std {
                y /= s[channel_of(i)];
            }
            *v = y;
        }
        let t = Tensor::new(shape, data)?;
        if self.channels_first {
            Ok(to_channels_first(&t))
        } else {
            Ok(t)
        }
    }
}

/// `[N, S..., C]` to `[N, C, S...]`.
fn to_channels_first(t: &Tensor<f64>) -> Tensor<f64> {
    let shape = t.shape();
    let n = shape[0];
    let c = shape[shape.len() - 1];
    let s: usize = shape[1..shape.len() - 1].iter().product();
    let src = t.data();
    let mut out = vec![0.0; src.len()];
    for b in 0..n {
        let base = b * s * c;
        for p in 0..s {
            for ch in 0..c {
                out[base + ch * s + p] = src[base + p * c + ch];
            }
        }
    }
    let mut new_shape = vec![n, c];
    new_shape.extend_from_slice(&shape[1..shape.len() - 1]);
    Tensor::new(new_shape, out).expect("same number of elements")
}

/// One array: a `.npy` file, a one-array `.npz`, or a named array of a `.npz` (`file.npz:name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayRef {
    pub path: PathBuf,
    pub name: Option<String>,
}

impl ArrayRef {
    /// `x.npy`, `x.npz` or `x.npz:array_name`.
    pub fn parse(s: &str) -> ArrayRef {
        if let Some((p, name)) = s.rsplit_once(':') {
            if p.to_ascii_lowercase().ends_with(".npz") && !name.is_empty() && !name.contains(['/', '\\']) {
                return ArrayRef { path: p.into(), name: Some(name.to_string()) };
            }
        }
        ArrayRef { path: s.into(), name: None }
    }

    pub fn read(&self) -> Result<Tensor<f64>> {
        if !self.path.exists() {
            return Err(Error::data(&self.path, "no such file"));
        }
        match &self.name {
            Some(n) => super::read_npz_array(&self.path, n),
            None => super::read_array(&self.path),
        }
    }

    fn display(&self) -> String {
        match &self.name {
            Some(n) => format!("{}:{n}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn short(&self) -> String {
        let f = file_name(&self.path);
        match &self.name {
            Some(n) => format!("{f}:{n}"),
            None => f,
        }
    }
}

impl From<&str> for ArrayRef {
    fn from(s: &str) -> Self {
        ArrayRef::parse(s)
    }
}

/// Options of [`Dataset::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Labels: a `.npy` file, `file.npz:name`, or the name of an array in the inputs' `.npz`.
    /// Needed for array inputs; ignored for MedMNIST files and image folders.
    pub labels: Option<String>,
    /// MedMNIST split: "train", "val" or "test".
    pub split: String,
    /// Image folders: channels to read (1 or 3).
    pub channels: usize,
    /// Preprocessing; default: [`Preprocess::pixels`] for MedMNIST and image folders,
    /// [`Preprocess::none`] for arrays.
    pub preprocess: Option<Preprocess>,
    /// Class names (index = label), overriding the source's; labels are checked against them.
    pub class_names: Option<Vec<String>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { labels: None, split: "test".into(), channels: 3, preprocess: None, class_names: None }
    }
}

/// Class names of the official DermaMNIST (MedMNIST v2) labels.
pub const DERMAMNIST_CLASSES: [&str; 7] = [
    "actinic keratoses and intraepithelial carcinoma",
    "basal cell carcinoma",
    "benign keratosis-like lesions",
    "dermatofibroma",
    "melanoma",
    "melanocytic nevi",
    "vascular lesions",
];

impl Dataset {
    /// Loads a dataset, choosing the reader from `source`: a directory is an image folder, a
    /// `.npz` holding `{split}_images` and `{split}_labels` is MedMNIST, anything else is an
    /// array (`file.npy`, `file.npz`, `file.npz:name`) with `opts.labels`.
    pub fn load(source: &str, opts: &LoadOptions) -> Result<Dataset> {
        let path = Path::new(source);
        let mut data = if path.is_dir() {
            let pre = opts.preprocess.clone().unwrap_or_else(Preprocess::pixels);
            Dataset::from_image_folder(path, opts.channels, &pre)?
        } else {
            let inputs = ArrayRef::parse(source);
            let is_npz = inputs.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"));
            if !inputs.path.exists() {
                return Err(Error::data(&inputs.path, "no such file or directory"));
            }
            let medmnist = is_npz && inputs.name.is_none() && opts.labels.is_none() && {
                let names = super::npy::npz_names(&inputs.path)?;
                names.contains(&format!("{}_images", opts.split)) && names.contains(&format!("{}_labels", opts.split))
            };
            if medmnist {
                let pre = opts.preprocess.clone().unwrap_or_else(Preprocess::pixels);
                Dataset::from_medmnist(&inputs.path, &opts.split, &pre)?
            } else {
                let labels = opts.labels.as_deref().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{source}: give the labels (a .npy file, file.npz:name, or an array name of the .npz)"
                    ))
                })?;
                let mut lref = ArrayRef::parse(labels);
                if lref.name.is_none() && is_npz && !lref.path.exists() {
                    lref = ArrayRef { path: inputs.path.clone(), name: Some(labels.to_string()) };
                }
                let pre = opts.preprocess.clone().unwrap_or_else(Preprocess::none);
                Dataset::from_arrays(&inputs, &lref, &pre)?
            }
        };
        if let Some(names) = &opts.class_names {
            data = data.with_class_names(names.clone())?;
        }
        Ok(data)
    }

    /// Inputs and labels from arrays. Labels: integers (any numeric dtype holding whole numbers
    /// >= 0), shaped `[N]` or `[N, 1]`.
    pub fn from_arrays(inputs: &ArrayRef, labels: &ArrayRef, pre: &Preprocess) -> Result<Dataset> {
        let x = inputs.read()?;
        let y = labels.read()?;
        if x.rank() == 0 || x.shape()[0] == 0 {
            return Err(Error::data(&inputs.path, format!("inputs shaped {:?} hold no samples", x.shape())));
        }
        let n = x.shape()[0];
        let labels_v = parse_labels(&y, n, &labels.path, None)?;
        check_finite(&x, &inputs.path, "input")?;
        let x = pre.apply(x)?;
        check_finite(&x, &inputs.path, "preprocessed input")?;
        let mut files = vec![inputs.path.clone()];
        if labels.path != inputs.path {
            files.push(labels.path.clone());
        }
        let format = if inputs.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) { "npz" } else { "npy" };
        let short = inputs.short();
        Ok(Dataset {
            ids: (0..n).map(|i| format!("{short}[{i}]")).collect(),
            inputs: x,
            labels: labels_v,
            class_names: None,
            source: format!("{} + labels {}", inputs.display(), labels.display()),
            format: format.into(),
            source_sha256: listing_digest(&files)?,
            preprocess: pre.describe(),
            selection: SelectionRecord::all(n),
        })
    }

    /// One split of a MedMNIST v2 `.npz` (`{split}_images`: uint8 `N x H x W x C` or `N x H x W`;
    /// `{split}_labels`: `N x 1`). Grey images (`N x H x W`) get a channel axis of 1. Class
    /// names come from a `metadata_json` array (UTF-8 JSON bytes with `class_names`, as in the
    /// bundled synthetic demo) or, for files named `dermamnist*.npz`, the official DermaMNIST names.
    pub fn from_medmnist(path: impl AsRef<Path>, split: &str, pre: &Preprocess) -> Result<Dataset> {
        let path = path.as_ref();
        if !["train", "val", "test"].contains(&split) {
            return Err(Error::InvalidArgument(format!("MedMNIST split '{split}' is not train, val or test")));
        }
        if !path.exists() {
            return Err(Error::data(path, "no such file"));
        }
        let names = super::npy::npz_names(path)?;
        for want in [format!("{split}_images"), format!("{split}_labels")] {
            if !names.contains(&want) {
                return Err(Error::data(
                    path,
                    format!("no array '{want}' (not the MedMNIST layout; arrays: {})", names.join(", ")),
                ));
            }
        }
        let mut x = super::read_npz_array(path, &format!("{split}_images"))?;
        let y = super::read_npz_array(path, &format!("{split}_labels"))?;
        if x.rank() == 3 {
            let s = x.shape().to_vec();
            x = x.reshape(vec![s[0], s[1], s[2], 1])?;
        }
        if x.rank() != 4 || x.shape()[0] == 0 {
            return Err(Error::data(
                path,
                format!("{split}_images shaped {:?} is not N x H x W [x C], N > 0", x.shape()),
            ));
        }
        if x.data().iter().any(|&v| !(0.0..=255.0).contains(&v) || v.fract() != 0.0) {
            return Err(Error::data(path, format!("{split}_images holds values outside the uint8 range 0..=255")));
        }
        let class_names = medmnist_class_names(path, &names)?;
        let n = x.shape()[0];
        let labels = parse_labels(&y, n, path, class_names.as_ref().map(Vec::len))?;
        let x = pre.apply(x)?;
        check_finite(&x, path, "preprocessed input")?;
        Ok(Dataset {
            ids: (0..n).map(|i| format!("{split}[{i}]")).collect(),
            inputs: x,
            labels,
            class_names,
            source: format!("{} (MedMNIST split {split})", path.display()),
            format: "medmnist-npz".into(),
            source_sha256: listing_digest(&[path.to_path_buf()])?,
            preprocess: format!("{split}_images: {}", pre.describe()),
            selection: SelectionRecord::all(n),
        })
    }

    /// An image folder (`ROOT/<class>/<image>`, rules in [`super::images`]) read with `channels`
    /// (1 or 3) channels; ids are `class/file`.
    pub fn from_image_folder(root: impl AsRef<Path>, channels: usize, pre: &Preprocess) -> Result<Dataset> {
        let root = root.as_ref();
        let f = images::read_image_folder(root, channels)?;
        checked_numel(&f.shape)?;
        let x = Tensor::new(f.shape.to_vec(), f.pixels.iter().map(|&v| f64::from(v)).collect())?;
        let x = pre.apply(x)?;
        check_finite(&x, root, "preprocessed input")?;
        let n = f.labels.len();
        // Digest listing names are relative to the root, so moving the folder keeps the digest.
        let mut listing: Vec<(String, String)> = Vec::with_capacity(n);
        for (file, id) in f.files.iter().zip(&f.ids) {
            let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
            listing.push((id.clone(), sha256_hex(&bytes)));
        }
        Ok(Dataset {
            inputs: x,
            labels: f.labels,
            class_names: Some(f.class_names),
            source: format!("{} (image folder)", root.display()),
            ids: f.ids,
            format: "image-folder".into(),
            source_sha256: digest_of_listing(listing),
            preprocess: format!("8-bit {channels}-channel pixels: {}", pre.describe()),
            selection: SelectionRecord::all(n),
        })
    }

    /// Names the classes (index = label); every label must be below their count.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Dataset> {
        self.check_labels(names.len())?;
        self.class_names = Some(names);
        Ok(self)
    }

    /// Checks every label is below `num_classes` (e.g. the model's output size).
    pub fn check_labels(&self, num_classes: usize) -> Result<()> {
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, &l)| l >= num_classes) {
            return Err(Error::InvalidArgument(format!(
                "{}: label {l} of input {} ({}) is out of range for {num_classes} classes",
                self.source, i, self.ids[i]
            )));
        }
        Ok(())
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one input (without the batch axis).
    pub fn sample_shape(&self) -> &[usize] {
        &self.inputs.shape()[1..]
    }

    /// Number of inputs per label (index = label, up to the largest label or class count).
    pub fn class_counts(&self) -> Vec<usize> {
        let k = self.class_names.as_ref().map_or(0, Vec::len).max(self.labels.iter().max().map_or(0, |m| m + 1));
        let mut c = vec![0; k];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    /// The inputs at `positions` (positions in this dataset), in that order.
    fn subset(&self, positions: &[usize]) -> Result<Dataset> {
        let n = self.len();
        let per = self.inputs.len() / n.max(1);
        let mut data = Vec::with_capacity(per * positions.len());
        for &p in positions {
            data.extend_from_slice(&self.inputs.data()[p * per..(p + 1) * per]);
        }
        let mut shape = self.inputs.shape().to_vec();
        shape[0] = positions.len();
        Ok(Dataset {
            inputs: Tensor::new(shape, data)?,
            labels: positions.iter().map(|&p| self.labels[p]).collect(),
            class_names: self.class_names.clone(),
            source: self.source.clone(),
            ids: positions.iter().map(|&p| self.ids[p].clone()).collect(),
            format: self.format.clone(),
            source_sha256: self.source_sha256.clone(),
            preprocess: self.preprocess.clone(),
            selection: self.selection.clone(),
        })
    }

    /// Selects inputs ([`Selection`]: explicit indices, then a seeded random subset, then the
    /// first `limit`); the result's `selection` records the method, seed and the indices into
    /// the source. Selecting from a selection composes (indices stay source indices).
    pub fn select(&self, sel: &Selection) -> Result<Dataset> {
        let (positions, methods, parts) = sel.plan(self.len())?;
        let mut out = self.subset(&positions)?;
        let prev = &self.selection;
        let source_indices: Vec<usize> = positions.iter().map(|&p| prev.indices[p]).collect();
        let mut method = prev.method.clone();
        let mut description = prev.description.clone();
        if !methods.is_empty() {
            let m = methods.join("+");
            let d = parts.join(", then ");
            if prev.method == "all" {
                method = m;
                description = format!("of {} source inputs: {d}", prev.source_count);
            } else {
                method = format!("{}+{m}", prev.method);
                description = format!("{description}; then {d}");
            }
        }
        out.selection = SelectionRecord {
            method,
            seed: sel.random.map(|r| r.seed).or(prev.seed),
            count: source_indices.len(),
            source_count: prev.source_count,
            indices: source_indices,
            description,
        };
        Ok(out)
    }

    /// The inputs as a canonical `.npy` ([`INPUTS_ENCODING`]).
    pub fn inputs_npy(&self) -> Vec<u8> {
        let mut out = npy_header("<f8", self.inputs.shape());
        for v in self.inputs.data() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The labels as a canonical `.npy` ([`LABELS_ENCODING`]).
    pub fn labels_npy(&self) -> Vec<u8> {
        let mut out = npy_header("<i8", &[self.labels.len()]);
        for &l in &self.labels {
            out.extend_from_slice(&(l as i64).to_le_bytes());
        }
        out
    }

    /// Writes [`Self::inputs_npy`] and [`Self::labels_npy`] (what `DatasetSubject::from_files`
    /// reads and hashes).
    pub fn write_npy(&self, inputs: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<()> {
        let (xp, yp) = (inputs.as_ref(), labels.as_ref());
        std::fs::write(xp, self.inputs_npy()).map_err(|e| Error::io(xp, e))?;
        std::fs::write(yp, self.labels_npy()).map_err(|e| Error::io(yp, e))
    }

    /// The canonical description of the selected data ([`Manifest`]).
    pub fn manifest(&self) -> Manifest {
        let source_name = match self.source.split(" (").next() {
            Some(s) if self.format != "npy" && self.format != "npz" => file_name(Path::new(s)),
            _ => self.source.clone(),
        };
        Manifest {
            schema: MANIFEST_SCHEMA.into(),
            source: source_name,
            format: self.format.clone(),
            source_sha256: self.source_sha256.clone(),
            preprocess: self.preprocess.clone(),
            class_names: self.class_names.clone(),
            count: self.len(),
            input_shape: self.inputs.shape().to_vec(),
            inputs_encoding: INPUTS_ENCODING.into(),
            inputs_sha256: sha256_hex(&self.inputs_npy()),
            labels_encoding: LABELS_ENCODING.into(),
            labels_sha256: sha256_hex(&self.labels_npy()),
            selection: ManifestSelection {
                method: self.selection.method.clone(),
                seed: self.selection.seed.map(|s| s.to_string()),
                source_count: self.selection.source_count,
                indices: self.selection.indices.clone(),
                description: self.selection.description.clone(),
            },
            ids: self.ids.clone(),
        }
    }
}

/// Which inputs to take. Applied in this order: `indices` (explicit source positions), `random`
/// (a seeded subset of those), `limit` (the first N of what is left).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub indices: Option<Vec<usize>>,
    pub random: Option<RandomSubset>,
    pub limit: Option<usize>,
}

/// `count` inputs drawn without replacement by [`SUBSET_ALGORITHM`] from `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomSubset {
    pub count: usize,
    pub seed: u64,
}

impl Selection {
    pub fn all() -> Self {
        Selection::default()
    }
    /// The first `n` (`--limit N`).
    pub fn first(n: usize) -> Self {
        Selection { limit: Some(n), ..Default::default() }
    }
    /// Explicit indices (`--indices 1,5,9-12`), in the given order.
    pub fn indices(idx: Vec<usize>) -> Self {
        Selection { indices: Some(idx), ..Default::default() }
    }
    /// A seeded random subset.
    pub fn random(count: usize, seed: u64) -> Self {
        Selection { random: Some(RandomSubset { count, seed }), ..Default::default() }
    }

    /// What this selection picks from `n` inputs, as [`Dataset::select`] would record it for a
    /// source of `n` inputs (no data needed: `certify --data X --labels Y` selects by position).
    pub fn apply_to(&self, n: usize) -> Result<SelectionRecord> {
        let (positions, methods, parts) = self.plan(n)?;
        let mut rec = SelectionRecord::all(n);
        if !methods.is_empty() {
            rec.method = methods.join("+");
            rec.description = format!("of {n} source inputs: {}", parts.join(", then "));
        }
        rec.seed = self.random.map(|r| r.seed);
        rec.count = positions.len();
        rec.indices = positions;
        Ok(rec)
    }

    /// The chosen positions of `0..n` in order, the steps taken and their descriptions.
    fn plan(&self, n: usize) -> Result<(Vec<usize>, Vec<&'static str>, Vec<String>)> {
        let sel = self;
        let mut positions: Vec<usize> = (0..n).collect();
        let mut methods: Vec<&'static str> = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        if let Some(idx) = &sel.indices {
            if idx.is_empty() {
                return Err(Error::InvalidArgument("the index list is empty".into()));
            }
            let mut seen = std::collections::HashSet::new();
            for &i in idx {
                if i >= n {
                    return Err(Error::InvalidArgument(format!("index {i} is out of range: the data hold {n} inputs")));
                }
                if !seen.insert(i) {
                    return Err(Error::InvalidArgument(format!("index {i} is listed twice")));
                }
            }
            positions = idx.clone();
            methods.push("indices");
            parts.push(format!("the listed inputs {}", format_indices(idx)));
        }
        if let Some(RandomSubset { count, seed }) = sel.random {
            if count > positions.len() {
                return Err(Error::InvalidArgument(format!(
                    "cannot draw a random subset of {count} from {} inputs",
                    positions.len()
                )));
            }
            let picked = random_subset(positions.len(), count, seed);
            positions = picked.into_iter().map(|p| positions[p]).collect();
            methods.push("random-subset");
            parts.push(format!("a random subset of {count} (seed {seed}; {SUBSET_ALGORITHM})"));
        }
        if let Some(limit) = sel.limit {
            if limit == 0 {
                return Err(Error::InvalidArgument("--limit must be at least 1".into()));
            }
            positions.truncate(limit);
            methods.push("first-n");
            parts.push(format!("the first {limit}"));
        }
        Ok((positions, methods, parts))
    }
}

/// How the inputs of a dataset were chosen from its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelectionRecord {
    /// "all", or the steps joined by '+': "indices", "random-subset", "first-n".
    pub method: String,
    /// Seed of the random subset, if one was drawn.
    pub seed: Option<u64>,
    /// Number of inputs selected.
    pub count: usize,
    /// Number of inputs in the source.
    pub source_count: usize,
    /// Source positions of the selected inputs, in dataset order.
    pub indices: Vec<usize>,
    pub description: String,
}

impl SelectionRecord {
    fn all(n: usize) -> Self {
        SelectionRecord {
            method: "all".into(),
            seed: None,
            count: n,
            source_count: n,
            indices: (0..n).collect(),
            description: format!("all {n} source inputs"),
        }
    }
}

/// Parses `1,5,9-12` (inclusive ranges) into `[1, 5, 9, 10, 11, 12]`.
pub fn parse_indices(s: &str) -> Result<Vec<usize>> {
    let bad = |m: String| Error::InvalidArgument(format!("--indices '{s}': {m}"));
    let num = |t: &str| t.trim().parse::<usize>().map_err(|_| bad(format!("'{}' is not an index", t.trim())));
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("empty item".into()));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("range {a}-{b} is reversed")));
                }
                if b - a >= 10_000_000 {
                    return Err(bad(format!("range {a}-{b} is too long")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// `[1, 5, 9, 10, 11, 12]` as `1,5,9-12`.
pub fn format_indices(idx: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && idx[j + 1] == idx[j] + 1 {
            j += 1;
        }
        parts.push(if j > i + 1 {
            format!("{}-{}", idx[i], idx[j])
        } else if j == i + 1 {
            format!("{},{}", idx[i], idx[j])
        } else {
            idx[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `count` of the positions `0..m`, by [`SUBSET_ALGORITHM`], sorted ascending.
pub fn random_subset(m: usize, count: usize, seed: u64) -> Vec<usize> {
    use rand_chacha::rand_core::{Rng, SeedableRng};
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(b"rcsubset");
    key[8..16].copy_from_slice(&seed.to_le_bytes());
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(key);
    let mut pos: Vec<usize> = (0..m).collect();
    for i in (1..m).rev() {
        let bound = i as u64 + 1;
        let zone = (u64::MAX / bound) * bound;
        let j = loop {
            let x = rng.next_u64();
            if x < zone {
                break (x % bound) as usize;
            }
        };
        pos.swap(i, j);
    }
    pos.truncate(count.min(m));
    pos.sort_unstable();
    pos
}

/// A canonical description of selected data, serialised with RFC 8785 (JCS).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema: String,
    /// Source file or folder name (no directories) with the split or array names.
    pub source: String,
    pub format: String,
    pub source_sha256: String,
    pub preprocess: String,
    pub class_names: Option<Vec<String>>,
    pub count: usize,
    pub input_shape: Vec<usize>,
    pub inputs_encoding: String,
    pub inputs_sha256: String,
    pub labels_encoding: String,
    pub labels_sha256: String,
    pub selection: ManifestSelection,
    pub ids: Vec<String>,
}

/// The selection as recorded in a manifest (the seed as a decimal string: JSON numbers lose
/// precision above 2^53).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSelection {
    pub method: String,
    pub seed: Option<String>,
    pub source_count: usize,
    pub indices: Vec<usize>,
    pub description: String,
}

impl Manifest {
    /// RFC 8785 canonical JSON.
    pub fn canonical_json(&self) -> Result<String> {
        serde_json_canonicalizer::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise the manifest: {e}")))
    }

    /// SHA-256 (hex) of [`Self::canonical_json`].
    pub fn sha256(&self) -> Result<String> {
        Ok(sha256_hex(self.canonical_json()?.as_bytes()))
    }
}

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - 10 - dict.len() - 1));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn digest_of_listing(mut listing: Vec<(String, String)>) -> String {
    listing.sort();
    let text: String = listing.iter().map(|(name, h)| format!("{h}  {name}\n")).collect();
    sha256_hex(text.as_bytes())
}

fn listing_digest(files: &[PathBuf]) -> Result<String> {
    let mut listing = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        listing.push((file_name(f), sha256_hex(&bytes)));
    }
    Ok(digest_of_listing(listing))
}

fn check_finite(x: &Tensor<f64>, path: &Path, what: &str) -> Result<()> {
    if let Some(i) = x.data().iter().position(|v| !v.is_finite()) {
        let per = x.len() / x.shape().first().copied().unwrap_or(1).max(1);
        return Err(Error::data(
            path,
            format!(
                "{what} {} holds {} (element {}); NaN and infinity are not allowed",
                i / per.max(1),
                x.data()[i],
                i
            ),
        ));
    }
    Ok(())
}

/// Labels `[n]` or `[n, 1]` of whole numbers >= 0, below `classes` when known.
fn parse_labels(y: &Tensor<f64>, n: usize, path: &Path, classes: Option<usize>) -> Result<Vec<usize>> {
    let shape = y.shape();
    let ok_shape = (shape.len() == 1 && shape[0] == n) || (shape.len() == 2 && shape[0] == n && shape[1] == 1);
    if !ok_shape {
        let why = if shape.len() == 2 && shape[0] == n {
            format!("labels shaped {shape:?} look multi-label or one-hot; give one class index per input ([{n}] or [{n}, 1])")
        } else {
            format!(
                "{} labels (shape {shape:?}) for {n} inputs; expected [{n}] or [{n}, 1]",
                shape.first().unwrap_or(&0)
            )
        };
        return Err(Error::data(path, why));
    }
    y.data()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if !(v >= 0.0 && v.fract() == 0.0 && v < 1e9) {
                return Err(Error::data(path, format!("label {i} is {v}, not a class index")));
            }
            let l = v as usize;
            match classes {
                Some(k) if l >= k => Err(Error::data(path, format!("label {i} is {l}, out of range for {k} classes"))),
                _ => Ok(l),
            }
        })
        .collect()
}

fn medmnist_class_names(path: &Path, names: &[String]) -> Result<Option<Vec<String>>> {
    if names.iter().any(|n| n == "metadata_json") {
        let bytes: Vec<u8> = super::read_npz_array(path, "metadata_json")?.data().iter().map(|&v| v as u8).collect();
        let meta: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(path, format!("metadata_json is not valid JSON: {e}")))?;
        if let Some(list) = meta.get("class_names").and_then(|v| v.as_array()) {
            let names = list
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::data(path, "metadata_json class_names must be strings"))?;
            return Ok(Some(names));
        }
    }
    let stem = file_name(path).to_ascii_lowercase();
    if stem.starts_with("dermamnist") {
        return Ok(Some(DERMAMNIST_CLASSES.iter().map(|s| s.to_string()).collect()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_roundtrip() {
        assert_eq!(parse_indices("1,5,9-12").unwrap(), vec![1, 5, 9, 10, 11, 12]);
        assert_eq!(format_indices(&[1, 5, 9, 10, 11, 12]), "1,5,9-12");
        assert_eq!(format_indices(&[3, 4]), "3,4");
        for bad in ["", "1,,2", "a", "5-3", "-1", "1-"] {
            assert!(parse_indices(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subset_is_a_deterministic_permutation_prefix() {
        let a = random_subset(100, 10, 42);
        assert_eq!(a, random_subset(100, 10, 42));
        assert_ne!(a, random_subset(100, 10, 43));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 100));
        assert_eq!(random_subset(5, 5, 1), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn npy_header_is_numpy_compatible() {
        let h = npy_header("<f8", &[2, 3]);
        assert_eq!(h.len() % 64, 0);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(*h.last().unwrap(), b'\n');
    }

    #[test]
    fn preprocess_divides_and_transposes() {
        let x = Tensor::new(vec![1, 1, 2, 3], vec![0.0, 51.0, 255.0, 1.0, 2.0, 3.0]).unwrap();
        let y = Preprocess::pixels().apply(x.clone()).unwrap();
        assert_eq!(y.shape(), &[1, 3, 1, 2]);
        assert_eq!(y.data(), &[0.0, 1.0 / 255.0, 51.0 / 255.0, 2.0 / 255.0, 1.0, 3.0 / 255.0]);
        let z = Preprocess::pixels().normalised(vec![0.5], vec![0.25, 0.5, 1.0]).apply(x).unwrap();
        assert_eq!(z.data()[0], -2.0);
        assert!(Preprocess::pixels()
            .normalised(vec![0.5, 0.5], vec![1.0])
            .apply(Tensor::zeros(vec![1, 2, 2, 3]).unwrap())
            .is_err());
        assert!(Preprocess { std: Some(vec![0.0]), ..Preprocess::none() }
            .apply(Tensor::zeros(vec![2, 3]).unwrap())
            .is_err());
    }
}
