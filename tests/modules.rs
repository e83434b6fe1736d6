//! No module names a module that names it back (ARCHITECTURE.md): the crate's modules, read
//! from `src/`, with an edge from a module to every module whose items it names by path
//! (`crate::…`, `super::…`, `self::…`, or a child module's name), have no cycle. Its twin: the
//! same reading of a small tree with a cycle in it finds that cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path, `["daemon", "core"]`; the crate root is `[]`.
type Module = Vec<String>;

/// Every module of the tree under `src` (files and `mod.rs` directories; inline `mod` blocks
/// count as part of their file), with its source.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let mut module: Module = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            // main.rs is a crate of its own; a file not declared as a module is no module.
            if relative == Path::new("main.rs") {
                continue;
            }
            found.insert(module, fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The code of `source` without comments and string literals, where paths in prose would
/// otherwise count.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            // A char literal or a lifetime: skip a quoted char ('x', '\n'), keep lifetimes.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    out
}

/// The paths named in `code`: every run of identifiers joined by `::`, with its `{…}` groups
/// (`use a::{b, c::d}`) expanded; each with how many inline `mod name { … }` blocks of the
/// file enclose it (a `super::` there climbs within the file first).
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let bytes: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    // The inline depth at each position: `mod NAME {` opens one, its closing brace ends it.
    let mut depth_at = vec![0usize; bytes.len() + 1];
    let (mut braces, mut inline): (usize, Vec<usize>) = (0, Vec::new());
    let mut pending_mod = false;
    let mut i = 0;
    while i < bytes.len() {
        depth_at[i] = inline.len();
        let c = bytes[i];
        if ident(c) && (i == 0 || !ident(bytes[i - 1])) {
            let end = (i..bytes.len())
                .find(|&j| !ident(bytes[j]))
                .unwrap_or(bytes.len());
            let word: String = bytes[i..end].iter().collect();
            // `mod NAME {` opens an inline module; `mod NAME;` (a file module) does not.
            if word == "mod" {
                pending_mod = true;
            }
            for d in depth_at.iter_mut().take(end).skip(i) {
                *d = inline.len();
            }
            i = end;
            continue;
        }
        match c {
            '{' => {
                braces += 1;
                if pending_mod {
                    inline.push(braces);
                    pending_mod = false;
                }
            }
            '}' => {
                if inline.last() == Some(&braces) {
                    inline.pop();
                }
                braces = braces.saturating_sub(1);
            }
            ';' => pending_mod = false,
            _ => {}
        }
        i += 1;
    }
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut here = Vec::new();
        let depth = depth_at[i];
        i = read_path(&bytes, i, Vec::new(), &mut here);
        found.extend(here.into_iter().map(|p| (depth, p)));
    }
    found
}

/// Reads a path starting at `i` after `prefix`; pushes every full path; returns where it ended.
fn read_path(
    bytes: &[char],
    mut i: usize,
    mut prefix: Vec<String>,
    found: &mut Vec<Vec<String>>,
) -> usize {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    loop {
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        prefix.push(bytes[start..i].iter().collect());
        let mut j = i;
        while j < bytes.len() && bytes[j].is_whitespace() {
            j += 1;
        }
        if j + 1 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' {
            j += 2;
            while j < bytes.len() && bytes[j].is_whitespace() {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == '{' {
                // A group: each member continues the prefix.
                j += 1;
                loop {
                    while j < bytes.len() && (bytes[j].is_whitespace() || bytes[j] == ',') {
                        j += 1;
                    }
                    if j >= bytes.len() || bytes[j] == '}' {
                        return j + 1;
                    }
                    if ident(bytes[j]) {
                        j = read_path(bytes, j, prefix.clone(), found);
                    } else {
                        j += 1;
                    }
                }
            }
            if j < bytes.len() && ident(bytes[j]) {
                i = j;
                continue;
            }
            if prefix.len() > 1 {
                found.push(prefix);
            }
            return j;
        }
        if prefix.len() > 1 {
            found.push(prefix);
        }
        return i;
    }
}

/// Edges: module → the modules it names, other than itself.
fn edges(modules: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph = BTreeMap::new();
    for (module, source) in modules {
        let mut targets = BTreeSet::new();
        for (depth, path) in paths(&code_only(source)) {
            // Within an inline module, `super` (as many as it is deep) stays in the file.
            let climbs = path.iter().take_while(|s| *s == "super").count();
            if path[0] == "super" && climbs <= depth {
                continue;
            }
            let base: Module = match path[0].as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                "super" => {
                    let up = climbs - depth;
                    module[..module.len().saturating_sub(up)].to_vec()
                }
                first => {
                    let mut child = module.clone();
                    child.push(first.to_string());
                    if !modules.contains_key(&child) {
                        continue;
                    }
                    module.clone()
                }
            };
            let rest = match path[0].as_str() {
                "crate" | "self" | "super" => &path[1..],
                _ => &path[..],
            };
            // `super::super::…` was counted above.
            let segments: Vec<&String> = rest.iter().filter(|s| *s != "super").collect();
            // The deepest module the path goes through.
            let mut target = base.clone();
            for s in segments {
                let mut next = target.clone();
                next.push(s.clone());
                if modules.contains_key(&next) {
                    target = next;
                } else {
                    break;
                }
            }
            if &target != module && modules.contains_key(&target) {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// One cycle of the graph, as the modules on it, if there is one.
fn a_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    // Depth-first search keeping the path: a node met again on the path closes a cycle.
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|m| m == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn show(cycle: &[Module]) -> String {
    let name = |m: &Module| {
        if m.is_empty() {
            "crate".to_string()
        } else {
            m.join("::")
        }
    };
    let mut names: Vec<String> = cycle.iter().map(name).collect();
    names.push(name(&cycle[0]));
    names.join(" → ")
}

#[test]
fn no_module_names_a_module_that_names_it_back() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.len() > 20, "read {} modules", modules.len());
    let graph = edges(&modules);
    // The reading sees real edges: the shell names the core, and the Linux backend its raw calls.
    let daemon: Module = vec!["daemon".into()];
    assert!(
        graph[&daemon].contains(&vec!["daemon".to_string(), "core".to_string()]),
        "{:?}",
        graph[&daemon]
    );
    if let Some(cycle) = a_cycle(&graph) {
        panic!("a module cycle: {}", show(&cycle));
    }
}

#[test]
fn the_reading_finds_a_cycle_planted_in_a_tree() {
    let dir = std::env::temp_dir().join(format!("jaildaemon-modules-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("shell")).unwrap();
    fs::write(dir.join("lib.rs"), "pub mod shell;\npub mod wire;\n").unwrap();
    // The parent names a child's item, and the child its parent's: the cycle issue 21 found.
    fs::write(
        dir.join("shell/mod.rs"),
        "mod clients;\nuse clients::Client; // crate::wire::Nothing in a comment\n",
    )
    .unwrap();
    fs::write(
        dir.join("shell/clients.rs"),
        "use super::{Daemon, other};\nfn f() -> &'static str { \"crate::wire::X\" }\n",
    )
    .unwrap();
    // An inline test module's `use super::*` names its own file's module: no edge.
    fs::write(
        dir.join("wire.rs"),
        "pub struct Nothing;\nmod tests {\n    use super::*;\n}\n",
    )
    .unwrap();
    let graph = edges(&modules(&dir));
    let cycle = a_cycle(&graph).expect("the planted cycle is found");
    assert_eq!(show(&cycle), "shell → shell::clients → shell");
    // Neither the comment nor the string made an edge to `wire`.
    assert!(
        graph
            .values()
            .all(|t| !t.contains(&vec!["wire".to_string()]))
    );
    // Without the child's `use super::…`, no cycle.
    fs::write(dir.join("shell/clients.rs"), "pub struct Client;\n").unwrap();
    assert_eq!(a_cycle(&edges(&modules(&dir))), None);
    fs::remove_dir_all(&dir).unwrap();
}
