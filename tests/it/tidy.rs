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
    /// Whether the pattern looks inside string literals too (format strings).
    in_strings: bool,
    /// Path prefixes (relative to the crate root) where the pattern is allowed.
    allowed: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        name: "only `workmail` calls the SDK or converts its types",
        pattern: r"\b(aws_sdk_\w+|aws_config|aws_smithy_\w+|aws_credential_types|aws_types|aws_sigv4|aws_runtime)\b",
        in_strings: false,
        allowed: &["src/workmail.rs"],
    },
    Rule {
        name: "the daemon reads the wall clock only through `clock::Clock`",
        pattern: r"\b(Utc|Local|SystemTime)::now\b",
        in_strings: false,
        allowed: &["src/clock.rs", "src/cli/", "src/sim/"],
    },
    Rule {
        name: "only `cli` prints to stdout",
        pattern: r"\b(print|println|dbg)!|\bstdout\(\)|clippy::print_stdout",
        in_strings: false,
        allowed: &["src/cli/"],
    },
    Rule {
        name: "only `cli` and `main` write to stderr outside the logs",
        pattern: r"\b(eprint|eprintln)!|\bstderr\(\)",
        in_strings: false,
        allowed: &["src/cli/", "src/main.rs"],
    },
    Rule {
        name: "the daemon's pipeline does not depend on `sim`",
        pattern: r"\bcrate::sim\b|^\s*use\s+sim\b|\bsim::",
        in_strings: false,
        allowed: &["src/sim/", "src/cli/", "src/lib.rs"],
    },
    Rule {
        name: "only `std::sync::Mutex` is used, for short critical sections",
        pattern: r"\btokio::sync::(Mutex|RwLock)\b|\bRwLock\b",
        in_strings: false,
        allowed: &[],
    },
    Rule {
        name: "errors reach people as their chain of messages, never in `Debug` form",
        pattern: r"\{(e|err|error|source|cause):#?\?\}|\b(e|err|error|source)\s*=\s*\?\w",
        // `ApiError::detail`, for DEBUG logs; the emulator's own diagnostics.
        in_strings: true,
        allowed: &["src/workmail.rs", "src/sim/"],
    },
    Rule {
        name: "every long-lived task of the daemon is spawned in `app`",
        pattern: r"\btokio::spawn\b|\btokio::task::spawn\b",
        in_strings: false,
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

/// The violations in one file, given its path relative to the crate root. The rules are about
/// the daemon's code: a file's `#[cfg(test)]` module (always its end) is not checked.
fn check(path: &str, source: &str, rules: &[(Regex, &Rule)]) -> Vec<Violation> {
    let mut found = Vec::new();
    let production = code_lines(source).take_while(|l| l.code.trim() != "#[cfg(test)]");
    for line in production {
        for (re, rule) in rules {
            let text = if rule.in_strings {
                line.with_strings
            } else {
                &line.code
            };
            if re.is_match(text) && !rule.allowed.iter().any(|a| path.starts_with(a)) {
                found.push(Violation {
                    file: path.to_owned(),
                    line: line.number,
                    rule: rule.name,
                    text: line.with_strings.trim().to_owned(),
                });
            }
        }
    }
    found
}

/// A line of code, comments cut off.
struct CodeLine<'a> {
    /// From 1.
    number: usize,
    /// With the text of string literals blanked: strings are data (a log filter may name a
    /// crate).
    code: String,
    /// With string literals as written (format strings matter to some rules).
    with_strings: &'a str,
}

/// The lines that hold code. Comments (line and doc comments) are prose and may name
/// anything.
fn code_lines(source: &str) -> impl Iterator<Item = CodeLine<'_>> {
    source.lines().enumerate().filter_map(|(i, line)| {
        let mut code = blank_strings(line);
        // Strings are blank, so a `//` left ("http://…" was a string) starts a comment.
        let end = code.find("//").unwrap_or(code.len());
        code.truncate(end);
        (!code.trim().is_empty()).then(|| CodeLine {
            number: i + 1,
            code,
            with_strings: &line[..end],
        })
    })
}

/// `line` with every character inside a `"…"` literal replaced by spaces (escapes included),
/// byte for byte, so offsets stay those of `line`. A `'"'` char literal opens no string.
fn blank_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    out.push(' ');
                    if let Some(escaped) = chars.next() {
                        out.push_str(&" ".repeat(escaped.len_utf8()));
                    }
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => out.push_str(&" ".repeat(c.len_utf8())),
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
                .filter(|l| l.code.contains(DELETE_CALL))
                .map(|l| (path.clone(), l.number))
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
        ("src/app.rs", "let c: aws_config::SdkConfig = loaded;"),
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
        ("src/cli/output.rs", "println!(\"failed: {e:?}\");"),
        ("src/app.rs", "tracing::warn!(error = ?e, \"scan failed\");"),
        ("src/report.rs", "let text = format!(\"{err:#?}\");"),
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
        ("src/workmail.rs", "let detail = format!(\"{e:?}\");"),
        (
            "src/app.rs",
            "tracing::warn!(error = %e, id = ?org.id, \"scan failed\");",
        ),
    ];
    let in_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    let t = Utc::now();\n}\n";
    assert_eq!(check("src/policy.rs", in_tests, &rules), vec![]);
    for (path, line) in allowed {
        assert_eq!(
            check(path, line, &rules),
            vec![],
            "{path}: `{line}` breaks no rule"
        );
    }
}
