//! The crate's modules import each other without cycles: the top-level modules form a DAG, and
//! so do the modules of each directory, where a `mod.rs` that re-exports its children counts as
//! one node (so children must not use it). Test code is not counted.

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regex::Regex;

type ModPath = Vec<String>;

/// Every module of `src` (but `lib`/`main`) with its source, test code cut off.
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<ModPath, String>) {
        for entry in std::fs::read_dir(dir).expect("read src dir") {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, src, out);
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: ModPath = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read source");
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            out.insert(parts, code);
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

fn idents(s: &str) -> ModPath {
    let id = Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("regex");
    id.find_iter(s).map(|m| m.as_str().to_owned()).collect()
}

/// The paths a module names: `crate::…`, `super::…` (made absolute), and its own children.
fn references(path: &ModPath, code: &str, all: &BTreeSet<ModPath>) -> BTreeSet<ModPath> {
    let code = Regex::new(r"//.*").expect("regex").replace_all(code, "");
    let mut out = BTreeSet::new();
    let group = Regex::new(r"\b(crate|super)::\{([^}]*)\}").expect("regex");
    let single = Regex::new(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").expect("regex");
    let base = |kw: &str| -> ModPath {
        if kw == "crate" {
            Vec::new()
        } else {
            path[..path.len().saturating_sub(1)].to_vec()
        }
    };
    for c in group.captures_iter(&code) {
        for item in c[2].split(',') {
            let item = item.split(" as ").next().unwrap_or("").trim();
            if !item.is_empty() {
                let mut p = base(&c[1]);
                p.extend(idents(item));
                out.insert(p);
            }
        }
    }
    for c in single.captures_iter(&code) {
        let mut p = base(&c[1]);
        p.extend(idents(&c[2]));
        out.insert(p);
    }
    for child in all {
        if child.len() == path.len() + 1 && child.starts_with(path) {
            let name = child.last().expect("child name");
            let named = Regex::new(&format!(r"(?:^|[^A-Za-z0-9_:]){name}::")).expect("regex");
            if named.is_match(&code) {
                out.insert(child.clone());
            }
        }
    }
    out
}

/// The longest module that is a prefix of `p`.
fn module_of(p: &ModPath, all: &BTreeSet<ModPath>) -> Option<ModPath> {
    (1..=p.len())
        .rev()
        .map(|n| p[..n].to_vec())
        .find(|m| all.contains(m))
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut c = stack[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let all: BTreeSet<ModPath> = mods.keys().cloned().collect();
    let mut edges: BTreeSet<(ModPath, ModPath)> = BTreeSet::new();
    for (path, code) in &mods {
        for r in references(path, code, &all) {
            if let Some(m) = module_of(&r, &all)
                && m != *path
            {
                edges.insert((path.clone(), m));
            }
        }
    }
    // Levels: the crate root, and every module with children.
    let mut levels: BTreeSet<ModPath> = BTreeSet::from([Vec::new()]);
    levels.extend(
        all.iter()
            .filter(|p| p.len() > 1)
            .map(|p| p[..p.len() - 1].to_vec()),
    );
    assert!(levels.len() > 2, "expected directory modules in {src:?}");
    let mut failures = Vec::new();
    for level in &levels {
        let node = |p: &ModPath| -> Option<String> {
            if !p.starts_with(level) {
                return None;
            }
            Some(
                p.get(level.len())
                    .cloned()
                    .unwrap_or_else(|| "(mod.rs)".into()),
            )
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in &edges {
            if let (Some(x), Some(y)) = (node(a), node(b))
                && x != y
            {
                graph.entry(x).or_default().insert(y);
            }
        }
        if let Some(c) = cycle(&graph) {
            let at = if level.is_empty() {
                "crate".to_owned()
            } else {
                level.join("::")
            };
            failures.push(format!("{at}: {}", c.join(" -> ")));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between modules (move what both need into a module below them):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_check_sees_a_cycle() {
    let all: BTreeSet<ModPath> = [vec!["a".to_owned()], vec!["b".to_owned()]].into();
    let a = references(&vec!["a".into()], "use crate::b::X;", &all);
    let b = references(&vec!["b".into()], "fn f() { crate::a::y() }", &all);
    assert!(a.contains(&vec!["b".to_owned(), "X".to_owned()]));
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        (
            "b".to_owned(),
            b.iter()
                .filter_map(|p| module_of(p, &all))
                .map(|m| m.join("::"))
                .collect(),
        ),
    ]);
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
}
