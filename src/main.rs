//! The `robustcert` binary: parse arguments, run, map the outcome to an exit code
//! (0 success, 1 failed check or refuted property, 2 error).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    robustcert::cli::end_quietly_on_closed_pipe();
    let cli = robustcert::cli::Cli::parse();
    match robustcert::cli::run(cli) {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
