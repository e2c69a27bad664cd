//! Witness files: the inputs behind a certificate's digests, saved beside it so a reader can
//! look at them and check them. For a certificate `STEM.intoto.jsonl` they go in the directory
//! `STEM.witnesses/`:
//!
//! - `input-<index>.counterexample.npy`: the counterexample at eps of an input whose outcome is
//!   `counterexample` (its SHA-256, in the input-digest encoding, is `counterexampleDigest`);
//! - `input-<index>.attack.npy`: the closest adversarial input found by the radius search
//!   (`attackRadius.witnessDigest`).
//!
//! Each is float32 shaped as the model input (batch axis 1), so
//! `hashlib.sha256(np.load(f).astype('<f8').tobytes()).hexdigest()` is the recorded digest.
//! The files are not signed themselves: the signed digests are what make them checkable, and
//! [`load`] checks every one.

use crate::cert::{sample_digest, Statement};
use crate::error::{Error, Result};
use crate::ir::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which witness of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The counterexample at eps (`counterexampleDigest`).
    Counterexample,
    /// The closest adversarial input of the radius search (`attackRadius.witnessDigest`).
    Attack,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counterexample => "counterexample",
            Kind::Attack => "attack",
        }
    }
}

/// The witness directory of a certificate (`STEM.intoto.jsonl` or `STEM.sigstore.json` or a
/// bare stem gives `STEM.witnesses`).
pub fn dir_for(certificate: &Path) -> PathBuf {
    let s = certificate.to_string_lossy();
    let stem = s.strip_suffix(".intoto.jsonl").or_else(|| s.strip_suffix(".sigstore.json")).unwrap_or(&s);
    PathBuf::from(format!("{stem}.witnesses"))
}

/// The file of one witness inside the directory.
pub fn file_name(index: usize, kind: Kind) -> String {
    format!("input-{index:06}.{}.npy", kind.name())
}

/// Writes the witnesses (`input_shape`: the model input shape with batch 1). Earlier witness
/// files in the directory are removed first, so the directory holds exactly this run's.
pub fn save(
    dir: &Path,
    input_shape: &[usize],
    counterexamples: &[(usize, Vec<f32>)],
    attacks: &[(usize, Vec<f32>)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("input-") && name.ends_with(".npy") {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let n: usize = input_shape.iter().product();
    for (kind, list) in [(Kind::Counterexample, counterexamples), (Kind::Attack, attacks)] {
        for (i, x) in list {
            if x.len() != n {
                return Err(Error::Shape(format!(
                    "witness of input {i} has {} values, the model input {input_shape:?} has {n}",
                    x.len()
                )));
            }
            let t = Tensor::new(input_shape.to_vec(), x.clone())?;
            crate::data::npy::write_npy(dir.join(file_name(*i, kind)), &t)?;
        }
    }
    Ok(())
}

/// Writes one witness file (write to a temporary name, then rename: a crash never leaves a
/// torn file under the final name).
pub fn save_one(dir: &Path, input_shape: &[usize], index: usize, kind: Kind, x: &[f32]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let t = Tensor::new(input_shape.to_vec(), x.to_vec())?;
    let path = dir.join(file_name(index, kind));
    let tmp = dir.join(format!(".{}.tmp", file_name(index, kind)));
    crate::data::npy::write_npy(&tmp, &t)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// For one finished result of a certify run: searches its smallest adversarial radius (when
/// `search` is given; fills `attackRadius`) and writes its witnesses (that one and the
/// counterexample at eps) into `dir`. A failure is appended to the result's `detail` (and the
/// report then lacks that witness), never hidden and never fatal for the other inputs.
#[allow(clippy::too_many_arguments)]
pub fn attack_and_save(
    graph: &crate::ir::Graph,
    engine: &crate::cert::certify::Engine,
    search: Option<&crate::attack::radius::RadiusSearch>,
    x: &[f64],
    label: usize,
    r: &mut crate::cert::InputResult,
    dir: &Path,
    input_shape: &[usize],
) {
    use crate::cert::certify::{attack_one, counterexample_of};
    let go = |r: &mut crate::cert::InputResult| -> Result<()> {
        if let Some(v) = counterexample_of(graph, engine, x, label, r)? {
            save_one(dir, input_shape, r.index, Kind::Counterexample, &v)?;
        }
        if let Some(s) = search {
            if let Some(v) = attack_one(graph, s, x, label, r)? {
                save_one(dir, input_shape, r.index, Kind::Attack, &v)?;
            }
        }
        Ok(())
    };
    if let Err(e) = go(r) {
        let note = format!("witnesses: {e}");
        r.detail = Some(match r.detail.take() {
            Some(d) => format!("{d}; {note}"),
            None => note,
        });
    }
}

/// What a report can show of a certificate's inputs: the clean samples and the witnesses whose
/// digests matched, plus every problem found (missing file, digest mismatch), to be shown.
#[derive(Clone, Debug, Default)]
pub struct WitnessSet {
    /// The model input shape with batch 1 (e.g. [1, 3, 28, 28]).
    pub shape: Vec<usize>,
    pub clean: BTreeMap<usize, Vec<f32>>,
    pub witnesses: BTreeMap<(usize, Kind), Vec<f32>>,
    /// Human-readable problems (shown prominently in the report).
    pub problems: Vec<String>,
}

fn read_checked(path: &Path, digest: &str) -> std::result::Result<Vec<f32>, String> {
    let t = crate::data::read_array(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let got = sample_digest(t.data());
    if got != digest {
        return Err(format!("{}: sha256 {got} does not match the certificate's {digest}", path.display()));
    }
    Ok(t.data().iter().map(|&v| v as f32).collect())
}

/// Reads the witnesses a certificate names from `dir` (see [`dir_for`]) and, when `data` (the
/// certified inputs file) is given, the clean samples, checking every file against its digest
/// in the certificate. Mismatches and missing files go into `problems`, never silently away.
pub fn load(statement: &Statement, dir: &Path, data: Option<&Path>) -> Result<WitnessSet> {
    let p = &statement.predicate;
    let mut set = WitnessSet { shape: p.model.input.shape.clone(), ..WitnessSet::default() };
    for r in &p.results.per_input {
        let wanted = [
            (Kind::Counterexample, r.counterexample_digest.as_deref()),
            (Kind::Attack, r.attack_radius.as_ref().and_then(|a| a.witness_digest.as_deref())),
        ];
        for (kind, digest) in wanted {
            let Some(digest) = digest else { continue };
            let path = dir.join(file_name(r.index, kind));
            if !path.exists() {
                set.problems.push(format!(
                    "input {}: the {} witness {} is missing",
                    r.index,
                    kind.name(),
                    path.display()
                ));
                continue;
            }
            match read_checked(&path, digest) {
                Ok(v) => {
                    set.witnesses.insert((r.index, kind), v);
                }
                Err(e) => set.problems.push(format!("input {}: {e}", r.index)),
            }
        }
    }
    if let Some(data) = data {
        let x = crate::data::read_array(data)?;
        let n = x.shape().first().copied().unwrap_or(0);
        let per = x.len().checked_div(n).unwrap_or(0);
        for r in &p.results.per_input {
            let Some(row) = (per > 0 && r.index < n).then(|| &x.data()[r.index * per..(r.index + 1) * per]) else {
                set.problems.push(format!("input {}: not in {}", r.index, data.display()));
                continue;
            };
            if sample_digest(row) != r.input_digest {
                set.problems.push(format!(
                    "input {}: {} does not match the certified input digest",
                    r.index,
                    data.display()
                ));
                continue;
            }
            set.clean.insert(r.index, row.iter().map(|&v| v as f32).collect());
        }
    }
    Ok(set)
}

/// How an input's values map onto an image: channels, height, width and whether the channel
/// axis comes first. None when the sample is not image-shaped.
pub fn image_layout(shape: &[usize]) -> Option<(usize, usize, usize, bool)> {
    let s: Vec<usize> = shape.iter().copied().skip_while(|&d| d == 1).collect();
    let s = if s.len() < 2 { shape.iter().rev().take(2).rev().copied().collect() } else { s };
    match s.as_slice() {
        [c, h, w] if (*c == 1 || *c == 3) && *h >= 2 && *w >= 2 => Some((*c, *h, *w, true)),
        [h, w, c] if (*c == 1 || *c == 3) && *h >= 2 && *w >= 2 => Some((*c, *h, *w, false)),
        [h, w] if *h >= 2 && *w >= 2 => Some((1, *h, *w, true)),
        _ => None,
    }
}

/// A PNG `data:` URI of one sample mapped from [lo, hi] to 0..255 (values outside are
/// clamped), or None when the sample is not image-shaped or the range is empty.
pub fn png_data_uri(values: &[f32], shape: &[usize], lo: f64, hi: f64) -> Option<String> {
    use base64::Engine as _;
    let (c, h, w, chw) = image_layout(shape)?;
    if values.len() != c * h * w || !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return None;
    }
    let mut rgb = vec![0u8; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            for k in 0..3 {
                let ch = k.min(c - 1);
                let i = if chw { (ch * h + y) * w + x } else { (y * w + x) * c + ch };
                let v = ((f64::from(values[i]) - lo) / (hi - lo)).clamp(0.0, 1.0);
                rgb[(y * w + x) * 3 + k] = (v * 255.0).round() as u8;
            }
        }
    }
    let mut png = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(enc, &rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8).ok()?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(image_layout(&[1, 3, 28, 28]), Some((3, 28, 28, true)));
        assert_eq!(image_layout(&[1, 28, 28, 3]), Some((3, 28, 28, false)));
        assert_eq!(image_layout(&[1, 1, 28, 28]), Some((1, 28, 28, true)));
        assert_eq!(image_layout(&[1, 28, 28]), Some((1, 28, 28, true)));
        assert_eq!(image_layout(&[1, 5]), None);
        assert_eq!(image_layout(&[1, 784]), None);
        assert_eq!(dir_for(Path::new("a/b.intoto.jsonl")), PathBuf::from("a/b.witnesses"));
        assert_eq!(dir_for(Path::new("a/b")), PathBuf::from("a/b.witnesses"));
    }

    #[test]
    fn png_uri_decodes_to_the_pixels() {
        use base64::Engine as _;
        // 2x2 RGB, channel-first: red, green, blue, white.
        let v = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        let uri = png_data_uri(&v, &[1, 3, 2, 2], 0.0, 1.0).unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 255, 0]);
        assert_eq!(img.get_pixel(0, 1).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(1, 1).0, [255, 255, 255]);
        assert!(png_data_uri(&v, &[1, 3, 2, 2], 1.0, 1.0).is_none());
        assert!(png_data_uri(&v[..4], &[1, 3, 2, 2], 0.0, 1.0).is_none());
    }
}
