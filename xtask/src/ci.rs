//! `cargo xtask ci`: the checks every change must pass, exactly as CI runs them.

use anyhow::Context;
use xshell::{Shell, cmd};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("cargo fmt found unformatted code (run `cargo fmt --all`)")?;
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --locked -- -D warnings"
    )
    .run()
    .context("cargo clippy reported warnings")?;
    cmd!(sh, "cargo test --workspace --locked")
        .run()
        .context("cargo test --workspace failed")?;
    Ok(())
}
