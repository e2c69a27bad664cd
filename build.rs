//! Records the git commit the binary is built from as `ROBUSTCERT_GIT_COMMIT` (read by
//! `cert::Verifier::current` for the certificates' `verifier.gitCommit`). Never fails: without
//! git or a repository (a crates.io tarball, a vendored copy) the variable is simply not set,
//! and certificates say "unknown". A value already in the environment wins.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROBUSTCERT_GIT_COMMIT");
    if std::env::var("ROBUSTCERT_GIT_COMMIT").is_ok_and(|v| !v.trim().is_empty()) {
        return;
    }
    // `.git` is a directory in a clone and a file in a worktree.
    if !Path::new(".git").exists() {
        return;
    }
    let Some(commit) = git(&["rev-parse", "HEAD"]) else { return };
    if commit.len() < 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs.
    for p in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rustc-env=ROBUSTCERT_GIT_COMMIT={commit}");
}
