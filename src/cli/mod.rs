//! The command-line interface (clap, derive). Each subcommand lives in its own file: raw
//! arguments -> library calls -> printed result. `main.rs` only maps the outcome to an exit code.

mod bounds;
mod certify;
mod check;
mod check_cert;
mod demo;
mod inspect;
mod keygen;
mod merge;
mod predict;
mod smooth;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Certified robustness for ONNX classifiers.
#[derive(Debug, Parser)]
#[command(name = "robustcert", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a model's inputs, outputs, operators and parameter count.
    Inspect(inspect::Args),
    /// Run a model on inputs from a .npy/.npz file and print its outputs.
    Predict(predict::Args),
    /// Sound bounds on every output over an Lp ball around one input (IBP or CROWN).
    Bounds(bounds::BoundsArgs),
    /// The certified radius of a label around one input (bisection over bound propagation).
    Radius(bounds::RadiusArgs),
    /// Create a signing key pair for certificates (ECDSA P-256 by default, or Ed25519).
    Keygen(keygen::Args),
    /// Certify every input of a dataset (IBP, CROWN or randomized smoothing) and write a signed
    /// robustness certificate (DSSE envelope + Sigstore bundle); exit 1 when the criteria fail.
    Certify(certify::CertifyArgs),
    /// Combine the journals of `certify --shard I/N` runs into one signed certificate (the same as
    /// a single-machine run).
    Merge(merge::Args),
    /// Verify a signed robustness certificate: signature, key, and optionally model and data files.
    CheckCert(check_cert::Args),
    /// The CI gate: certify as robustcert.toml says, test its thresholds, write JUnit XML and JSON;
    /// exit 0 when every threshold holds, 1 when one fails, 2 on errors.
    Check(check::Args),
    /// Randomized smoothing (Cohen et al. 2019): certify an L2 radius for the smoothed classifier,
    /// predict with it, decide a target radius sequentially, or replay a recorded result.
    Smooth(smooth::Args),
    /// Decide a VNN-LIB property (sat / unsat / timeout / unknown on the first line of stdout):
    /// PGD falsification, CROWN, then branch and bound (input splitting for small inputs, else
    /// alpha-CROWN and ReLU splitting with beta-CROWN, with intermediate bounds refined by small
    /// branch and bounds per neuron when the first run leaves cases open). Exit 0 for any verdict.
    Verify(verify::Args),
    /// Run the bundled SYNTHETIC dermatology demo: certify with CROWN and randomized smoothing,
    /// sign both certificates and write an HTML report.
    Demo(demo::Args),
}

/// How a command ended, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success (exit 0).
    Ok,
    /// A check or gate failed, or a property was refuted (exit 1).
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    keep_freed_memory();
    match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Bounds(a) => bounds::run_bounds(a),
        Command::Radius(a) => bounds::run_radius(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Certify(a) => certify::run(a),
        Command::Merge(a) => merge::run(a),
        Command::CheckCert(a) => check_cert::run(a),
        Command::Check(a) => check::run(a),
        Command::Smooth(a) => smooth::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

/// The most worker threads `--threads` takes: each is an OS thread with its own stack, and
/// `--threads 100000` was still starting them, before any work, after 20 s.
pub(crate) const MAX_THREADS: usize = 1024;

/// Parses `--threads`: a whole number from 1 to [`MAX_THREADS`].
pub(crate) fn thread_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number of threads from 1 to {MAX_THREADS}")),
    }
}

/// Prints a value as one line of JSON.
pub(crate) fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// Prints a certificate's certified accuracy at each radius with its Clopper-Pearson interval.
pub(crate) fn print_certified_accuracy(p: &crate::cert::RobustnessPredicate) {
    for c in &p.results.aggregates.overall.certified_accuracy {
        println!(
            "  r = {:<8} certified accuracy {}/{} = {:.4}  [{:.4}, {:.4}] ({}% Clopper-Pearson)",
            c.radius,
            c.value.count,
            c.value.n,
            c.value.rate,
            c.value.lower,
            c.value.upper,
            p.statistics.interval_confidence * 100.0
        );
    }
}

/// Restores SIGPIPE's default action, so that `robustcert ... | head` ends quietly when the
/// reader closes the pipe, as other Unix tools do (Rust ignores SIGPIPE, and `println!` then
/// panics with "Broken pipe"). For the binary's `main` only: it changes the whole process.
pub fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default; called first thing in `main`,
    // before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Asks glibc's allocator to keep freed memory for reuse. Bound propagation allocates and
/// frees matrices of hundreds of kilobytes per pass, on every thread; by default glibc maps
/// such blocks fresh and hands trimmed memory back to the kernel, so each pass page-faults and
/// the threads wait on TLB shootdowns (15% of the time in the kernel on VNN-COMP's verivital
/// Convnet_avgpool). Measured there: 2561 -> 3457 subdomains in 60 s. A process-wide setting,
/// so the command line makes it, not the library.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        // Blocks below 32 MiB (glibc's largest setting) come from the heap...
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // ...and up to 1 GiB of free memory at its top stays mapped.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
