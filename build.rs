#![allow(clippy::print_stdout)]
//! Build information for `workmail_pat_monitor_build_info`: the git commit the binary was
//! built from (`unknown` outside a git checkout) and the compiler's version.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let revision = std::env::var("WORKMAIL_PAT_MONITOR_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WORKMAIL_PAT_MONITOR_REVISION={revision}");
    println!("cargo:rustc-env=WORKMAIL_PAT_MONITOR_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=WORKMAIL_PAT_MONITOR_REVISION");
    // A new commit changes HEAD (a branch) or the ref it points to.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
