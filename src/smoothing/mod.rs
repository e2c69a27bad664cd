//! Randomized smoothing: CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter (ICML 2019,
//! "Certified adversarial robustness via randomized smoothing"), made sound in floating point
//! as in Voracek & Hein (ICLR 2023) by default, replayable with a counter-keyed ChaCha20, and
//! with an anytime-valid sequential decision "radius >= R" for CI.
//!
//! What is certified: the smoothed classifier g(x) = argmax_c P(h(x + delta) = c), delta ~
//! N(0, sigma^2 I) added to the model input as the user supplies it (pixel space when the
//! normalisation is inside the graph), never the base network f. In the default sound mode h =
//! f o round (round to the 1/255 grid, then f32), and the certificate is exact for that h up to
//! a proven sampling margin; in the plain Gaussian mode h = f, and the certificate assumes exact
//! real arithmetic (Voracek & Hein show it can be wrong for the network as it runs).
//!
//! Alpha is per input: over many inputs, about alpha * inputs certificates are expected wrong.

pub mod noise;
pub mod stats;

pub use noise::{Base, Noise, RoundedGaussian, Stream};

use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor};
use rayon::prelude::*;

/// Default number of selection samples.
pub const DEFAULT_N0: u64 = 100;
/// Default number of estimation samples.
pub const DEFAULT_N: u64 = 100_000;
/// Default failure probability per input.
pub const DEFAULT_ALPHA: f64 = 0.001;
/// Default samples per forward pass.
pub const DEFAULT_BATCH: usize = 64;

/// Parameters of one smoothing run (everything that determines the result except the input).
#[derive(Clone, Debug)]
pub struct Config {
    pub noise: Noise,
    pub n0: u64,
    pub n: u64,
    pub alpha: f64,
    pub seed: u64,
    /// Samples per forward pass (does not change any result).
    pub batch: usize,
}

impl Config {
    /// Checks the parameters; sound selects the rounded-Gaussian mode.
    pub fn new(sigma: f64, sound: bool, n0: u64, n: u64, alpha: f64, seed: u64, batch: usize) -> Result<Self> {
        if !(sigma > 0.0 && sigma.is_finite()) {
            return Err(Error::InvalidArgument(format!("sigma must be positive and finite, got {sigma}")));
        }
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(Error::InvalidArgument(format!("alpha must be in (0, 1), got {alpha}")));
        }
        if n0 == 0 {
            return Err(Error::InvalidArgument("n0 (selection samples) must be at least 1".into()));
        }
        if n == 0 {
            return Err(Error::InvalidArgument("n (estimation samples) must be at least 1".into()));
        }
        if n > stats::MAX_N || n0 > stats::MAX_N {
            return Err(Error::InvalidArgument(format!("n and n0 must be at most {}", stats::MAX_N)));
        }
        if batch == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        let noise = if sound { Noise::sound(sigma)? } else { Noise::gaussian(sigma)? };
        Ok(Config { noise, n0, n, alpha, seed, batch })
    }
}

/// Counts the base classifier's top classes on noisy copies of one input, in parallel over
/// batches; the counts depend only on (seed, input index, stream, sample range).
pub struct Sampler<'g> {
    graph: &'g Graph,
    sample_shape: Vec<usize>,
    sample_len: usize,
    classes: usize,
}

impl<'g> Sampler<'g> {
    /// Checks that the model has one input and a classifier output.
    pub fn new(graph: &'g Graph) -> Result<Self> {
        if graph.inputs.len() != 1 {
            return Err(Error::InvalidArgument(format!(
                "smoothing needs a single-input model; this one has {} inputs",
                graph.inputs.len()
            )));
        }
        let decl = &graph.input_info[0].shape;
        if decl.first() != Some(&1) {
            return Err(Error::InvalidArgument(format!(
                "smoothing needs a model input with a batch axis of 1 (or symbolic), got {decl:?}"
            )));
        }
        let sample_shape = decl[1..].to_vec();
        let sample_len: usize = sample_shape.iter().product();
        let out_len: usize = graph.node(graph.outputs[0]).shape.iter().product();
        if sample_len == 0 || out_len < 2 {
            return Err(Error::InvalidArgument(format!(
                "smoothing needs a classifier with at least 2 outputs and a non-empty input (input {decl:?}, output of {out_len} values)"
            )));
        }
        Ok(Sampler { graph, sample_shape, sample_len, classes: out_len })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// The base network's class on the clean input (for information only).
    pub fn base_class(&self, base: &Base) -> Result<Option<usize>> {
        let mut s = vec![1];
        s.extend_from_slice(&self.sample_shape);
        let t = Tensor::new(s, base.clean())?;
        let out = self.graph.forward(&[&t])?.swap_remove(0);
        Ok(argmax(out.data()))
    }

    /// Class counts (length classes + 1; the last entry counts outputs with no class, i.e. all
    /// NaN) over samples `start..start + count` of `stream`.
    pub fn counts(
        &self,
        noise: &Noise,
        base: &Base,
        seed: u64,
        input: u64,
        stream: Stream,
        start: u64,
        count: u64,
        batch: usize,
    ) -> Result<Vec<u64>> {
        let ok = matches!((noise, base), (Noise::Rounded(_), Base::Grid(_)) | (Noise::Gaussian { .. }, Base::Real(_)));
        if !ok || base.len() != self.sample_len {
            return Err(Error::InvalidArgument(format!(
                "input prepared for another noise mode or shape ({} values, the model takes {})",
                base.len(),
                self.sample_len
            )));
        }
        if start.checked_add(count).is_none_or(|e| e > noise::MAX_SAMPLE_INDEX) {
            return Err(Error::InvalidArgument("sample index range too large".into()));
        }
        let batch = batch.max(1) as u64;
        let nb = count.div_ceil(batch);
        let len = self.sample_len;
        let classes = self.classes;
        let zero = || vec![0u64; classes + 1];
        (0..nb)
            .into_par_iter()
            .map_init(Vec::<f32>::new, |buf, b| -> Result<Vec<u64>> {
                let first = start + b * batch;
                let m = (batch.min(start + count - first)) as usize;
                buf.clear();
                buf.resize(m * len, 0.0);
                for (i, chunk) in buf.chunks_exact_mut(len).enumerate() {
                    let mut rng = noise::sample_rng(seed, input, stream, first + i as u64);
                    noise.fill(base, &mut rng, chunk);
                }
                let mut c = zero();
                if self.graph.batchable {
                    let mut shape = vec![m];
                    shape.extend_from_slice(&self.sample_shape);
                    let t = Tensor::new(shape, std::mem::take(buf))?;
                    let out = self.graph.forward(&[&t]);
                    *buf = t.into_data(); // keep the buffer for the next batch
                    let out = out?.swap_remove(0);
                    let per = out.len() / m;
                    for row in out.data().chunks_exact(per) {
                        c[argmax(row).unwrap_or(classes)] += 1;
                    }
                } else {
                    let decl = self.graph.input_info[0].shape.clone();
                    for chunk in buf.chunks_exact(len) {
                        let t = Tensor::new(decl.clone(), chunk.to_vec())?;
                        let out = self.graph.forward(&[&t])?.swap_remove(0);
                        c[argmax(out.data()).unwrap_or(classes)] += 1;
                    }
                }
                Ok(c)
            })
            .try_reduce(zero, |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                Ok(a)
            })
    }
}

/// Index of the largest value, lowest index on ties, NaN ignored; None when all are NaN.
pub fn argmax(row: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if b >= v => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Top class of counts (ignoring the trailing no-class entry), lowest index on ties.
fn top(counts: &[u64]) -> usize {
    let k = counts.len() - 1;
    (0..k).fold(0, |b, i| if counts[i] > counts[b] { i } else { b })
}

/// A CERTIFY result (possibly from the sequential test).
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// The class selected from the N0 samples.
    pub class: usize,
    /// The certified prediction of g, None when abstaining (p_A lower bound <= 1/2).
    pub prediction: Option<usize>,
    /// Certified L2 radius of g around the input (0 when abstaining), rounded down.
    pub radius: f64,
    /// Lower confidence bound on p_A (after the sampling margin).
    pub p_a_lower: f64,
    /// The margin subtracted from the Clopper-Pearson bound (sound mode's sampler error).
    pub p_margin: f64,
    pub counts_selection: Vec<u64>,
    /// Estimation counts per class (last entry: no class) over `n_estimation` samples.
    pub counts: Vec<u64>,
    pub n_a: u64,
    pub n_estimation: u64,
    pub samples_used: u64,
    /// Sequential test only.
    pub sequential: Option<Sequential>,
    pub base_class: Option<usize>,
}

/// The outcome of the sequential test of "radius >= R".
#[derive(Clone, Debug, PartialEq)]
pub struct Sequential {
    pub target_radius: f64,
    /// "certified" (radius >= R at confidence 1 - alpha), "not_certified" (Cohen's radius at
    /// the true p_A is below R, at confidence 1 - alpha) or "undecided" (N reached).
    pub decision: &'static str,
    /// Estimation sample counts at which the test may look (geometric schedule).
    pub schedule: Vec<u64>,
    /// Looks actually taken.
    pub looks: usize,
    /// Level of each look: alpha / schedule length (union bound).
    pub alpha_per_look: f64,
}

/// The geometric look schedule for at most n estimation samples: first look at
/// min(n, max(100, n / 100)), doubling, last look at n.
pub fn look_schedule(n: u64) -> Vec<u64> {
    let mut v = Vec::new();
    let mut m = n.min((n / 100).max(100));
    while m < n {
        v.push(m);
        m = m.saturating_mul(2);
    }
    v.push(n);
    v
}

/// CERTIFY for one input (flattened sample values), `index` keying its noise. With
/// `target_radius`, runs the sequential test instead of the fixed-N estimate.
pub fn certify(
    sampler: &Sampler,
    cfg: &Config,
    x: &[f64],
    index: u64,
    target_radius: Option<f64>,
) -> Result<Certificate> {
    let base = checked_base(sampler, cfg, x)?;
    let sigma = cfg.noise.sigma();
    let margin = cfg.noise.p_margin(base.len());
    let base_class = sampler.base_class(&base)?;
    let sel = sampler.counts(&cfg.noise, &base, cfg.seed, index, Stream::Selection, 0, cfg.n0, cfg.batch)?;
    let class = top(&sel);
    let finish = |counts: Vec<u64>, n_est: u64, alpha: f64, seq: Option<Sequential>| {
        let n_a = counts[class];
        let p_a_lower = stats::next_down(stats::cp_lower(n_a, n_est, alpha) - margin).max(0.0);
        let radius = stats::radius_lower(sigma, p_a_lower);
        Certificate {
            class,
            prediction: radius.map(|_| class),
            radius: radius.unwrap_or(0.0),
            p_a_lower,
            p_margin: margin,
            counts_selection: sel.clone(),
            counts,
            n_a,
            n_estimation: n_est,
            samples_used: cfg.n0 + n_est,
            sequential: seq,
            base_class,
        }
    };
    let Some(r) = target_radius else {
        let counts = sampler.counts(&cfg.noise, &base, cfg.seed, index, Stream::Estimation, 0, cfg.n, cfg.batch)?;
        return Ok(finish(counts, cfg.n, cfg.alpha, None));
    };
    if !(r >= 0.0 && r.is_finite()) {
        return Err(Error::InvalidArgument(format!("target radius must be finite and >= 0, got {r}")));
    }
    let schedule = look_schedule(cfg.n);
    let alpha_j = cfg.alpha / schedule.len() as f64;
    let mut counts = vec![0u64; sampler.classes() + 1];
    let mut done = 0u64;
    for (j, &m) in schedule.iter().enumerate() {
        // Looks are prefixes of the same estimation stream as fixed-N CERTIFY.
        let more = sampler.counts(&cfg.noise, &base, cfg.seed, index, Stream::Estimation, done, m - done, cfg.batch)?;
        counts.iter_mut().zip(&more).for_each(|(a, b)| *a += b);
        done = m;
        let n_a = counts[class];
        let lower = stats::next_down(stats::cp_lower(n_a, m, alpha_j) - margin).max(0.0);
        let certified = stats::radius_lower(sigma, lower).is_some_and(|rad| rad >= r);
        let upper = stats::next_up(stats::cp_upper(n_a, m, alpha_j) + margin).min(1.0);
        // "not certified" speaks about the selected class: Cohen's radius at its true p_A is < R.
        let refuted = upper <= 0.5 || stats::radius_upper(sigma, upper) < r;
        let last = j + 1 == schedule.len();
        if certified || refuted || last {
            let decision = if certified {
                "certified"
            } else if refuted {
                "not_certified"
            } else {
                "undecided"
            };
            let seq = Sequential {
                target_radius: r,
                decision,
                schedule: schedule.clone(),
                looks: j + 1,
                alpha_per_look: alpha_j,
            };
            return Ok(finish(counts, m, alpha_j, Some(seq)));
        }
    }
    Err(Error::InvalidArgument("internal: empty look schedule".into()))
}

/// A PREDICT result.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub prediction: Option<usize>,
    pub counts: Vec<u64>,
    pub n_a: u64,
    pub n_b: u64,
    pub p_value: f64,
    pub samples_used: u64,
}

/// The input as the noise mode reads it, checked against the model's input size.
fn checked_base(sampler: &Sampler, cfg: &Config, x: &[f64]) -> Result<Base> {
    let base = cfg.noise.base(x)?;
    if base.len() != sampler.sample_len() {
        return Err(Error::Shape(format!(
            "input has {} values, the model input takes {}",
            base.len(),
            sampler.sample_len()
        )));
    }
    Ok(base)
}

/// PREDICT for one input: n samples, the two-sided binomial test on the top two counts;
/// abstain when its p-value exceeds alpha.
pub fn predict(sampler: &Sampler, cfg: &Config, x: &[f64], index: u64) -> Result<Prediction> {
    let base = checked_base(sampler, cfg, x)?;
    let counts = sampler.counts(&cfg.noise, &base, cfg.seed, index, Stream::Predict, 0, cfg.n, cfg.batch)?;
    let a = top(&counts);
    let k = counts.len() - 1;
    let b = (0..k).filter(|&i| i != a).fold(None, |best: Option<usize>, i| match best {
        Some(j) if counts[j] >= counts[i] => best,
        _ => Some(i),
    });
    let (n_a, n_b) = (counts[a], b.map_or(0, |b| counts[b]));
    let p_value = stats::binom_test_half(n_a, n_b);
    Ok(Prediction {
        prediction: (p_value <= cfg.alpha && n_a > n_b).then_some(a),
        counts,
        n_a,
        n_b,
        p_value,
        samples_used: cfg.n,
    })
}
