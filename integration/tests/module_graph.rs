//! No import cycles inside any crate of the workspace.
//!
//! The graph is one of **top-level modules** (what `lib.rs` declares: `src/x.rs`
//! and everything under `src/x/` is module `x`): an edge `a -> b` is a path in
//! a file of `a` that names `crate::b` (in a `use`, a `crate::{b, ..}` group
//! or inline) or reaches `b` through enough `super::`. References inside one
//! top-level module are not edges; the crate root (`lib.rs`) is not a node.
//! Test code is left out: `#[cfg(test)] mod x { .. }` blocks and the files of
//! `#[cfg(test)] mod x;` declarations. Comments are left out too.
//!
//! A cycle fails the test with the edges that form it and where each is
//! written. `ALLOWED` lists edges known to close a cycle in crates not yet
//! untangled; an entry that no longer exists fails the test too, so the list
//! only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges (crate directory, from, to) that may stay for now: each closes a
/// cycle that a later change untangles. Remove an entry when its edge goes.
/// The agent's `nodes` is being split (issue 24, item 3: an `ops` layer,
/// one shared `faults` state); every agent cycle today passes through these
/// four edges out of `nodes` (aptcache, metrics, reconcile -> nodes, and
/// reconcile -> joined_down -> nodes, are the direction that stays).
const ALLOWED: &[(&str, &str, &str)] = &[
    // nodes/driver/{lxc,mod}.rs: the apt cache's port helpers.
    ("agent", "nodes", "aptcache"),
    // nodes/mod.rs: node metrics recorded where nodes change.
    ("agent", "nodes", "metrics"),
    // nodes/ops/bridge.rs: bridge dumps and traces through the reconciler.
    ("agent", "nodes", "reconcile"),
    // faults/ moved beside nodes/ but nodes' lease file keeps faults'
    // records and nodes' operation stream dispatches fault operations; the
    // `ops` layer and leases inside faults/ (item 3) remove this edge.
    ("agent", "nodes", "faults"),
];

type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// This workspace, or the one `DCLAB_MODULE_GRAPH_ROOT` names (to check
/// another checkout, e.g. an older commit).
fn workspace() -> PathBuf {
    match std::env::var_os("DCLAB_MODULE_GRAPH_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf(),
    }
}

/// The member directories listed in the workspace's Cargo.toml.
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members").expect("a workspace members list");
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Source text without comments (line comments, doc comments) and without
/// test modules written inline.
fn without_tests_and_comments(text: &str) -> Vec<(usize, String)> {
    let mut lines = vec![];
    let mut skip_depth: Option<i32> = None;
    let mut pending_test = false;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let trimmed = line.trim();
        if let Some(depth) = skip_depth.as_mut() {
            *depth += brace_balance(&line);
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        if pending_test {
            if trimmed.starts_with("#[") || trimmed.is_empty() {
                continue;
            }
            pending_test = false;
            if is_mod_decl(trimmed) && trimmed.contains('{') {
                let depth = brace_balance(&line);
                if depth > 0 {
                    skip_depth = Some(depth);
                }
                continue;
            }
            if is_mod_decl(trimmed) {
                continue;
            }
        }
        lines.push((i + 1, line));
    }
    lines
}

fn is_mod_decl(trimmed: &str) -> bool {
    let rest = trimmed
        .strip_prefix("pub(crate) ")
        .or_else(|| trimmed.strip_prefix("pub(super) "))
        .or_else(|| trimmed.strip_prefix("pub "))
        .unwrap_or(trimmed);
    rest.starts_with("mod ")
}

fn brace_balance(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The line up to a `//` that is not inside a string literal.
fn strip_comment(line: &str) -> String {
    let mut in_string = false;
    let mut prev = ' ';
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '"' && prev != '\\' {
            in_string = !in_string;
        }
        if !in_string && c == '/' && chars.get(i + 1) == Some(&'/') {
            return chars[..i].iter().collect();
        }
        prev = c;
    }
    line.to_string()
}

/// Modules declared under `#[cfg(test)]` as `mod x;` in `text`.
fn test_mod_decls(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut pending = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("#[cfg(test)]") {
            pending = true;
            continue;
        }
        if pending && t.starts_with("#[") {
            continue;
        }
        if pending && is_mod_decl(t) && t.ends_with(';') {
            let name = t.trim_end_matches(';').rsplit(' ').next().unwrap();
            out.push(name.to_string());
        }
        pending = false;
    }
    out
}

/// Every `.rs` file under `dir`, with its module path relative to `src`.
fn files(src: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<String>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.clone(), module_path(src, &path)));
        }
    }
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// Module paths (relative to `src`) whose files are test code.
fn test_modules(all: &[(PathBuf, Vec<String>)]) -> BTreeSet<Vec<String>> {
    let mut tests = BTreeSet::new();
    for (file, module) in all {
        for name in test_mod_decls(&std::fs::read_to_string(file).unwrap()) {
            let mut child = module.clone();
            child.push(name);
            tests.insert(child);
        }
    }
    tests
}

/// The top-level modules `line` names: `crate::x`, `crate::{x, y::z}`, and
/// `super::` paths that climb to the crate root from `module`.
fn referenced(line: &str, module: &[String], tops: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `dclab_coordinator::` is another crate
        }
        out.extend(first_names(rest));
    }
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            rest = &rest[at + "super::".len()..];
            continue;
        }
        let mut climbs = 0;
        let mut tail = &rest[at..];
        while let Some(t) = tail.strip_prefix("super::") {
            climbs += 1;
            tail = t;
        }
        if climbs >= module.len() {
            out.extend(first_names(tail));
        }
        rest = tail;
    }
    out.retain(|n| tops.contains(n));
    out
}

/// `x::..` gives x; `{x, y::z}` gives x and y.
fn first_names(path: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = path.strip_prefix('{') {
        let mut names = vec![];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    names.push(ident(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    names.push(ident(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        names.retain(|n| !n.is_empty());
        names
    } else {
        vec![ident(path)]
    }
}

/// The graph of one crate: from -> to -> where (file:line).
fn crate_graph(krate: &Path) -> Graph {
    let src = krate.join("src");
    let mut all = vec![];
    files(&src, &src, &mut all);
    let tests = test_modules(&all);
    let tops: BTreeSet<String> = all
        .iter()
        .filter(|(_, m)| m.len() == 1 && !tests.contains(m))
        .map(|(_, m)| m[0].clone())
        .collect();
    let mut graph = Graph::new();
    for (file, module) in &all {
        let is_test = (1..=module.len()).any(|n| tests.contains(&module[..n]));
        if module.is_empty() || is_test || file.starts_with(src.join("bin")) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let from = &module[0];
        for (n, line) in without_tests_and_comments(&text) {
            for to in referenced(&line, module, &tops) {
                if &to != from {
                    let at = format!("{}:{n}", file.strip_prefix(krate).unwrap().display());
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .push(at);
                }
            }
        }
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = vec![];
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.found.push(scc);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        found: vec![],
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// The edges inside one cycle, each with where it is written.
fn describe(graph: &Graph, scc: &[String]) -> String {
    let mut out = format!("  cycle among {{{}}}:\n", scc.join(", "));
    for from in scc {
        for (to, at) in graph.get(from).into_iter().flatten() {
            if scc.contains(to) {
                out += &format!("    {from} -> {to}  ({})\n", at.join(", "));
            }
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_top_level_modules() {
    let root = workspace();
    let mut report = String::new();
    let mut stale = vec![];
    let mut checked = 0;
    let mut edges = 0;
    for member in members(&root) {
        let krate = root.join(&member);
        if !krate.join("src/lib.rs").exists() {
            continue;
        }
        checked += 1;
        let mut graph = crate_graph(&krate);
        edges += graph.values().map(BTreeMap::len).sum::<usize>();
        for (_, from, to) in ALLOWED.iter().filter(|(c, ..)| *c == member) {
            match graph.get_mut(*from).and_then(|e| e.remove(*to)) {
                Some(_) => {}
                None => stale.push(format!("{member}: {from} -> {to}")),
            }
        }
        for scc in cycles(&graph) {
            report += &format!("{member}:\n{}", describe(&graph, &scc));
        }
    }
    assert!(
        checked >= 4,
        "found only {checked} library crates under {}",
        root.display()
    );
    // The coordinator alone has dozens: none found means the parser broke.
    assert!(
        edges > 40,
        "only {edges} edges between modules found: is the parser broken?"
    );
    assert!(
        stale.is_empty(),
        "allowed edges that no longer exist (remove them from ALLOWED): {stale:?}"
    );
    assert!(
        report.is_empty(),
        "import cycles between top-level modules (dependencies must point one way):\n{report}"
    );
}

#[test]
fn the_parser_sees_crate_paths_groups_and_super_climbs() {
    let tops: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let at = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let names = |line: &str, m: &[&str]| referenced(line, &at(m), &tops).into_iter().collect::<Vec<_>>();
    assert_eq!(names("use crate::{a::X, b, c::{Y, Z}};", &["d"]), ["a", "b", "c"]);
    assert_eq!(names("let x = crate::b::f(other_crate::c::g());", &["d"]), ["b"]);
    assert_eq!(
        names("use super::c::X;", &["d"]),
        ["c"],
        "from d.rs, super is the root"
    );
    assert!(names("use super::c::X;", &["d", "e"]).is_empty(), "inside d");
    assert_eq!(names("use super::super::a;", &["d", "e"]), ["a"]);
    let code = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n// crate::c\nfn f() {}\n";
    let kept: Vec<String> = without_tests_and_comments(code)
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(kept.join("\n"), "use crate::a;\nfn f() {}");
    let mut graph = Graph::new();
    for (f, t) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(f.into()).or_default().insert(t.into(), vec![]);
    }
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
}
