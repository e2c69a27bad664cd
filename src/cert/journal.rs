//! The journal of a batch certification run: JSON Lines (<https://jsonlines.org>), one line
//! per finished input, so that a run killed at any point (SIGKILL, preemption, power loss after
//! the last `fsync`) loses at most the inputs in flight, and shards computed on different
//! machines combine into one certificate.
//!
//! Layout of `RUN.journal.jsonl`:
//!
//! 1. a header: `{"format": "robustcert-journal/v1", "runSha256": .., "shard": {"index", "count"},
//!    "run": {..}}` where `run` ([`RunRecord`]) holds everything that determines the results and
//!    the certificate (model description and sha256, dataset manifest, selection and the ordered
//!    list of inputs, threat model, method record, criteria, signer, verifier build) and
//!    `runSha256` is the SHA-256 of its RFC 8785 canonical JSON;
//! 2. one `{"session": {..}}` line per process that worked on it (start time, threads, host);
//! 3. one [`InputResult`] per finished input, with its `label` and `inputDigest` filled in from
//!    the data files, in completion order.
//!
//! Every line is written with one `write` and made durable with `File::sync_data` before the
//! next (per line, not per group: an input costs milliseconds to minutes, an fsync about a
//! millisecond). A crash mid-write leaves a torn last line, which [`read`] ignores (and
//! [`JournalWriter::resume`] truncates away); any other malformed line is an error.
//!
//! The certificate is always assembled from a [`RunRecord`] and the results sorted by input
//! index ([`assemble`]), whether one process computed them or `robustcert merge` collected them
//! from shards, so both give the same statement; with `SOURCE_DATE_EPOCH` set
//! ([`source_date_epoch`]) the timestamps are fixed too and the signed envelopes are
//! byte-identical (ECDSA P-256 with RFC 6979 nonces and Ed25519 are deterministic).

use super::predicate::{
    Criterion, DatasetManifest, InputResult, Method, ModelDescription, Selection, Slice, ThreatModel, Verifier,
};
use super::{CertificateBuilder, DatasetSubject, ModelSubject, RunInfo, Statement};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The `format` of a journal header.
pub const JOURNAL_FORMAT: &str = "robustcert-journal/v1";

/// The data as the certificate describes them (see [`DatasetSubject::from_record`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRecord {
    pub name: String,
    pub manifest: DatasetManifest,
    /// Number of samples in the data files.
    pub size: usize,
    pub selection: Option<Selection>,
    pub slices: Vec<Slice>,
}

/// Everything that determines a run's per-input results and its certificate, except when, where
/// and with how many threads it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub model: ModelDescription,
    pub dataset: DatasetRecord,
    /// The data indices to certify, in selection order (shards split this list).
    pub inputs: Vec<usize>,
    pub threat_model: ThreatModel,
    pub method: Method,
    pub alpha: f64,
    pub interval_confidence: f64,
    pub criteria: Vec<Criterion>,
    /// Decimal seed and RNG of the run's randomness (smoothing), as the certificate records them.
    pub seed: Option<String>,
    pub rng: Option<String>,
    pub signer: String,
    pub meaning: String,
    /// Per-input wall-clock seconds are recorded (then results differ from run to run).
    pub record_times: bool,
    /// The build that computes the results: a journal is only resumed or merged by the same one.
    pub verifier: Verifier,
}

impl RunRecord {
    /// SHA-256 of the RFC 8785 canonical JSON of the record.
    pub fn sha256(&self) -> Result<String> {
        let bytes = serde_json_canonicalizer::to_vec(self)
            .map_err(|e| Error::InvalidArgument(format!("cannot serialise the run record: {e}")))?;
        Ok(super::sha256_hex(&bytes))
    }

    /// What differs between two records, in words ("model sha256 abc.. != def..", ...): for the
    /// error when a journal belongs to another run.
    pub fn differences(&self, other: &RunRecord) -> Vec<String> {
        let mut d = Vec::new();
        let short = |s: &str| s.chars().take(12).collect::<String>();
        if self.model.digest != other.model.digest {
            d.push(format!(
                "model sha256 {}.. here, {}.. in the journal",
                short(&self.model.digest.sha256),
                short(&other.model.digest.sha256)
            ));
        } else if self.model != other.model {
            d.push("model description (class names, preprocessing or value range)".into());
        }
        if self.dataset.manifest != other.dataset.manifest || self.dataset.size != other.dataset.size {
            d.push(format!(
                "data files {} (inputs sha256 {}..) here, {} (inputs sha256 {}..) in the journal",
                self.dataset.name,
                short(&self.dataset.manifest.inputs.sha256),
                other.dataset.name,
                short(&other.dataset.manifest.inputs.sha256)
            ));
        }
        if self.inputs != other.inputs || self.dataset.selection != other.dataset.selection {
            d.push(format!(
                "input selection ({} inputs here, {} in the journal)",
                self.inputs.len(),
                other.inputs.len()
            ));
        }
        if self.dataset.slices != other.dataset.slices || self.dataset.name != other.dataset.name {
            d.push("dataset name or slices".into());
        }
        if self.method != other.method {
            let here = serde_json::to_value(&self.method.parameters).unwrap_or_default();
            let there = serde_json::to_value(&other.method.parameters).unwrap_or_default();
            let mut keys: Vec<String> = Vec::new();
            if let (Some(a), Some(b)) = (here.as_object(), there.as_object()) {
                for k in a.keys().chain(b.keys()) {
                    if a.get(k) != b.get(k) && !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            if self.method.name != other.method.name {
                d.push(format!("method {} here, {} in the journal", self.method.name, other.method.name));
            } else {
                let vals: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        format!(
                            "{k} {} here, {} in the journal",
                            here.get(k).map_or("absent".into(), |v| v.to_string()),
                            there.get(k).map_or("absent".into(), |v| v.to_string())
                        )
                    })
                    .collect();
                d.push(format!("method parameters ({})", vals.join("; ")));
            }
        }
        if self.threat_model != other.threat_model {
            d.push("threat model (norm, radii or clip box)".into());
        }
        if self.criteria != other.criteria || self.interval_confidence != other.interval_confidence {
            d.push("acceptance criteria".into());
        }
        if self.alpha != other.alpha || self.seed != other.seed || self.rng != other.rng {
            d.push("alpha or seed".into());
        }
        if self.signer != other.signer || self.meaning != other.meaning {
            d.push("signer".into());
        }
        if self.record_times != other.record_times {
            d.push("--record-times".into());
        }
        if self.verifier != other.verifier {
            d.push(format!(
                "verifier build (robustcert {} binary {}.. here, {} binary {}.. in the journal)",
                self.verifier.version,
                short(&self.verifier.binary_digest.sha256),
                other.verifier.version,
                short(&other.verifier.binary_digest.sha256)
            ));
        }
        if d.is_empty() {
            d.push("the run record".into());
        }
        d
    }
}

/// Which slice of the inputs a journal covers: input position p of [`RunRecord::inputs`] belongs
/// to shard `p mod count` (round-robin, so every shard gets a similar mix of easy and hard
/// inputs when the data are sorted by class or source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` (0 <= I < N).
    pub fn parse(s: &str) -> Result<Shard> {
        let bad =
            |m: &str| Error::InvalidArgument(format!("--shard '{s}': {m} (expected I/N with 0 <= I < N, e.g. 0/4)"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let index = i.trim().parse::<usize>().map_err(|_| bad("I is not a number"))?;
        let count = n.trim().parse::<usize>().map_err(|_| bad("N is not a number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad("I must be below N (shards are numbered from 0)"));
        }
        Ok(Shard { index, count })
    }

    /// The data indices of this shard, in selection order.
    pub fn inputs(&self, all: &[usize]) -> Vec<usize> {
        all.iter().enumerate().filter(|(p, _)| p % self.count == self.index).map(|(_, &i)| i).collect()
    }
}

/// The first line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    /// [`RunRecord::sha256`] of `run`.
    pub run_sha256: String,
    pub shard: Shard,
    pub run: RunRecord,
}

impl Header {
    pub fn new(run: RunRecord, shard: Shard) -> Result<Header> {
        Ok(Header { format: JOURNAL_FORMAT.into(), run_sha256: run.sha256()?, shard, run })
    }
}

/// One process working on a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Seconds since the Unix epoch when the process started on the journal.
    pub started_unix: u64,
    pub threads: usize,
    pub host: String,
}

#[derive(Serialize, Deserialize)]
struct SessionLine {
    session: Session,
}

/// A journal as read back.
#[derive(Debug, Clone)]
pub struct Journal {
    pub path: PathBuf,
    pub header: Header,
    pub sessions: Vec<Session>,
    /// Finished inputs in completion order (each index at most once).
    pub results: Vec<InputResult>,
    /// A torn last line (a crash mid-write) was ignored.
    pub torn_tail: bool,
    /// Length in bytes of the complete lines.
    pub valid_len: u64,
}

/// What a journal file holds.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A header and zero or more sessions and results.
    Journal(Box<Journal>),
    /// An empty file, or only a torn header line (killed while the header was written).
    NoHeader,
}

/// Reads a journal, ignoring a torn last line. Errors name the file and line.
pub fn read(path: impl AsRef<Path>) -> Result<ReadOutcome> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, m: String| Error::data(path, format!("journal line {line}: {m}"));
    let mut header: Option<Header> = None;
    let mut sessions = Vec::new();
    let mut results: Vec<InputResult> = Vec::new();
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut torn_tail = false;
    let mut valid_len = 0u64;
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start < bytes.len() {
        line_no += 1;
        let (line, complete, next) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(k) => (&bytes[start..start + k], true, start + k + 1),
            None => (&bytes[start..], false, bytes.len()),
        };
        let is_last = next >= bytes.len();
        // A line without its newline can only be the last one, cut by a crash; so can a last line
        // that does not parse (blocks the file system allocated but never filled).
        let parsed: std::result::Result<(), String> = if !complete {
            Err("torn".into())
        } else if header.is_none() {
            match serde_json::from_slice::<Header>(line) {
                Ok(h) => {
                    if h.format != JOURNAL_FORMAT {
                        return Err(bad(line_no, format!("format '{}' is not {JOURNAL_FORMAT}", h.format)));
                    }
                    let d = h.run.sha256()?;
                    if d != h.run_sha256 {
                        return Err(bad(line_no, "runSha256 is not the digest of the run record (edited?)".into()));
                    }
                    header = Some(h);
                    Ok(())
                }
                Err(e) => Err(format!("not a journal header: {e}")),
            }
        } else if line.starts_with(b"{\"session\"") {
            match serde_json::from_slice::<SessionLine>(line) {
                Ok(s) => {
                    sessions.push(s.session);
                    Ok(())
                }
                Err(e) => Err(format!("bad session line: {e}")),
            }
        } else {
            match serde_json::from_slice::<InputResult>(line) {
                Ok(r) => {
                    match seen.get(&r.index) {
                        Some(&k) if results[k] == r => {}
                        Some(_) => return Err(bad(line_no, format!("two different results for input {}", r.index))),
                        None => {
                            seen.insert(r.index, results.len());
                            results.push(r);
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(format!("not an input result: {e}")),
            }
        };
        match parsed {
            Ok(()) => valid_len = next as u64,
            Err(_) if is_last => {
                torn_tail = true;
                break;
            }
            Err(m) => return Err(bad(line_no, m)),
        }
        start = next;
    }
    let Some(header) = header else { return Ok(ReadOutcome::NoHeader) };
    let allowed: std::collections::BTreeSet<usize> = header.shard.inputs(&header.run.inputs).into_iter().collect();
    if let Some(r) = results.iter().find(|r| !allowed.contains(&r.index)) {
        return Err(Error::data(
            path,
            format!(
                "journal holds a result for input {}, which is not in its shard {}/{}",
                r.index, header.shard.index, header.shard.count
            ),
        ));
    }
    Ok(ReadOutcome::Journal(Box::new(Journal {
        path: path.to_path_buf(),
        header,
        sessions,
        results,
        torn_tail,
        valid_len,
    })))
}

/// Appends lines to a journal, each made durable before the call returns.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Creates a journal with its header. Refuses an existing file unless `overwrite`.
    pub fn create(path: impl AsRef<Path>, header: &Header, overwrite: bool) -> Result<JournalWriter> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        if overwrite {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(path, e)),
                _ => {}
            }
        }
        // O_APPEND: every line lands at the end of the file as one write, whatever else appends.
        let file = OpenOptions::new().append(true).create_new(true).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::InvalidArgument(format!(
                    "the journal {} exists: pass --resume to continue that run, or --force to discard it and start over",
                    path.display()
                ))
            } else {
                Error::io(path, e)
            }
        })?;
        let mut w = JournalWriter { file, path: path.to_path_buf() };
        w.line(&serde_json::to_string(header).map_err(|e| Error::InvalidArgument(e.to_string()))?)?;
        // The new directory entry must survive a crash too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(w)
    }

    /// Reopens a journal read by [`read`] for appending, cutting a torn last line.
    pub fn resume(journal: &Journal) -> Result<JournalWriter> {
        let path = &journal.path;
        let cut = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
        cut.set_len(journal.valid_len).map_err(|e| Error::io(path, e))?;
        cut.sync_data().map_err(|e| Error::io(path, e))?;
        let file = OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(JournalWriter { file, path: path.clone() })
    }

    fn line(&mut self, text: &str) -> Result<()> {
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf).map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Records the start of a process working on the journal.
    pub fn session(&mut self, s: &Session) -> Result<()> {
        let text = serde_json::to_string(&SessionLine { session: s.clone() })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.line(&text)
    }

    /// Appends one finished input.
    pub fn result(&mut self, r: &InputResult) -> Result<()> {
        let text = serde_json::to_string(r).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.line(&text)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `SOURCE_DATE_EPOCH` (<https://reproducible-builds.org/specs/source-date-epoch/>): when set to
/// a decimal number of seconds, the certificate's start, finish and signing times are that
/// instant, so reruns, resumed runs and merged shards sign byte-identical certificates.
/// Set but malformed is an error.
pub fn source_date_epoch() -> Result<Option<SystemTime>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(s) => {
            let secs = s.trim().parse::<u64>().map_err(|_| {
                Error::InvalidArgument(format!("SOURCE_DATE_EPOCH '{s}' is not a whole number of seconds since 1970"))
            })?;
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
        }
    }
}

/// Where and when the certificate's results were computed and assembled.
#[derive(Debug, Clone)]
pub struct Assembly {
    pub threads: usize,
    pub host: String,
    pub started: SystemTime,
    pub finished: SystemTime,
}

impl Assembly {
    /// The execution record of a run whose journals list `sessions`, assembled now on this host:
    /// started = the first session's start, finished = now, threads = the largest worker pool
    /// of any session; with `SOURCE_DATE_EPOCH` both times are that instant.
    pub fn from_sessions<'a>(
        sessions: impl IntoIterator<Item = &'a Session>,
        fallback_threads: usize,
    ) -> Result<Assembly> {
        let mut started = None::<u64>;
        let mut threads = 0;
        for s in sessions {
            started = Some(started.map_or(s.started_unix, |t| t.min(s.started_unix)));
            threads = threads.max(s.threads);
        }
        let now = SystemTime::now();
        let (started, finished) = match source_date_epoch()? {
            Some(t) => (t, t),
            None => (started.map_or(now, |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)), now),
        };
        Ok(Assembly {
            threads: if threads == 0 { fallback_threads } else { threads },
            host: super::host_name(),
            started,
            finished,
        })
    }
}

/// Builds the certificate statement of a run from its record and results (any order; one per
/// input of `run.inputs`, each with label and input digest filled in).
pub fn assemble(run: &RunRecord, mut results: Vec<InputResult>, at: &Assembly) -> Result<Statement> {
    let expected: std::collections::BTreeSet<usize> = run.inputs.iter().copied().collect();
    let got: std::collections::BTreeSet<usize> = results.iter().map(|r| r.index).collect();
    if got.len() != results.len() {
        return Err(Error::Certificate("two results for one input".into()));
    }
    if got != expected {
        let missing: Vec<usize> = expected.difference(&got).copied().take(10).collect();
        return Err(Error::Certificate(format!(
            "{} of {} inputs have results (missing e.g. {missing:?})",
            got.intersection(&expected).count(),
            expected.len()
        )));
    }
    results.sort_by_key(|r| r.index);
    let d = &run.dataset;
    let dataset =
        DatasetSubject::from_record(d.name.clone(), d.manifest.clone(), d.size, d.selection.clone(), d.slices.clone());
    let seed = match &run.seed {
        Some(s) => Some(s.parse::<u64>().map_err(|_| Error::Certificate(format!("seed '{s}' is not a u64")))?),
        None => None,
    };
    let info = RunInfo { seed, rng: run.rng.clone(), threads: at.threads, started: at.started, finished: at.finished };
    CertificateBuilder::new(
        ModelSubject { description: run.model.clone() },
        dataset,
        run.threat_model.clone(),
        run.method.clone(),
        results,
    )
    .alpha(run.alpha)
    .interval_confidence(run.interval_confidence)
    .criteria(run.criteria.clone())
    .run_info(info)
    .verifier(run.verifier.clone())
    .host(&at.host)
    .attestation(&run.signer, &run.meaning)
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_round_robin() {
        let all: Vec<usize> = vec![9, 4, 7, 1, 3, 8, 2];
        let mut seen = Vec::new();
        for i in 0..3 {
            let s = Shard { index: i, count: 3 };
            seen.extend(s.inputs(&all));
        }
        seen.sort_unstable();
        let mut want = all.clone();
        want.sort_unstable();
        assert_eq!(seen, want);
        // Positions 1 and 4 of the selection.
        assert_eq!(Shard { index: 1, count: 3 }.inputs(&all), vec![4, 3]);
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
