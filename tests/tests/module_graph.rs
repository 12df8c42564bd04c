//! The shape of the code: no import cycle between the modules of a crate, and no source file
//! with over 700 lines of code (its unit-test module aside) unless its opening comment says why
//! it is one concept.
//!
//! Modules are compared where they are siblings: the top-level modules of a crate, and the
//! children of each module directory. A file referring to `crate::a::…` or `super::b::…` depends
//! on the sibling those paths go through; a child using its parent's items is not a dependency
//! between siblings. Unit-test modules (`#[cfg(test)] mod tests` to the end of a file) are left
//! out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 4] = ["core", "server", "client", "bench"];
const MAX_LINES: usize = 700;
/// What an opening `//!` comment of a longer file must say.
const ONE_CONCEPT: &str = "One concept:";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `ca/setup.rs` → [ca, setup], `ca/mod.rs` → [ca],
/// `lib.rs` → [].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    // Binaries under src/bin are crates of their own.
    if parts.first().is_some_and(|p| p == "bin") {
        parts.clear();
    }
    parts
}

fn without_unit_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| text.get(..i).unwrap_or(text))
}

/// Module paths a file names: `crate::a::b` and `super::c` (resolved against `here`).
fn references(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s;
        loop {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = rest.get(..end).unwrap_or("");
            if name.is_empty() {
                break;
            }
            out.push(name.to_string());
            match rest.get(end..).and_then(|r| r.strip_prefix("::")) {
                Some(r) => rest = r,
                None => break,
            }
        }
        out
    };
    let mut refs = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text.get(..i).and_then(|b| b.chars().last());
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        refs.push(ident(text.get(i + 7..).unwrap_or("")));
    }
    // `super` is the parent module (for `ca/mod.rs`, whose path is [ca], the crate root).
    let parent: Vec<String> = here
        .get(..here.len().saturating_sub(1))
        .unwrap_or_default()
        .to_vec();
    for (i, _) in text.match_indices("super::") {
        let before = text.get(..i).and_then(|b| b.chars().last());
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut p = parent.clone();
        p.extend(ident(text.get(i + 7..).unwrap_or("")));
        refs.push(p);
    }
    refs
}

/// Sibling edges, grouped by parent module: parent → (from → {to}).
type Graph = BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>;

fn crate_graph(src: &Path) -> (Graph, BTreeSet<Vec<String>>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(src, f)).collect();
    let mut graph = Graph::new();
    for f in &files {
        let here = module_path(src, f);
        if f.starts_with(src.join("bin")) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for r in references(without_unit_tests(&text), &here) {
            let common = here.iter().zip(&r).take_while(|(a, b)| a == b).count();
            let (Some(from), Some(to)) = (here.get(common), r.get(common)) else {
                continue; // a parent using a child, or a child using its ancestors' items
            };
            let parent = here.get(..common).unwrap_or_default().to_vec();
            let mut target = parent.clone();
            target.push(to.clone());
            if !modules.contains(&target) {
                continue; // an item of the parent, not a sibling module
            }
            graph
                .entry(parent)
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    (graph, modules)
}

/// Every cycle's members (strongly connected components of more than one module).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the transposed graph.
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|s| s.iter()))
        .collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    fn visit<'a>(
        n: &'a String,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<&'a String>,
        order: &mut Vec<&'a String>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, seen, order);
        }
        order.push(n);
    }
    for n in &nodes {
        visit(n, edges, &mut seen, &mut order);
    }
    let mut reverse: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (a, bs) in edges {
        for b in bs {
            reverse.entry(b).or_default().push(a);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            if !assigned.insert(x) {
                continue;
            }
            comp.push(x.clone());
            stack.extend(reverse.get(x).into_iter().flatten().copied());
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_import_cycles_between_modules() {
    let root = sigil_tests::workspace_root();
    let mut found = Vec::new();
    for c in CRATES {
        let (graph, modules) = crate_graph(&root.join(c).join("src"));
        assert!(modules.len() > 1, "{c}: no modules found");
        for (parent, edges) in &graph {
            for cycle in cycles(edges) {
                let edges_in: Vec<String> = cycle
                    .iter()
                    .flat_map(|a| {
                        edges
                            .get(a)
                            .into_iter()
                            .flatten()
                            .filter(|b| cycle.contains(b))
                            .map(move |b| format!("{a} → {b}"))
                    })
                    .collect();
                found.push(format!(
                    "{c}/src/{}: {} ({})",
                    parent.join("/"),
                    cycle.join(", "),
                    edges_in.join("; ")
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between sibling modules:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&edges), vec![vec!["a".to_string(), "b".to_string()]]);
    let here = vec!["ca".to_string(), "setup".to_string()];
    assert_eq!(
        references("use crate::keyfile::read; use super::pkcs11::X;", &here),
        vec![
            vec!["keyfile".to_string(), "read".to_string()],
            vec!["ca".to_string(), "pkcs11".to_string(), "X".to_string()],
        ]
    );
}

#[test]
fn no_long_source_files_without_a_reason() {
    let root = sigil_tests::workspace_root();
    let mut long = Vec::new();
    for c in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(c).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines = without_unit_tests(&text).lines().count();
            let opening: String = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join(" ");
            if lines > MAX_LINES && !opening.contains(ONE_CONCEPT) {
                long.push(format!(
                    "{} ({lines} lines)",
                    f.strip_prefix(&root).unwrap_or(&f).display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines whose opening comment does not say why they are \
         one concept (`{ONE_CONCEPT} …`): split them or say why\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_ca_and_the_log_never_import_each_other() {
    let src = sigil_tests::workspace_root().join("server/src");
    let mut found = Vec::new();
    for (from, to) in [("ca", "log"), ("log", "ca")] {
        let mut files = Vec::new();
        rust_files(&src.join(from), &mut files);
        assert!(!files.is_empty(), "server/src/{from} has no files");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let here = module_path(&src, &f);
            if references(without_unit_tests(&text), &here)
                .iter()
                .any(|r| r.first().is_some_and(|m| m == to))
            {
                found.push(format!("{} uses crate::{to}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
