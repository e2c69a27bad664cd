//! Noise for randomized smoothing, replayable and (by default) sound in floating point.
//!
//! Sound mode follows Voracek & Hein (ICLR 2023, "Sound randomized smoothing in floating-point
//! arithmetics"): inputs live on the 1/255 grid and the base classifier is h = f o round (round
//! to the grid, then to f32). For x on the grid, round(x + delta) = x + round(255 delta)/255, so
//! the noise is the rounded Gaussian K = round(255 delta) per coordinate, sampled exactly by
//! comparing a uniform 64-bit integer with precomputed integer thresholds. The thresholds differ
//! from the exact CDF by a bounded amount; [`RoundedGaussian::tv_bound`] turns that into a
//! total-variation margin the certificate subtracts from p_A.
//!
//! Every sample has its own ChaCha20 stream keyed by (seed, input index) with nonce
//! (stream, sample index): results do not depend on threads or batch size (counter-based RNG).

use crate::error::{Error, Result};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The input quantisation step's inverse (8-bit images).
pub const GRID: f64 = 255.0;

/// Which noise stream a sample belongs to, so selection and estimation never share samples.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// CERTIFY's N0 samples choosing the top class.
    Selection = 0,
    /// CERTIFY's N samples estimating its probability (fresh, never the selection samples).
    Estimation = 1,
    /// PREDICT's samples.
    Predict = 2,
}

/// Largest sample index a stream can address (the low 56 bits of the ChaCha nonce).
pub const MAX_SAMPLE_INDEX: u64 = (1 << 56) - 1;

/// The generator of one noise sample: ChaCha20 with key ("rcsmooth", seed, input index, 0) and
/// nonce (stream << 56 | sample index).
pub fn sample_rng(seed: u64, input: u64, stream: Stream, sample: u64) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(b"rcsmooth");
    key[8..16].copy_from_slice(&seed.to_le_bytes());
    key[16..24].copy_from_slice(&input.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(key);
    rng.set_stream(((stream as u64) << 56) | (sample & MAX_SAMPLE_INDEX));
    rng
}

/// Bound on |computed Phi - exact Phi| per threshold, including the rounding to 2^-64 units.
/// libm's erfc (musl) is within about 1 ulp (~1e-16 relative on values <= 1/2; checked
/// against scipy in the tests); 1e-14 leaves a wide margin.
const THRESHOLD_ERROR: f64 = 1e-14;
/// The table covers |K| <= ceil(TAIL_SIGMAS * 255 sigma) + 1; the rest is Phi(-10) per side.
const TAIL_SIGMAS: f64 = 10.0;
const TAIL_MASS: f64 = 7.7e-24; // >= Phi(-10) = 7.62e-24
const GUIDE_BITS: u32 = 12;

/// The rounded Gaussian round(255 * N(0, sigma^2)) with integer thresholds.
#[derive(Clone, Debug)]
pub struct RoundedGaussian {
    sigma: f64,
    kmax: i64,
    /// `thr[i]` ~ 2^64 P(K <= i - kmax), for i in 0..2 kmax; K = kmax above the last one.
    thr: Vec<u64>,
    /// `guide[b]` = first i with thr[i] > b << (64 - GUIDE_BITS), so a lookup scans few entries.
    guide: Vec<u32>,
}

impl RoundedGaussian {
    pub fn new(sigma: f64) -> Result<Self> {
        if !(sigma > 0.0 && sigma <= 1000.0) {
            return Err(Error::InvalidArgument(format!("sound-mode sigma must be in (0, 1000], got {sigma}")));
        }
        let s = sigma * GRID;
        let kmax = (TAIL_SIGMAS * s).ceil() as i64 + 1;
        let two64 = 18446744073709551616.0f64;
        // c[j] ~ 2^64 P(K <= -j-1) = 2^64 Phi(-(j + 1/2)/s), from the tail where erfc is most
        // accurate; the upper half mirrors it, so the table is exactly symmetric.
        let tails: Vec<u64> = (0..kmax)
            .map(|j| {
                let t = (j as f64 + 0.5) / s;
                let q = 0.5 * libm::erfc(t / std::f64::consts::SQRT_2);
                (q * two64).round() as u64
            })
            .collect();
        let mut thr = Vec::with_capacity(2 * kmax as usize);
        for j in (0..kmax as usize).rev() {
            thr.push(tails[j]); // threshold of k = -j-1
        }
        for &c in &tails {
            thr.push(u64::MAX - c); // threshold of k = j
        }
        if thr.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidArgument(format!(
                "internal: rounded-Gaussian thresholds not monotone for sigma {sigma}"
            )));
        }
        let mut guide = Vec::with_capacity(1 << GUIDE_BITS);
        let mut i = 0usize;
        for b in 0..(1u64 << GUIDE_BITS) {
            let start = b << (64 - GUIDE_BITS);
            while i < thr.len() && thr[i] <= start {
                i += 1;
            }
            guide.push(i as u32);
        }
        Ok(RoundedGaussian { sigma, kmax, thr, guide })
    }

    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The integer thresholds (index i is k = i - kmax); for tests and audits.
    pub fn thresholds(&self) -> &[u64] {
        &self.thr
    }

    pub fn kmax(&self) -> i64 {
        self.kmax
    }

    /// K for a uniform 64-bit integer: the smallest k with u < threshold(k).
    #[inline]
    pub fn sample_u64(&self, u: u64) -> i64 {
        let mut i = self.guide[(u >> (64 - GUIDE_BITS)) as usize] as usize;
        while i < self.thr.len() && u >= self.thr[i] {
            i += 1;
        }
        i as i64 - self.kmax
    }

    /// The probability the sampler gives k (from the integer thresholds).
    pub fn sampled_prob(&self, k: i64) -> f64 {
        let i = k + self.kmax;
        if i < 0 || i > 2 * self.kmax {
            return 0.0;
        }
        let i = i as usize;
        let hi = if i < self.thr.len() { self.thr[i] as f64 } else { 18446744073709551616.0 };
        let lo = if i == 0 { 0.0 } else { self.thr[i - 1] as f64 };
        (hi - lo) / 18446744073709551616.0
    }

    /// Bound on the total variation distance between the sampled d-dimensional noise and the
    /// exact rounded Gaussian: d * (2 * thresholds * THRESHOLD_ERROR + 2 tails). Any event's
    /// probability (such as "f o round(x + delta) = c") moves by at most this much.
    pub fn tv_bound(&self, d: usize) -> f64 {
        let per = 2.0 * self.thr.len() as f64 * THRESHOLD_ERROR + 2.0 * TAIL_MASS;
        stats_up(d as f64 * per)
    }
}

fn stats_up(x: f64) -> f64 {
    super::stats::next_up(x)
}

/// The exact probability P(K = k) of the rounded Gaussian, computed in f64 (for tests).
pub fn rounded_gaussian_prob(sigma: f64, k: i64) -> f64 {
    let s = sigma * GRID;
    let p = |t: f64| super::stats::phi(t);
    p((k as f64 + 0.5) / s) - p((k as f64 - 0.5) / s)
}

/// How noise is drawn and added.
#[derive(Clone, Debug)]
pub enum Noise {
    /// Sound default: grid inputs, rounded Gaussian in grid units.
    Rounded(RoundedGaussian),
    /// Plain Gaussian added in f32: Cohen et al.'s certificate for real arithmetic only.
    Gaussian { sigma: f64 },
}

impl Noise {
    pub fn sound(sigma: f64) -> Result<Self> {
        Ok(Noise::Rounded(RoundedGaussian::new(sigma)?))
    }

    pub fn gaussian(sigma: f64) -> Result<Self> {
        if !(sigma > 0.0 && sigma.is_finite()) {
            return Err(Error::InvalidArgument(format!("sigma must be positive and finite, got {sigma}")));
        }
        Ok(Noise::Gaussian { sigma })
    }

    pub fn sigma(&self) -> f64 {
        match self {
            Noise::Rounded(r) => r.sigma,
            Noise::Gaussian { sigma } => *sigma,
        }
    }

    /// Name recorded in outputs.
    pub fn name(&self) -> &'static str {
        match self {
            Noise::Rounded(_) => "rounded_gaussian_1/255",
            Noise::Gaussian { .. } => "gaussian_plain",
        }
    }

    /// Whether the certificate holds for the network as it runs in floating point.
    pub fn sound_in_floating_point(&self) -> bool {
        matches!(self, Noise::Rounded(_))
    }

    /// The margin subtracted from the p_A lower bound for a d-dimensional input.
    pub fn p_margin(&self, d: usize) -> f64 {
        match self {
            Noise::Rounded(r) => r.tv_bound(d),
            Noise::Gaussian { .. } => 0.0,
        }
    }

    /// Prepares an input (one sample, flattened) for this noise: sound mode checks that it lies
    /// on the 1/255 grid.
    pub fn base(&self, x: &[f64]) -> Result<Base> {
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("input element {i} is {}", x[i])));
        }
        match self {
            Noise::Gaussian { .. } => Ok(Base::Real(x.to_vec())),
            Noise::Rounded(_) => {
                let mut q = Vec::with_capacity(x.len());
                for (i, &v) in x.iter().enumerate() {
                    let g = (v * GRID).round();
                    // f32 storage of k/255 is off by at most 255 * 2^-24 ~ 1.5e-5 grid units.
                    if (v * GRID - g).abs() > 1e-4 || g.abs() > 1e9 {
                        return Err(Error::InvalidArgument(format!(
                            "sound smoothing needs inputs on the 1/255 grid (8-bit pixel values k/255, \
                             normalisation inside the model), but element {i} is {v} \
                             (= {} / 255); quantise the input, or choose the plain Gaussian mode with \
                             `--noise gaussian` (its certificate assumes exact real arithmetic)",
                            v * GRID
                        )));
                    }
                    q.push(g as i64);
                }
                Ok(Base::Grid(q))
            }
        }
    }

    /// Fills `out` with one noisy sample of `base` drawn from `rng`.
    #[inline]
    pub fn fill(&self, base: &Base, rng: &mut ChaCha20Rng, out: &mut [f32]) {
        match (self, base) {
            (Noise::Rounded(r), Base::Grid(q)) => {
                for (o, &qi) in out.iter_mut().zip(q) {
                    let k = r.sample_u64(rng.next_u64());
                    *o = ((qi + k) as f64 / GRID) as f32;
                }
            }
            (Noise::Gaussian { sigma }, Base::Real(x)) => {
                // Box-Muller on 53-bit uniforms: fixed consumption (two u64 per pair), so the
                // stream layout is stable across versions.
                let mut it = out.iter_mut().zip(x);
                loop {
                    let Some((o1, &x1)) = it.next() else { break };
                    let u1 = ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / 9007199254740992.0);
                    let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / 9007199254740992.0);
                    let r = (-2.0 * u1.ln()).sqrt();
                    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
                    *o1 = (x1 + sigma * r * c) as f32;
                    if let Some((o2, &x2)) = it.next() {
                        *o2 = (x2 + sigma * r * s) as f32;
                    }
                }
            }
            _ => unreachable!("Noise::base builds the matching base"),
        }
    }
}

/// An input prepared for a noise mode.
#[derive(Clone, Debug)]
pub enum Base {
    /// Grid indices round(255 x).
    Grid(Vec<i64>),
    /// The input as given.
    Real(Vec<f64>),
}

impl Base {
    pub fn len(&self) -> usize {
        match self {
            Base::Grid(q) => q.len(),
            Base::Real(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The clean input as the model sees it.
    pub fn clean(&self) -> Vec<f32> {
        match self {
            Base::Grid(q) => q.iter().map(|&v| (v as f64 / GRID) as f32).collect(),
            Base::Real(x) => x.iter().map(|&v| v as f32).collect(),
        }
    }
}
