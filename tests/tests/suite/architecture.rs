//! The layering the README's Architecture section draws, checked on the source: inside each
//! crate, the top-level modules (a file or folder under `src/`) import each other without a
//! cycle, so no import cycle crosses folders. Test code is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, test files (`tests.rs`) left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The top-level modules a piece of Rust source names through `crate::` paths, including
/// grouped imports (`use crate::{a::b, c};`). Comments are skipped.
fn named_modules(code: &str) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Up to the matching brace; each top-level item's first segment is a module.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(ident(&item));
        } else {
            out.insert(ident(after));
        }
        rest = after;
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The import graph of `crate_dir`'s top-level modules.
fn graph(crate_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = crate_dir.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let top = |path: &Path| -> Option<String> {
        let first = path.strip_prefix(&src).ok()?.components().next()?;
        let name = first
            .as_os_str()
            .to_str()?
            .trim_end_matches(".rs")
            .to_owned();
        (!matches!(name.as_str(), "lib" | "main")).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top(f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top(file) else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        // What follows a `#[cfg(test)]` is test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let targets = edges.entry(from.clone()).or_default();
        for to in named_modules(code) {
            if to != from && modules.contains(&to) {
                targets.insert(to);
            }
        }
    }
    edges
}

/// A cycle in `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_crosses_the_folders_of_a_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["engine", "workflows", "api", "api/cli"] {
        let edges = graph(&root.join(krate));
        assert!(edges.len() >= 5, "{krate}: too few modules read: {edges:?}");
        if let Some(found) = cycle(&edges) {
            panic!(
                "{krate}: the modules {} import each other in a cycle",
                found.join(" → ")
            );
        }
    }
}

#[test]
fn grouped_and_plain_crate_paths_are_read() {
    let code = "use crate::a::b;\nuse crate::{c::d, e, f::{g, h}};\n// crate::comment\nlet x = crate::i::j();";
    let names: Vec<_> = named_modules(code).into_iter().collect();
    assert_eq!(names, ["a", "c", "e", "f", "i"]);
}
