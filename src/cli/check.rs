//! `robustcert check [--config robustcert.toml] [--junit FILE.xml] [--json FILE.json] [--key KEY.pem]`:
//! the CI gate. Reads the configuration (`crate::gate::config`), certifies through `certify`'s own
//! code (the configuration becomes a `certify` command line, parsed by clap), and reads the
//! thresholds' results off the certificate's acceptance criteria. Exit 0: every threshold holds;
//! 1: one fails; 2: an error (bad configuration, missing model or data, no key, ...).

use super::certify::{self as certify_cmd, Finished, Signed};
use super::Outcome;
use crate::cert::{self, Algorithm};
use crate::data::dataset::{Dataset, LoadOptions};
use crate::gate::config::{AttackName, Indices, MethodName, NoiseName};
use crate::gate::{junit, GateConfig, GateReport, Signing};
use anyhow::{bail, Context};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// The environment variable naming the signing key: a path to a PKCS#8 PEM file, or the PEM text
/// itself (as CI secrets are handed over).
pub const KEY_ENV: &str = "ROBUSTCERT_KEY";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gate configuration (TOML); relative paths in it resolve against its directory.
    #[arg(long, default_value = "robustcert.toml")]
    pub config: PathBuf,
    /// Write JUnit XML here (overrides output.junit).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the JSON summary here (overrides output.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The signing key, PKCS#8 PEM (overrides $ROBUSTCERT_KEY and output.key).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Worker threads, 1 to 1024 (overrides `threads`; default: all cores). Results do not depend on it.
    #[arg(long, value_parser = super::thread_count)]
    pub threads: Option<usize>,
}

/// `certify`'s arguments, parsed from a command line built from the configuration (so new
/// `certify` flags with defaults need no change here).
#[derive(Debug, clap::Parser)]
#[command(name = "robustcert certify")]
struct CertifyCommandLine {
    #[command(flatten)]
    certify: certify_cmd::CertifyArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let mut reports = (a.junit.clone(), a.json.clone());
    let result = gate(&a, t0, &mut reports);
    if let Err(e) = &result {
        // The gate could not run: CI should still show why (an errored test case, verdict ERROR).
        let message = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
        let seconds = t0.elapsed().as_secs_f64();
        if let Some(path) = &reports.0 {
            let xml = junit::render_error(&a.config.display().to_string(), &message, seconds);
            if let Err(w) = write_file(path, xml.as_bytes()) {
                eprintln!("warning: {w:#}");
            }
        }
        if let Some(path) = &reports.1 {
            let v = serde_json::json!({"config": a.config, "verdict": "ERROR", "error": message, "seconds": seconds});
            if let Err(w) = write_file(path, (v.to_string() + "\n").as_bytes()) {
                eprintln!("warning: {w:#}");
            }
        }
    }
    result
}

/// Runs the gate; `reports` (JUnit, JSON paths) is completed from the configuration once read.
fn gate(a: &Args, t0: Instant, reports: &mut (Option<PathBuf>, Option<PathBuf>)) -> anyhow::Result<Outcome> {
    let started = SystemTime::now();
    let c = GateConfig::load(&a.config)?;
    if reports.0.is_none() {
        reports.0.clone_from(&c.output.junit);
    }
    if reports.1.is_none() {
        reports.1.clone_from(&c.output.json);
    }
    let (junit_path, json_path) = reports.clone();
    if !c.model.is_file() {
        bail!("model {} (config key 'model'): no such file", c.model.display());
    }

    let class_names = class_names(&c)?;
    if let Some(bad) = class_names.iter().find(|n| n.contains(',')) {
        bail!("class name '{bad}' contains a comma, which certify's --class-names cannot carry");
    }
    let criteria = c
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.criterion(Some(&class_names)).map_err(|w| {
                anyhow::anyhow!("config {}: threshold {} ({}): {w}", a.config.display(), i + 1, t.display_name())
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names: Vec<String> = c.thresholds.iter().map(|t| t.display_name()).collect();

    // The key.
    let key = signing_key(a, &c)?;

    let mut argv: Vec<OsString> = vec!["robustcert certify".into(), c.model.clone().into()];
    // `--mean=a,b,c` as one argument (values may be negative); added after the closure below.
    let mut joined: Vec<OsString> = vec![];
    let mut flag = |k: &str, v: OsString| {
        argv.push(format!("--{k}").into());
        argv.push(v);
    };
    let d = &c.data;
    let is_npy = |s: &str| s.to_ascii_lowercase().ends_with(".npy") && Path::new(s).is_file();
    let preprocessed = d.scale.is_some() || d.channels_first.is_some() || d.mean.is_some() || d.std.is_some();
    if !preprocessed && is_npy(&d.source) && d.labels.as_deref().is_some_and(is_npy) {
        // Arrays used as they are: the certificate names the user's own files.
        flag("data", d.source.clone().into());
        flag("labels", d.labels.clone().unwrap_or_default().into());
    } else {
        // Loaded, preprocessed and selected by certify, written beside the certificate.
        flag("dataset", d.source.clone().into());
        if let Some(l) = &d.labels {
            flag("labels", l.into());
        }
        if let Some(s) = &d.split {
            flag("split", s.into());
        }
        if let Some(ch) = d.channels {
            flag("channels", ch.to_string().into());
        }
        if let Some(s) = d.scale {
            flag("scale", fmt(s).into());
        }
        if let Some(cf) = d.channels_first {
            flag("layout", if cf { "nchw" } else { "nhwc" }.into());
        }
        for (k, v) in [("mean", &d.mean), ("std", &d.std)] {
            if let Some(v) = v {
                let values: Vec<String> = v.iter().map(|x| fmt(*x)).collect();
                joined.push(format!("--{k}={}", values.join(",")).into());
            }
        }
    }
    match &d.indices {
        Some(Indices::List(v)) => flag("indices", v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",").into()),
        Some(Indices::Text(t)) => flag("indices", t.into()),
        None => {}
    }
    if let Some(k) = d.random {
        flag("random", k.to_string().into());
        flag("select-seed", d.random_seed.unwrap_or(0).to_string().into());
    }
    if let Some(n) = d.limit {
        flag("limit", n.to_string().into());
    }
    let m = &c.method;
    flag("method", m.name.as_str().into());
    if let Some(n) = &m.norm {
        flag("norm", n.flag().unwrap_or("inf").into());
    }
    if let Some(e) = &m.eps {
        flag("eps", fmt(e.value().map_err(anyhow::Error::msg)?).into());
    }
    let radii = c.report_radii();
    if !radii.is_empty() {
        flag("radii", radii.iter().map(|r| fmt(*r)).collect::<Vec<_>>().join(",").into());
    }
    argv.append(&mut joined);
    if let Some([lo, hi]) = m.clip {
        argv.extend(["--clip".into(), fmt(lo).into(), fmt(hi).into()]);
    }
    let mut flag = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            argv.push(format!("--{k}").into());
            argv.push(v.into());
        }
    };
    flag("attack", m.attack.map(|x| if x == AttackName::Pgd { "pgd" } else { "none" }.to_string()));
    flag("attack-steps", m.attack_steps.map(|v| v.to_string()));
    flag("attack-restarts", m.attack_restarts.map(|v| v.to_string()));
    flag("attack-seed", m.attack_seed.map(|v| v.to_string()));
    flag("sigma", m.sigma.map(fmt));
    flag("n0", m.n0.map(|v| v.to_string()));
    flag("n", m.n.map(|v| v.to_string()));
    flag("alpha", m.alpha.map(fmt));
    flag("seed", m.seed.map(|v| v.to_string()));
    flag("noise", m.noise.map(|x| if x == NoiseName::Sound { "sound" } else { "gaussian" }.to_string()));
    for k in &criteria {
        flag("criteria", Some(k.to_text()));
    }
    if c.data.class_names.is_some() {
        // Otherwise certify takes the source's own names, as resolved above.
        flag("class-names", Some(class_names.join(",")));
    }
    flag("signer", c.output.signer.clone());
    flag("threads", a.threads.or(c.threads).map(|v| v.to_string()));
    flag("key", Some(key.path.display().to_string()));
    flag("out", Some(c.output.certificate.display().to_string()));
    // The journal of an interrupted earlier run: continued with `resume = true` (certify checks it
    // is this exact run), else discarded.
    argv.push(if c.output.resume.unwrap_or(false) { "--resume" } else { "--force" }.into());
    if m.name == MethodName::Smoothing && m.norm.is_none() {
        argv.extend(["--norm".into(), "2".into()]);
    }

    let run = <CertifyCommandLine as clap::Parser>::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("the configuration does not make a valid certify run: {}", e.render()))?
        .certify;
    let Finished::Signed(Signed { statement, paths, key: signing_key, .. }) =
        certify_cmd::certify_batch(&run.args, &run.batch).context("certification failed")?
    else {
        bail!("internal error: certify ran a shard, the gate needs the whole run");
    };
    drop(key.temp);

    let report = GateReport::from_statement(
        a.config.clone(),
        &names,
        &statement,
        paths.envelope.clone(),
        paths.bundle.clone(),
        Signing { signed: key.real, keyid: signing_key.public_key().keyid().to_string(), source: key.source },
        t0.elapsed().as_secs_f64(),
        cert::rfc3339(started),
    )?;
    for line in report.summary_lines() {
        say(&line);
    }
    if let Some(p) = junit_path.as_ref() {
        write_file(p, junit::render(&report).as_bytes())?;
        say(&format!("  junit {}", p.display()));
    }
    if let Some(p) = &json_path {
        write_file(p, (serde_json::to_string_pretty(&report.to_json())? + "\n").as_bytes())?;
        say(&format!("  json {}", p.display()));
    }
    if statement.predicate.acceptance.verdict != if report.passed() { "PASS" } else { "FAIL" } {
        // Cannot happen (both read the same records); refuse rather than report a split verdict.
        bail!("internal error: the certificate's verdict disagrees with the thresholds");
    }
    Ok(if report.passed() { Outcome::Ok } else { Outcome::Failed })
}

/// Prints a line; a closed stdout (`check | head`) must not turn a verdict into a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// f64 as the shortest text that parses back to the same value.
fn fmt(v: f64) -> String {
    format!("{v}")
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The class names of the data (index = label): `data.class_names`, else the source's own when a
/// threshold names a class slice (so `class:NAME` and `class:INDEX` resolve to the certificate's
/// slice names), else none. Also a clear early error for a missing source.
fn class_names(c: &GateConfig) -> anyhow::Result<Vec<String>> {
    let d = &c.data;
    let file = crate::data::dataset::ArrayRef::parse(&d.source).path;
    if !Path::new(&d.source).exists() && !file.exists() {
        bail!("data.source {}: no such file or directory", d.source);
    }
    if let Some(names) = &d.class_names {
        return Ok(names.clone());
    }
    if !c.thresholds.iter().any(|t| t.slice.as_deref().is_some_and(|s| s.starts_with("class:"))) {
        return Ok(vec![]);
    }
    let opts = LoadOptions {
        labels: d.labels.clone(),
        split: d.split.clone().unwrap_or_else(|| "test".into()),
        channels: d.channels.unwrap_or(3),
        preprocess: None,
        class_names: None,
    };
    let data: Dataset =
        Dataset::load(&d.source, &opts).with_context(|| format!("cannot load data.source {}", d.source))?;
    Ok(data.class_names.unwrap_or_default())
}

/// The key certify signs with, where it came from, and the temporary files to delete after.
struct Key {
    path: PathBuf,
    /// A key the user configured (false: a throw-away key, discarded after signing).
    real: bool,
    source: String,
    temp: Option<TempDir>,
}

/// A private temporary directory, removed on drop (keys must not outlive the run).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("robustcert-check-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn signing_key(a: &Args, c: &GateConfig) -> anyhow::Result<Key> {
    let env = std::env::var(KEY_ENV).ok().filter(|v| !v.trim().is_empty());
    let given = match (&a.key, env, &c.output.key) {
        (Some(k), _, _) => Some((k.clone(), "--key".to_string(), None)),
        (None, Some(v), _) if v.trim_start().starts_with("-----BEGIN") => {
            // The PEM text itself (a CI secret): hand it to certify through a private file.
            let dir = TempDir::new()?;
            let path = dir.0.join("key.pem");
            write_private(&path, v.as_bytes())?;
            Some((path, format!("${KEY_ENV} (PEM text)"), Some(dir)))
        }
        (None, Some(v), _) => Some((PathBuf::from(v), format!("${KEY_ENV}"), None)),
        (None, None, Some(k)) => Some((k.clone(), "output.key".to_string(), None)),
        (None, None, None) => None,
    };
    if let Some((path, source, temp)) = given {
        cert::SigningKey::read(&path)
            .with_context(|| format!("cannot load the signing key from {source} ({})", path.display()))?;
        let source = if temp.is_some() { source } else { format!("{source} {}", path.display()) };
        return Ok(Key { path, real: true, source, temp });
    }
    if c.signing_required() {
        bail!(
            "no signing key: pass --key KEY.pem, set ${KEY_ENV} (a path or the PEM text), or set output.key in {}; \
             to run the gate without signing set output.sign = false (create a key with `robustcert keygen --out DIR`)",
            a.config.display()
        );
    }
    // sign = false and no key: certify always signs, so seal with a throw-away key and discard
    // it at once. The signature then attests nothing, and every report says so.
    let dir = TempDir::new()?;
    let files = cert::write_keypair(&dir.0, Algorithm::EcdsaP256Sha256).context("cannot make a throw-away key")?;
    Ok(Key {
        path: files.private_key,
        real: false,
        source: "output.sign = false and no key given: the certificate carries a signature by a throw-away key that \
                 was discarded, so it attests nothing (configure a key to sign)"
            .to_string(),
        temp: Some(dir),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))
}
