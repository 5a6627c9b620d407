//! The floors of the house, checked: within the `gmm_stream` library each
//! top-level module uses only the modules below it ([`FLOORS`]), and no crate of
//! the workspace (the library, the binary, gmm-io, gmm-model) has an import cycle
//! between its files. Between crates Cargo itself refuses cycles and wrong-way
//! dependencies; within a crate the compiler does not, so this test reads the
//! sources. `docs/architecture.md` draws the same floors.
//!
//! A reference is any path starting with `crate::`, `super::` or `self::` (in
//! `use` declarations and in code, `{...}` groups included), outside comments and
//! string literals. It counts as a dependency on the deepest module file its path
//! names. References between a module and its own submodules are not edges (a
//! `mod.rs` declaring its children, the children using their parent's types).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The library's top-level modules, bottom floor first, each with the modules it
/// may use.
const FLOORS: &[(&str, &[&str])] = &[
    ("telemetry", &[]),
    ("kafka", &[]),
    ("sink", &["telemetry", "kafka"]),
    ("state_topic", &["telemetry", "kafka", "sink"]),
    ("source", &["telemetry", "kafka", "state_topic"]),
    ("config", &["source"]),
    ("http", &["telemetry", "sink"]),
    ("plan", &["config", "source", "sink", "http", "state_topic"]),
    (
        "daemon",
        &[
            "telemetry",
            "kafka",
            "sink",
            "state_topic",
            "source",
            "config",
            "plan",
            "http",
        ],
    ),
];

type Module = Vec<String>;

/// One crate's module files: module path (empty for the root) -> file.
fn modules(root: &Path, skip: &[String]) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("an entry").path();
            let rel = path.strip_prefix(root).expect("below the root");
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            if skip
                .iter()
                .any(|s| rel_text == *s || rel_text.starts_with(&format!("{s}/")))
            {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if rel_text.ends_with(".rs") {
                let mut parts: Vec<String> = rel_text
                    .trim_end_matches(".rs")
                    .split('/')
                    .map(String::from)
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    parts.clear();
                }
                found.insert(parts, path);
            }
        }
    }
    found
}

/// The source without comments, string and character literals (replaced by
/// spaces, so that line numbers stay).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let blank = |s: &[u8], out: &mut String| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let after_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            find(rest, b"*/", 2).map_or(rest.len(), |j| j + 2)
        } else if rest[0] == b'r' && !after_ident && raw_string_hashes(rest).is_some() {
            let hashes = raw_string_hashes(rest).unwrap_or(0);
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            find(rest, &close, 2 + hashes).map_or(rest.len(), |j| j + close.len())
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == b'\'' {
            char_literal_len(rest).unwrap_or(0)
        } else {
            0
        };
        if end == 0 {
            out.push(b[i] as char);
            i += 1;
        } else {
            blank(&rest[..end], &mut out);
            i += end;
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len() - 1)).find(|&j| hay[j..].starts_with(needle))
}

/// `r"` or `r#..#"`: the number of hashes.
fn raw_string_hashes(rest: &[u8]) -> Option<usize> {
    let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
    (rest.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// `'x'`, `'\n'`, `'\u{..}'` (not a lifetime `'a`).
fn char_literal_len(rest: &[u8]) -> Option<usize> {
    if rest.get(1) == Some(&b'\\') {
        let close = rest.iter().skip(2).position(|&c| c == b'\'')?;
        return Some(close + 3);
    }
    let text = std::str::from_utf8(&rest[1..rest.len().min(6)]).ok()?;
    let c = text.chars().next()?;
    (rest.get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<(Token, usize)> {
    let b = code.as_bytes();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Token::Ident(code[start..i].to_string()), line));
        } else if b[i..].starts_with(b"::") {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            let token = match c {
                b'{' => Token::Open,
                b'}' => Token::Close,
                b',' => Token::Comma,
                _ => Token::Other,
            };
            out.push((token, line));
            i += 1;
        }
    }
    out
}

/// The paths a `{...}` group starting at `tokens[at]` names, each as its leading
/// identifiers; returns them and the index just past the group.
fn group(tokens: &[(Token, usize)], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut paths = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut taking = true;
    at += 1;
    while at < tokens.len() {
        match &tokens[at].0 {
            Token::Ident(name) if name == "as" => taking = false,
            Token::Ident(name) if taking && name != "self" => current.push(name.clone()),
            Token::Ident(_) => {}
            Token::PathSep => {}
            Token::Open => {
                // A nested group: its paths continue this one.
                let (inner, next) = group(tokens, at);
                for p in inner {
                    paths.push(current.iter().cloned().chain(p).collect());
                }
                current.clear();
                taking = false;
                at = next;
                continue;
            }
            Token::Comma => {
                paths.push(std::mem::take(&mut current));
                taking = true;
            }
            Token::Close => {
                paths.push(current);
                return (paths, at + 1);
            }
            _ => taking = false,
        }
        at += 1;
    }
    (paths, at)
}

/// Every module path referenced by the file of module `module`, with its line.
fn references(source: &str, module: &[String]) -> Vec<(Vec<String>, usize)> {
    let tokens = tokens(&code_only(source));
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (Token::Ident(first), line) = &tokens[i] else {
            i += 1;
            continue;
        };
        let preceded = i > 0 && tokens[i - 1].0 == Token::PathSep;
        if preceded || !matches!(first.as_str(), "crate" | "super" | "self") {
            i += 1;
            continue;
        }
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        };
        let mut j = i + 1;
        let mut rest = Vec::new();
        let mut named = false;
        while j + 1 < tokens.len() && tokens[j].0 == Token::PathSep {
            match &tokens[j + 1].0 {
                Token::Ident(s) if s == "super" && rest.is_empty() => {
                    base.pop();
                }
                Token::Ident(s) => rest.push(s.clone()),
                Token::Open => {
                    let (paths, next) = group(&tokens, j + 1);
                    for p in paths {
                        let full = base.iter().chain(&rest).chain(&p).cloned().collect();
                        found.push((full, *line));
                    }
                    j = next;
                    named = false;
                    break;
                }
                _ => break,
            }
            named = true;
            j += 2;
        }
        if named {
            found.push((base.into_iter().chain(rest).collect(), *line));
        }
        i = j.max(i + 1);
    }
    found
}

/// The deepest module that `path` names.
fn resolve(path: &[String], modules: &BTreeMap<Module, PathBuf>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains_key(m))
        .unwrap_or_default()
}

/// Dependencies between the files of one crate: module -> (module -> where).
fn file_graph(
    modules: &BTreeMap<Module, PathBuf>,
) -> BTreeMap<Module, BTreeMap<Module, (PathBuf, usize)>> {
    let mut graph: BTreeMap<Module, BTreeMap<Module, (PathBuf, usize)>> = BTreeMap::new();
    for (module, file) in modules {
        let source = std::fs::read_to_string(file).expect("a readable source file");
        for (path, line) in references(&source, module) {
            let target = resolve(&path, modules);
            let related = target.starts_with(module) || module.starts_with(&target);
            if !related {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert((file.clone(), line));
            }
        }
    }
    graph
}

/// The cycles of a graph (its strongly connected components of more than one
/// node), by Tarjan's algorithm.
fn cycles<N: Ord + Clone, E>(graph: &BTreeMap<N, BTreeMap<N, E>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        found: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone, E>(v: &N, g: &BTreeMap<N, BTreeMap<N, E>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(v.clone(), i);
        s.low.insert(v.clone(), i);
        s.stack.push(v.clone());
        for w in g.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v.clone(), low);
            } else if s.stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, graph, &mut state);
        }
    }
    state.found
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The crates of the workspace: name, source root, what to leave out (the files
/// of the other crate that shares `src/`).
fn crates() -> Vec<(&'static str, PathBuf, Vec<String>)> {
    let r = root();
    let binary: Vec<String> = vec!["main.rs".into(), "cli".into()];
    let library: Vec<String> = std::fs::read_dir(r.join("src"))
        .expect("src")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| !binary.contains(name))
        .collect();
    vec![
        ("gmm_stream", r.join("src"), binary),
        ("the gmm-stream binary", r.join("src"), library),
        ("gmm_io", r.join("crates/gmm-io/src"), vec![]),
        ("gmm_model", r.join("crates/gmm-model/src"), vec![]),
    ]
}

#[test]
fn every_library_module_uses_only_the_floors_below_it() {
    let (_, src, skip) = &crates()[0];
    let modules = modules(src, skip);
    let allowed: BTreeMap<&str, &[&str]> = FLOORS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, uses) in file_graph(&modules) {
        let Some(top) = module.first() else { continue };
        let Some(below) = allowed.get(top.as_str()) else {
            wrong.push(format!("{top}: not in FLOORS; give it its floor"));
            continue;
        };
        for (target, (file, line)) in uses {
            let Some(used) = target.first() else { continue };
            if used != top && !below.contains(&used.as_str()) {
                wrong.push(format!(
                    "{}:{line}: {top} uses {used}, which is not below it",
                    file.display()
                ));
            }
        }
    }
    for top in modules.keys().filter_map(|m| m.first()) {
        if !allowed.contains_key(top.as_str()) {
            wrong.push(format!("{top}: not in FLOORS; give it its floor"));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "wrong-way imports:\n{}", wrong.join("\n"));
}

#[test]
fn no_crate_has_an_import_cycle_between_its_files() {
    let mut found = Vec::new();
    for (name, src, skip) in crates() {
        let graph = file_graph(&modules(&src, &skip));
        for cycle in cycles(&graph) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            found.push(format!("{name}: {}", names.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_the_references_it_should() {
    let module: Vec<String> = vec!["daemon".into(), "output".into()];
    let source = r#"
        use crate::sink::{Sink, scores::ScoreRecord};
        use super::DaemonError; // crate::http in a comment
        let s = "crate::plan in a string";
        fn f<'a>(x: &'a str) -> char { let _ = crate::telemetry::metrics::handle(); 'c' }
        use self::inner::Thing;
        /* crate::config */
    "#;
    let mut refs: Vec<String> = references(source, &module)
        .into_iter()
        .map(|(p, _)| p.join("::"))
        .collect();
    refs.sort();
    assert_eq!(
        refs,
        [
            "daemon::DaemonError",
            "daemon::output::inner::Thing",
            "sink::Sink",
            "sink::scores::ScoreRecord",
            "telemetry::metrics::handle",
        ]
    );
    let mut graph: BTreeMap<&str, BTreeMap<&str, ()>> = BTreeMap::new();
    graph.entry("a").or_default().insert("b", ());
    graph.entry("b").or_default().insert("c", ());
    assert!(cycles(&graph).is_empty());
    graph.entry("c").or_default().insert("a", ());
    assert_eq!(cycles(&graph).len(), 1);
}
