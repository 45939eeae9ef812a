//! Every eigenssl command the README and the guide show — in code blocks and in inline code — checked
//! against the binary, so that a renamed subcommand, flag or value fails here instead of leaving the
//! docs wrong.
//!
//! - A synopsis (`eigenssl verify <experiment>... [--profile P]`): the subcommand exists and each flag it
//!   names is in that subcommand's `--help`.
//! - A concrete command: it parses — the command with `--help` appended exits 0 (clap rejects an unknown
//!   argument or a bad value before it reaches `--help`).
//! - Then the commands that can run here, run, in an empty folder with the specs compiled into the binary:
//!   `DIR` (a dataset folder) becomes an empty folder, and a command that needs the data must refuse with
//!   exit 3 and say the data is missing; one that needs a GPU must refuse as this build does without one
//!   (`common::cuda_refusal`). Commands that need a cluster, git history, earlier runs or hours are parsed only
//!   (each one's class is in `class`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Files whose commands are checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("crates/candle-cpu-kernels/README.md")];
    let mut guide: Vec<PathBuf> = std::fs::read_dir("docs/src")
        .expect("docs/src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    guide.sort();
    files.extend(guide);
    files
}

/// A command as the docs show it, with where it is.
#[derive(Debug, Clone)]
struct DocCommand {
    place: String,
    text: String,
}

/// The eigenssl arguments of a shell line that runs eigenssl, without comments and what follows `&&`,
/// `|` or `;` (or, in a synopsis, the description after a run of spaces); `None` for other lines.
fn eigenssl_args(line: &str) -> Option<String> {
    let line = line.trim();
    let line = line.split("   ").next().unwrap_or(line);
    let rest = ["cargo run --release -- ", "./target/release/eigenssl ", "target/release/eigenssl ", "eigenssl "]
        .iter()
        .find_map(|prefix| line.strip_prefix(prefix))?;
    let mut cut = rest.len();
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '&' | '|' | ';' if !quoted && (c != '|' || rest[i..].starts_with("| ") || rest[i..].starts_with("||")) => {
                cut = i;
                break;
            }
            _ => {}
        }
    }
    let args = rest[..cut].trim().to_string();
    (!args.is_empty()).then_some(args)
}

/// Every command of the documents: lines of code blocks (a trailing `\` or an indented next line
/// continues one) and inline code spans.
fn documented_commands() -> Vec<DocCommand> {
    let mut found = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut in_block = false;
        let mut current: Option<(usize, String)> = None;
        let mut flush = |current: &mut Option<(usize, String)>, found: &mut Vec<DocCommand>| {
            if let Some((n, line)) = current.take() {
                if let Some(args) = eigenssl_args(&line) {
                    found.push(DocCommand { place: format!("{}:{n}", file.display()), text: args });
                }
            }
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                flush(&mut current, &mut found);
                in_block = !in_block;
                continue;
            }
            if in_block {
                let continues = current.as_ref().is_some_and(|(_, l)| l.ends_with('\\')) || (current.is_some() && line.starts_with("   ") && line.trim_start().starts_with('['));
                if continues {
                    let (_, l) = current.as_mut().expect("a command");
                    *l = format!("{} {}", l.trim_end_matches('\\').trim_end(), line.trim());
                } else {
                    flush(&mut current, &mut found);
                    current = Some((i + 1, line.to_string()));
                }
            } else {
                for (j, span) in line.split('`').enumerate() {
                    if j % 2 == 1 && span.contains(' ') {
                        if let Some(args) = eigenssl_args(span) {
                            found.push(DocCommand { place: format!("{}:{}", file.display(), i + 1), text: args });
                        }
                    }
                }
            }
        }
        flush(&mut current, &mut found);
    }
    found
}

/// Shell words: whitespace-separated, `"..."` one word without its quotes.
fn words(args: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in args.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// A synopsis shows placeholders and options instead of values.
fn is_synopsis(args: &str) -> bool {
    args.contains('<') || args.contains('[') || args.contains("...") || args.contains('|')
}

fn eigenssl(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eigenssl"));
    c.current_dir(cwd);
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Why a command is wrong, if it is: the subcommand and flags it names must exist and its arguments parse.
fn check_parses(args: &str, cwd: &Path) -> Result<(), String> {
    let words = words(args);
    let sub = words.first().ok_or("no subcommand")?;
    let help = eigenssl(cwd).args([sub.as_str(), "--help"]).output().map_err(|e| e.to_string())?;
    if !help.status.success() {
        return Err(format!("`eigenssl {sub} --help` fails: {}", text(&help)));
    }
    if is_synopsis(args) {
        let help = text(&help);
        for word in &words[1..] {
            let flag = word.trim_matches(|c| c == '[' || c == ']' || c == '.');
            let flag = flag.split('=').next().unwrap_or(flag);
            if flag.starts_with('-') && !help.split(|c: char| c.is_whitespace() || c == ',').any(|w| w == flag) {
                return Err(format!("`eigenssl {sub}` has no option {flag}"));
            }
        }
        return Ok(());
    }
    let parsed = eigenssl(cwd).args(&words).arg("--help").output().map_err(|e| e.to_string())?;
    if parsed.status.success() { Ok(()) } else { Err(text(&parsed)) }
}

/// What a concrete command can do here.
#[derive(Debug, PartialEq)]
enum Class {
    /// Needs a GPU: this build refuses `--device cuda` here as `common::cuda_refusal` says.
    NeedsGpu,
    /// Reads a dataset from `DIR`: with an empty folder it must refuse, exit 3.
    NeedsData,
    /// Runs here and must succeed, within seconds.
    Runs,
    /// Needs a cluster, git history, earlier runs, a browser's site folder or hours: parsed only.
    ParsedOnly,
}

fn class(args: &str) -> Class {
    let w = words(args);
    let has = |flag: &str| w.iter().any(|x| x == flag);
    if has("--executor") {
        Class::ParsedOnly // submits to Slurm
    } else if w.windows(2).any(|p| p[0] == "--device" && p[1].starts_with("cuda")) {
        Class::NeedsGpu
    } else if w.windows(2).any(|p| p[0] == "--data-dir" && p[1] == "DIR") {
        Class::NeedsData
    } else if matches!(w.as_slice(), [s, e] if s == "reproduce" && e == "fig1") || matches!(w.first().map(String::as_str), Some("list")) {
        Class::Runs
    } else {
        Class::ParsedOnly
    }
}

#[test]
fn the_docs_show_commands() {
    let commands = documented_commands();
    assert!(commands.len() >= 30, "found only {} commands: {commands:?}", commands.len());
    for expected in ["reproduce fig1", "compare --out /tmp/ci", "verify fig2 --profile paper --sample 6"] {
        assert!(commands.iter().any(|c| c.text == expected), "`{expected}` not found among {commands:#?}");
    }
}

#[test]
fn every_documented_command_parses() {
    let cwd = tempfile::tempdir().unwrap();
    let wrong: Vec<String> = documented_commands()
        .iter()
        .filter_map(|c| check_parses(&c.text, cwd.path()).err().map(|e| format!("{}: `{}`: {e}", c.place, c.text)))
        .collect();
    assert!(wrong.is_empty(), "documented commands that do not parse:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_catches_a_renamed_flag_a_bad_value_and_an_unknown_subcommand() {
    let cwd = tempfile::tempdir().unwrap();
    for broken in [
        "reproduce table1 --profile cpu --data-directory DIR",
        "reproduce table1 --device gpu",
        "reproduce fig1 --jobs 0",
        "verify <experiment>... [--profile P] [--samples k]",
        "reproduces fig1",
    ] {
        assert!(check_parses(broken, cwd.path()).is_err(), "`{broken}` passed the check");
    }
}

#[test]
fn documented_commands_that_need_data_or_a_gpu_refuse_here_and_the_others_run() {
    let cwd = tempfile::tempdir().unwrap();
    let empty = cwd.path().join("DIR");
    std::fs::create_dir(&empty).unwrap();
    let mut counts = [0usize; 3];
    for c in documented_commands().iter().filter(|c| !is_synopsis(&c.text)) {
        let (expected_code, needle, slot) = match class(&c.text) {
            Class::NeedsGpu => (common::cuda_refusal().0, common::cuda_refusal().1, 0),
            Class::NeedsData => (3, "data is missing", 1),
            Class::Runs => (0, "", 2),
            Class::ParsedOnly => continue,
        };
        let out = eigenssl(cwd.path()).args(words(&c.text)).output().unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(expected_code), "{}: `{}`:\n{said}", c.place, c.text);
        assert!(said.contains(needle), "{}: `{}` does not say '{needle}':\n{said}", c.place, c.text);
        counts[slot] += 1;
    }
    let [gpu, data, runs] = counts;
    assert!(gpu >= 1 && data >= 2 && runs >= 1, "refused for lack of a GPU {gpu}, of data {data}, ran {runs}");
}
