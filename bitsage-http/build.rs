//! Records the commit this crate is built from, for `bitsage_build_info{commit}` on
//! `/metrics`: `BITSAGE_GIT_COMMIT` from the environment when set (release pipelines, builds
//! outside a checkout), else `git rev-parse --short HEAD`; nothing when neither answers (the
//! metric then says `unknown`).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=BITSAGE_GIT_COMMIT");
    let commit = std::env::var("BITSAGE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    // Rebuild when HEAD moves (a commit, a checkout): HEAD itself and the ref it points at.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = PathBuf::from(dir);
        let mut watched = vec![dir.join("HEAD"), dir.join("packed-refs")];
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(dir.join(reference));
        }
        // A missing path would make cargo rerun this script on every build.
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(commit) = commit {
        // Only characters a label value and an environment variable carry safely.
        let commit: String = commit
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(40)
            .collect();
        println!("cargo:rustc-env=BITSAGE_GIT_COMMIT={commit}");
    }
}
