//! `generate`: shell completions and the man page, produced from the clap definitions.

use crate::support::output_of;

const SUBCOMMANDS: &[&str] = &[
    "run",
    "once",
    "check-config",
    "demo",
    "sim",
    "report",
    "generate",
];

async fn generate(args: &[&str]) -> String {
    let out = output_of(
        "generate",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"))
            .arg("generate")
            .args(args),
    )
    .await;
    assert!(
        out.status.success(),
        "generate {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("generated text is UTF-8")
}

#[tokio::test]
async fn completions_know_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = generate(&["completions", shell]).await;
        for word in SUBCOMMANDS.iter().chain(&[
            "config",
            "expiring-within",
            "web.config.file",
            "also-region",
        ]) {
            assert!(text.contains(word), "{shell} completions lack {word:?}");
        }
    }
}

#[tokio::test]
async fn the_bash_completions_are_valid_bash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workmail-pat-monitor.bash");
    std::fs::write(&file, generate(&["completions", "bash"]).await).unwrap();
    let out = output_of(
        "bash -n",
        tokio::process::Command::new("bash").arg("-n").arg(&file),
    )
    .await;
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_man_page_is_roff_and_lists_every_command() {
    let text = generate(&["man"]).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with(".TH workmail-pat-monitor 1")),
        "no .TH header:\n{text}"
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(text.contains(section), "man page lacks {section}");
    }
    for cmd in SUBCOMMANDS {
        // roff escapes the hyphen.
        let escaped = cmd.replace('-', "\\-");
        assert!(
            text.contains(&format!("workmail\\-pat\\-monitor\\-{escaped}(1)")),
            "man page does not list {cmd}"
        );
    }
}
