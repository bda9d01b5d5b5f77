//! The production coordinator carries no test harness: its dependency tree (what
//! `cargo build --release -p bitsage-coordinator` links) has no devnet harness and no Cairo
//! compiler, and the `devnet` feature is what brings them in (so this check can see them).

use std::process::Command;

/// `cargo tree` of the coordinator's normal and build dependencies, one `name vX [features]`
/// line per package.
fn tree(features: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--locked",
        "--offline",
        "-p",
        "bitsage-coordinator",
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p} [{f}]",
    ]);
    for f in features {
        cmd.args(["--features", f]);
    }
    let out = cmd.output().expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

/// The lines naming a devnet harness or a Cairo compiler crate.
fn harness_lines(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter(|l| {
            l.starts_with("cairo-lang")
                || (l.starts_with("bitsage-chain ") && l.contains("devnet"))
                || l.starts_with("starknet-devnet")
        })
        .collect()
}

#[test]
fn the_production_coordinator_has_no_devnet_or_cairo_compiler() {
    let production = tree(&[]);
    assert!(
        production.lines().any(|l| l.starts_with("bitsage-chain ")),
        "the tree lists the coordinator's crates:\n{production}"
    );
    let found = harness_lines(&production);
    assert!(
        found.is_empty(),
        "the production coordinator links test harness crates: {found:#?}"
    );
    // The check can see them: the `devnet` feature brings both in.
    let dev = tree(&["devnet"]);
    let found = harness_lines(&dev);
    assert!(
        found.iter().any(|l| l.starts_with("cairo-lang"))
            && found.iter().any(|l| l.starts_with("bitsage-chain ")),
        "with `devnet` the tree should show the harness and the Cairo compiler:\n{dev}"
    );
}
