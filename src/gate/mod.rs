//! The CI gate (`robustcert check`): thresholds on a certificate's acceptance criteria, read from
//! a TOML configuration ([`config`]), reported as JUnit XML (the de-facto schema of Ant's
//! JUnitReport task, as read by Jenkins, GitLab and GitHub test reporters: [`junit`]) and as a
//! JSON summary.
//!
//! The gate does not evaluate anything itself: each threshold is a certificate
//! [`Criterion`](crate::cert::Criterion), evaluated by the certificate builder
//! ([`crate::cert::evaluate`]) and recorded, with the verdict, in the signed certificate; this
//! module only lays those recorded results out for CI.

pub mod config;
pub mod junit;

use crate::cert::{CertifiedAccuracy, CriterionResult, Metric, RateWithInterval, Statement};
use crate::error::{Error, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use config::GateConfig;

/// How (and whether) the certificate was signed.
#[derive(Debug, Clone)]
pub struct Signing {
    /// True when signed with a key the user configured (not a discarded throw-away key).
    pub signed: bool,
    /// Keyid of the key that signed the envelope.
    pub keyid: String,
    /// Where the key came from: "--key", "$ROBUSTCERT_KEY", "output.key", or a note that a
    /// throw-away key was used and discarded.
    pub source: String,
}

/// One threshold with what the certificate recorded for it.
#[derive(Debug, Clone)]
pub struct ThresholdResult {
    /// Test-case name.
    pub name: String,
    /// The certificate's record: criterion as evaluated, observed value, pass.
    pub recorded: CriterionResult,
}

impl ThresholdResult {
    /// The one-sided lower confidence bound tested, when the threshold has a confidence.
    pub fn lower_bound(&self) -> Option<f64> {
        self.recorded.criterion.confidence.and(self.recorded.observed)
    }

    /// The metric's point estimate k / n (None for `certified_accuracy_lower`, a bound itself).
    pub fn point_estimate(&self) -> Option<f64> {
        match (self.recorded.criterion.metric, self.recorded.criterion.confidence) {
            (Metric::CertifiedAccuracyLower, _) => None,
            (_, Some(_)) => self.recorded.point_estimate,
            (_, None) => self.recorded.observed,
        }
    }

    /// One line saying what was compared: "observed 0.8125 >= 0.7" or why it failed.
    pub fn message(&self) -> String {
        let c = &self.recorded.criterion;
        let what = match (c.metric, c.confidence) {
            (Metric::CertifiedAccuracyLower, _) => "lower Clopper-Pearson bound (certificate's interval)".to_string(),
            (_, Some(conf)) => format!("{}% one-sided lower Clopper-Pearson bound", fmt_num(conf * 100.0)),
            (_, None) => "observed".to_string(),
        };
        let estimate = match (c.confidence, self.recorded.point_estimate) {
            (Some(_), Some(p)) => format!(" (point estimate {p:.4})"),
            _ => String::new(),
        };
        match self.recorded.observed {
            None => format!(
                "not evaluated: the certificate has no slice '{}' (no inputs of it were certified)",
                c.slice.as_deref().unwrap_or("all")
            ),
            Some(v) if self.recorded.pass => format!("{what} {v:.4}{estimate} >= {}", c.threshold),
            Some(v) => format!("{what} {v:.4}{estimate} < {}", c.threshold),
        }
    }
}

/// Everything the gate reports.
#[derive(Debug, Clone)]
pub struct GateReport {
    /// The configuration file, as given.
    pub config: PathBuf,
    pub thresholds: Vec<ThresholdResult>,
    pub envelope: PathBuf,
    pub bundle: PathBuf,
    /// SHA-256 of the envelope file's bytes.
    pub envelope_sha256: String,
    pub signing: Signing,
    pub model_name: String,
    pub model_sha256: String,
    pub method: String,
    pub certified_classifier: String,
    pub norm: String,
    pub n: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub clean_accuracy: RateWithInterval,
    pub certified_accuracy: Vec<CertifiedAccuracy>,
    pub interval_confidence: f64,
    /// The certificate's verdict ("PASS" / "FAIL").
    pub verdict: String,
    /// Wall-clock seconds of the whole check.
    pub seconds: f64,
    /// RFC 3339 UTC start time.
    pub timestamp: String,
}

impl GateReport {
    /// Reads the gate's results out of a built certificate. `names[i]` names threshold i, whose
    /// criterion is the certificate's criterion i.
    #[allow(clippy::too_many_arguments)]
    pub fn from_statement(
        config: PathBuf,
        names: &[String],
        statement: &Statement,
        envelope: PathBuf,
        bundle: PathBuf,
        signing: Signing,
        seconds: f64,
        timestamp: String,
    ) -> Result<GateReport> {
        let p = &statement.predicate;
        let recorded = &p.acceptance.criteria;
        if recorded.len() != names.len() {
            return Err(Error::Certificate(format!(
                "the certificate records {} criteria, the gate has {} thresholds",
                recorded.len(),
                names.len()
            )));
        }
        let bytes = std::fs::read(&envelope).map_err(|e| Error::io(&envelope, e))?;
        let overall = &p.results.aggregates.overall;
        Ok(GateReport {
            config,
            thresholds: names
                .iter()
                .zip(recorded)
                .map(|(n, r)| ThresholdResult { name: n.clone(), recorded: r.clone() })
                .collect(),
            envelope,
            bundle,
            envelope_sha256: crate::cert::sha256_hex(&bytes),
            signing,
            model_name: p.model.name.clone(),
            model_sha256: p.model.digest.sha256.clone(),
            method: p.method.name.clone(),
            certified_classifier: p.method.certified_classifier.clone(),
            norm: p.threat_model.norm.clone(),
            n: overall.n,
            outcomes: overall.outcomes.clone(),
            clean_accuracy: overall.clean_accuracy.clone(),
            certified_accuracy: overall.certified_accuracy.clone(),
            interval_confidence: p.statistics.interval_confidence,
            verdict: p.acceptance.verdict.clone(),
            seconds,
            timestamp,
        })
    }

    /// Every threshold holds.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.recorded.pass)
    }

    pub fn failures(&self) -> usize {
        self.thresholds.iter().filter(|t| !t.recorded.pass).count()
    }

    /// The JSON summary.
    pub fn to_json(&self) -> serde_json::Value {
        let thresholds: Vec<serde_json::Value> = self
            .thresholds
            .iter()
            .map(|t| {
                let c = &t.recorded.criterion;
                json!({
                    "name": t.name,
                    "criterion": c.to_text(),
                    "metric": c.metric,
                    "radius": c.radius,
                    "atLeast": c.threshold,
                    "confidence": c.confidence,
                    "slice": c.slice,
                    "observed": t.recorded.observed,
                    "pointEstimate": t.point_estimate(),
                    "lowerBound": t.lower_bound(),
                    "pass": t.recorded.pass,
                    "message": t.message(),
                })
            })
            .collect();
        json!({
            "config": self.config,
            "verdict": if self.passed() { "PASS" } else { "FAIL" },
            "passed": self.thresholds.len() - self.failures(),
            "failed": self.failures(),
            "thresholds": thresholds,
            "certificate": {
                "envelope": self.envelope,
                "bundle": self.bundle,
                "sha256": self.envelope_sha256,
                "signed": self.signing.signed,
                "keyid": self.signing.keyid,
                "key": self.signing.source,
                "verdict": self.verdict,
            },
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "method": self.method,
            "certifiedClassifier": self.certified_classifier,
            "norm": self.norm,
            "n": self.n,
            "outcomes": self.outcomes,
            "cleanAccuracy": self.clean_accuracy,
            "certifiedAccuracy": self.certified_accuracy,
            "intervalConfidence": self.interval_confidence,
            "seconds": self.seconds,
            "timestamp": self.timestamp,
        })
    }

    /// The short human summary.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "robustcert check {}: {} ({} of {} thresholds pass), {} inputs, {} {} ({}), {:.1} s",
            self.config.display(),
            if self.passed() { "PASS" } else { "FAIL" },
            self.thresholds.len() - self.failures(),
            self.thresholds.len(),
            self.n,
            self.method,
            self.norm,
            self.certified_classifier,
            self.seconds
        )];
        for t in &self.thresholds {
            out.push(format!("  [{}] {}: {}", if t.recorded.pass { "pass" } else { "FAIL" }, t.name, t.message()));
        }
        let errors = self.outcomes.get("error").copied().unwrap_or(0);
        if errors > 0 {
            out.push(format!(
                "  warning: the engine failed on {errors} input(s) (outcome 'error'; they count as not certified), see \
                 results.perInput[].detail"
            ));
        }
        out.push(format!("  certificate {} (sha256 {})", self.envelope.display(), self.envelope_sha256));
        out.push(if self.signing.signed {
            format!("  signed with {} (keyid {})", self.signing.source, self.signing.keyid)
        } else {
            format!("  NOT SIGNED: {}", self.signing.source)
        });
        out
    }
}

/// A number without trailing zeros ("99", "99.5").
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
