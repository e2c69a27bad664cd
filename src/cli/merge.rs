//! `robustcert merge JOURNAL... --key KEY.pem --out CERT.intoto.jsonl`: combines the journals of
//! the shards of one `certify --shard I/N` run (format in [`crate::cert::journal`]) into one
//! signed certificate, the same statement a single machine computes (byte-identical envelope
//! when `SOURCE_DATE_EPOCH` is set for both). Refuses journals of different runs, missing,
//! duplicate or incomplete shards. Exit 0: verdict PASS or no criteria; 1: FAIL; 2: an error.

use super::Outcome;
use crate::cert::journal::{self, assemble, Assembly, Journal, ReadOutcome};
use crate::cert::{self, SigningKey};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shards' journals (`certify --shard I/N` writes CERT.shard-I-of-N.journal.jsonl).
    #[arg(required = true, num_args = 1..)]
    pub journals: Vec<PathBuf>,
    /// The signing key (PKCS#8 PEM, as written by `keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// The certificate: CERT.intoto.jsonl (the Sigstore bundle goes beside it as CERT.sigstore.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Reads and checks the shard journals: one run, shards exactly 0..N-1, each complete.
pub fn check_shards(paths: &[PathBuf]) -> anyhow::Result<Vec<Journal>> {
    let mut journals: Vec<Journal> = Vec::with_capacity(paths.len());
    for p in paths {
        match journal::read(p).with_context(|| format!("cannot read the journal {}", p.display()))? {
            ReadOutcome::NoHeader => {
                bail!("{} holds no journal header: that shard never started; run it first", p.display())
            }
            ReadOutcome::Journal(j) => {
                if j.torn_tail {
                    eprintln!(
                        "note: {}: ignored a torn last line (the shard was killed while writing it)",
                        p.display()
                    );
                }
                journals.push(*j);
            }
        }
    }
    let first = &journals[0];
    for j in &journals[1..] {
        if j.header.run_sha256 != first.header.run_sha256 {
            bail!(
                "{} and {} were written for different runs (different model/data/method): {}",
                first.path.display(),
                j.path.display(),
                first.header.run.differences(&j.header.run).join("; ")
            );
        }
        if j.header.shard.count != first.header.shard.count {
            bail!(
                "{} is shard {}/{} but {} is shard {}/{}: the shards of one run share N",
                j.path.display(),
                j.header.shard.index,
                j.header.shard.count,
                first.path.display(),
                first.header.shard.index,
                first.header.shard.count
            );
        }
    }
    let n = first.header.shard.count;
    let mut by_index: BTreeMap<usize, &Journal> = BTreeMap::new();
    for j in &journals {
        if let Some(other) = by_index.insert(j.header.shard.index, j) {
            bail!(
                "shard {}/{n} is given twice: {} and {}",
                j.header.shard.index,
                other.path.display(),
                j.path.display()
            );
        }
    }
    let missing: Vec<String> = (0..n).filter(|i| !by_index.contains_key(i)).map(|i| format!("{i}/{n}")).collect();
    if !missing.is_empty() {
        bail!("missing shard(s) {} of {n}: merge needs the journals of all shards 0..{}", missing.join(", "), n - 1);
    }
    for j in &journals {
        let want = j.header.shard.inputs(&j.header.run.inputs).len();
        if j.results.len() != want {
            bail!(
                "shard {}/{n} ({}) is incomplete: {} of its {want} inputs are done; finish it with `certify ... --shard \
                 {}/{n} --resume`",
                j.header.shard.index,
                j.path.display(),
                j.results.len(),
                j.header.shard.index
            );
        }
    }
    Ok(journals)
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let key = SigningKey::read(&a.key).with_context(|| format!("cannot load the signing key {}", a.key.display()))?;
    let journals = check_shards(&a.journals)?;
    let run = journals[0].header.run.clone();
    let results: Vec<cert::InputResult> = journals.iter().flat_map(|j| j.results.iter().cloned()).collect();
    if results.iter().all(|r| r.outcome == cert::Outcome::Error) {
        bail!("the engine failed on every input (see the journals' detail fields); nothing to sign");
    }
    let sessions: Vec<&journal::Session> = journals.iter().flat_map(|j| j.sessions.iter()).collect();
    let at = Assembly::from_sessions(sessions.iter().copied(), rayon::current_num_threads())?;
    let statement = assemble(&run, results, &at).context("cannot build the certificate")?;
    let envelope = cert::sign(&statement, &key)?;
    let paths = cert::write(&envelope, &a.out)?;
    super::certify::print_summary(a.json, &statement, &paths, &key, at.threads)
}
