//! The invariants of ARCHITECTURE.md that can be checked by reading the source, checked by
//! reading the source (as rust-analyzer's `tidy` does). Each rule names the files allowed to
//! break it; a violation names the file, the line and the rule it breaks.

use std::path::{Path, PathBuf};

use regex::Regex;

/// One rule: a pattern no code line may contain outside the allowed paths.
struct Rule {
    /// The invariant, as ARCHITECTURE.md words it.
    name: &'static str,
    pattern: &'static str,
    /// Path prefixes (relative to the crate root) where the pattern is allowed.
    allowed: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        name: "only `workmail` calls the SDK or converts its types",
        pattern: r"\b(aws_sdk_\w+|aws_config|aws_smithy_\w+|aws_credential_types|aws_types|aws_sigv4|aws_runtime)\b",
        allowed: &["src/workmail.rs"],
    },
    Rule {
        name: "the daemon reads the wall clock only through `clock::Clock`",
        pattern: r"\b(Utc|Local|SystemTime)::now\b",
        allowed: &["src/clock.rs", "src/cli/", "src/sim/"],
    },
    Rule {
        name: "only `cli` prints to stdout",
        pattern: r"\b(print|println|dbg)!|\bstdout\(\)|clippy::print_stdout",
        allowed: &["src/cli/"],
    },
    Rule {
        name: "only `cli` and `main` write to stderr outside the logs",
        pattern: r"\b(eprint|eprintln)!|\bstderr\(\)",
        allowed: &["src/cli/", "src/main.rs"],
    },
    Rule {
        name: "the daemon's pipeline does not depend on `sim`",
        pattern: r"\bcrate::sim\b|^\s*use\s+sim\b|\bsim::",
        allowed: &["src/sim/", "src/cli/", "src/lib.rs"],
    },
    Rule {
        name: "only `std::sync::Mutex` is used, for short critical sections",
        pattern: r"\btokio::sync::(Mutex|RwLock)\b|\bRwLock\b",
        allowed: &[],
    },
    Rule {
        name: "every long-lived task of the daemon is spawned in `app`",
        pattern: r"\btokio::spawn\b|\btokio::task::spawn\b",
        allowed: &["src/app.rs", "src/sim/", "src/cli/"],
    },
];

/// The one deleting call, and the one place it may be made.
const DELETE_CALL: &str = ".delete_personal_access_token()";
const DELETE_CALL_HOME: &str = "src/workmail.rs";

#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    rule: &'static str,
    text: String,
}

/// The violations in one file, given its path relative to the crate root.
fn check(path: &str, source: &str, rules: &[(Regex, &Rule)]) -> Vec<Violation> {
    let mut found = Vec::new();
    for (n, line) in code_lines(source) {
        for (re, rule) in rules {
            if re.is_match(&line) && !rule.allowed.iter().any(|a| path.starts_with(a)) {
                found.push(Violation {
                    file: path.to_owned(),
                    line: n,
                    rule: rule.name,
                    text: line.trim().to_owned(),
                });
            }
        }
    }
    found
}

/// The lines that hold code, numbered from 1, with the text of string literals blanked:
/// comments (line and doc comments) are prose, and strings are data (a log filter may name
/// a crate); either may name anything.
fn code_lines(source: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    source.lines().enumerate().filter_map(|(i, line)| {
        let code = blank_strings(line);
        // Strings are blank, so a `//` left ("http://…" was a string) starts a comment.
        let code = code.find("//").map_or(code.as_str(), |at| &code[..at]);
        (!code.trim().is_empty()).then(|| (i + 1, code.to_owned()))
    })
}

/// `line` with every character inside a `"…"` literal replaced by a space (escapes
/// included). A `'"'` char literal opens no string.
fn blank_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    out.push(' ');
                    if chars.next().is_some() {
                        out.push(' ');
                    }
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => out.push(' '),
            }
        } else if c == '\'' && chars.peek() == Some(&'"') {
            out.push_str("' '");
            chars.next();
            chars.next_if_eq(&'\'');
        } else {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

fn compiled() -> Vec<(Regex, &'static Rule)> {
    RULES
        .iter()
        .map(|r| (Regex::new(r.pattern).unwrap(), r))
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn the_source_keeps_the_architecture_invariants() {
    let rules = compiled();
    let violations: Vec<String> = crate_sources()
        .iter()
        .flat_map(|(path, source)| check(path, source, &rules))
        .map(|v| format!("{}:{}: {}\n    {}", v.file, v.line, v.rule, v.text))
        .collect();
    assert!(
        violations.is_empty(),
        "ARCHITECTURE.md invariants broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_workmail_makes_the_deleting_call() {
    let calls: Vec<(String, usize)> = crate_sources()
        .iter()
        .flat_map(|(path, source)| {
            code_lines(source)
                .filter(|(_, line)| line.contains(DELETE_CALL))
                .map(|(n, _)| (path.clone(), n))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "`{DELETE_CALL}` must be made exactly once, in {DELETE_CALL_HOME}: {calls:?}"
    );
    assert_eq!(calls[0].0, DELETE_CALL_HOME);
}

#[test]
fn each_rule_catches_what_it_names() {
    let rules = compiled();
    let samples = [
        ("src/scan.rs", "use aws_sdk_workmail::Client;"),
        ("src/app.rs", "let c: aws_config::SdkConfig = todo!();"),
        ("src/policy.rs", "let now = chrono::Utc::now();"),
        ("src/state.rs", "let t = std::time::SystemTime::now();"),
        ("src/report.rs", "println!(\"{x}\");"),
        ("src/server.rs", "#![allow(clippy::print_stdout)]"),
        ("src/status.rs", "let out = std::io::stdout();"),
        ("src/cleanup.rs", "eprintln!(\"oops\");"),
        ("src/app.rs", "use crate::sim::SimServer;"),
        ("src/scan.rs", "let w = sim::world::generate(&spec);"),
        ("src/render.rs", "let m = tokio::sync::Mutex::new(0);"),
        ("src/state.rs", "let m = std::sync::RwLock::new(0);"),
        ("src/cleanup.rs", "tokio::spawn(async {});"),
    ];
    for (path, line) in samples {
        assert_eq!(
            check(path, line, &rules).len(),
            1,
            "{path}: `{line}` should break exactly one rule"
        );
    }
    let allowed = [
        ("src/workmail.rs", "use aws_sdk_workmail::Client;"),
        ("src/clock.rs", "Clock::System => Utc::now(),"),
        ("src/cli/output.rs", "println!(\"{x}\");"),
        ("src/main.rs", "eprintln!(\"error: {e:#}\");"),
        ("src/cli/commands.rs", "use crate::sim::SimServer;"),
        (
            "src/scan.rs",
            "// aws_sdk_workmail pages with NextToken; Utc::now() is not used",
        ),
        ("src/scan.rs", "/// Like `println!`, but not."),
        (
            "src/server.rs",
            "let url = \"http://x//y\"; // not println!",
        ),
        ("src/scan.rs", "let simple = optimism::value();"),
        (
            "src/cli/mod.rs",
            "const LOG: &str = \"info,aws_config::imds=error\";",
        ),
        (
            "src/status.rs",
            "'\"' => out.push_str(\"&quot;\"), // eprintln!",
        ),
        ("src/report.rs", "let q = \"say \\\"println!\\\" here\";"),
    ];
    for (path, line) in allowed {
        assert_eq!(
            check(path, line, &rules),
            vec![],
            "{path}: `{line}` breaks no rule"
        );
    }
}
