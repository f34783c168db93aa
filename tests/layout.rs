//! The gateway's layout: no module cycle among the modules of
//! `crates/pairgate/src` (ARCHITECTURE.md). A module is a top-level file or
//! folder (`journal.rs` with `journal/`, `proxy/`), except that a folder whose
//! `mod.rs` only declares its files (a namespace, like `chassis/` and
//! `recovery/`) is not one module: each of its files is (`chassis::applier`).
//! A module's dependencies are the `crate::…` paths in its code (comments and
//! its `#[cfg(test)] mod tests` left out); a cycle is a strongly connected
//! component of more than one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Whether a folder's `mod.rs` holds nothing but doc comments and `mod` lines.
fn is_namespace(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("mod.rs")) else { return false };
    let declares = |l: &str| (l.starts_with("pub mod ") || l.starts_with("mod ")) && l.ends_with(';');
    text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with("//") || declares(l))
}

/// Module name → the modules its code uses.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut namespaces = BTreeSet::new();
    // (file, module it belongs to)
    let mut files: Vec<(std::path::PathBuf, String)> = Vec::new();
    let stem = |p: &Path| p.file_name().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let top = stem(&path);
            let namespace = is_namespace(&path);
            if namespace {
                namespaces.insert(top.clone());
            }
            for inner in std::fs::read_dir(&path).unwrap() {
                let inner = inner.unwrap().path();
                let module = if namespace { format!("{top}::{}", stem(&inner)) } else { top.clone() };
                if !(namespace && stem(&inner) == "mod") {
                    files.push((inner, module));
                }
            }
        } else {
            let top = stem(&path);
            files.push((path, top));
        }
    }
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let word = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect() };
    for (file, module) in files.into_iter().filter(|(f, _)| f.extension().is_some_and(|e| e == "rs")) {
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let set = deps.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + 7..];
                let mut name = word(rest);
                if namespaces.contains(&name) {
                    let inner = word(rest[name.len()..].trim_start_matches("::"));
                    name = format!("{name}::{inner}");
                }
                if !name.is_empty() && name != module {
                    set.insert(name);
                }
            }
        }
    }
    deps
}

/// Groups of modules that reach each other through their dependencies.
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in deps.get(&m).into_iter().flatten() {
                if deps.contains_key(d) && seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = deps.keys().map(|m| (m, reach(m))).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &reaches {
        let comp: Vec<String> = deps.keys().filter(|n| *n == *m || (r.contains(*n) && reaches[n].contains(*m))).cloned().collect();
        if comp.len() > 1 {
            found.insert(comp);
        }
    }
    found.into_iter().collect()
}

#[test]
fn the_gateway_has_no_module_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/pairgate/src");
    let deps = dependencies(&src);
    assert!(deps.contains_key("proxy") && deps["proxy"].contains("verdict"), "the scan itself: {deps:?}");
    assert!(deps["chassis::applier"].contains("recovery::resync"), "namespaces are scanned file by file: {deps:?}");
    let found = cycles(&deps);
    assert!(found.is_empty(), "modules that depend on each other: {found:?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut deps = BTreeMap::new();
    for (m, d) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")] {
        deps.entry(m.to_string()).or_insert_with(BTreeSet::new).insert(d.to_string());
    }
    assert_eq!(cycles(&deps), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
}
