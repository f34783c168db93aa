//! The gateway's layout: no module cycle among the top-level modules of
//! `crates/pairgate/src` (ARCHITECTURE.md). A module's dependencies are the
//! `crate::name` paths in its code (comments and its `#[cfg(test)] mod
//! tests` left out); a cycle is a strongly connected component of more than
//! one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module name → the top-level modules its code uses.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                files.push(inner.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let set = deps.entry(top.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != top {
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
