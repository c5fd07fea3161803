//! The layering rules of ARCHITECTURE.md, checked on the source tree: the library's top-level
//! modules form no import cycle, each imports only modules of its own layer or below, and the
//! library never imports the CLI (which lives in the binary, `src/cli/`).
//!
//! The graph is read from the source text: every `crate::a::…` path (including the grouped
//! `use crate::{a, b::c}` form) and every `super::` that climbs out of a top-level module is an
//! edge from the file's top-level module to `a`. Comments and `#[cfg(test)]` modules are left
//! out: a test may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's layers, lowest first (ARCHITECTURE.md, "Layers"). A module may import modules
/// of its own layer or of a lower one; within a layer the graph must still be acyclic.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "vocabulary",
        &[
            "error", "domain", "chat", "text", "term", "limits", "config", "progress",
        ],
    ),
    (
        "the probe",
        &[
            "grade",
            "tool_output",
            "incident",
            "template",
            "axes",
            "tool_catalog",
            "probe",
            "trajectory",
            "plain_template",
            "render",
            "templatize",
            "expand",
            "shard",
        ],
    ),
    ("backends", &["provider", "mock", "store", "project"]),
    (
        "running",
        &[
            "call",
            "episode",
            "sweep",
            "adaptive",
            "shrink",
            "paraphrase",
            "model_check",
            "replay",
            "promote",
        ],
    ),
    (
        "results",
        &["analysis", "brittleness", "report", "export", "view"],
    ),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`src/store/engine.rs` → `["store", "engine"]`).
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("a file under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comments, string contents and `#[cfg(test)]` modules.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(raw) = rest.strip_prefix("r#\"") {
            i += 3 + raw.find("\"#").map_or(raw.len(), |e| e + 2);
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            i += (j + 1).min(rest.len());
            out.push_str("\"\"");
        } else if let Some(after) = rest.strip_prefix("#[cfg(test)]") {
            // Skip the attribute and, when it is on a module, the module's body.
            let trimmed = after.trim_start();
            if trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ") {
                let open = after.find('{');
                let semi = after.find(';');
                match (open, semi) {
                    (Some(o), s) if s.is_none_or(|s| o < s) => {
                        let mut depth = 0usize;
                        let mut k = "#[cfg(test)]".len() + o;
                        while k < rest.len() {
                            match rest.as_bytes()[k] {
                                b'{' => depth += 1,
                                b'}' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            k += 1;
                        }
                        i += k + 1;
                    }
                    _ => i += "#[cfg(test)]".len(),
                }
            } else {
                i += "#[cfg(test)]".len();
            }
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file's code names.
fn imports(module: &[String], code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |name: &str| {
        if name.starts_with(|c: char| c.is_ascii_lowercase()) && name != "self" {
            out.insert(name.to_string());
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            for item in body.split(',') {
                add(ident_at(item.trim()));
            }
        } else {
            add(ident_at(rest));
        }
    }
    // `super::` chains that climb to the crate root name a top-level module.
    for (at, _) in code.match_indices("super::") {
        if at >= 2 && &code[at - 2..at] == "::" {
            continue; // counted from the first `super::` of the chain
        }
        let mut rest = &code[at..];
        let mut depth = module.len();
        while let Some(r) = rest.strip_prefix("super::") {
            depth = depth.saturating_sub(1);
            rest = r;
        }
        if depth == 0 {
            if let Some(group) = rest.strip_prefix('{') {
                let body = &group[..group.find('}').unwrap_or(group.len())];
                for item in body.split(',') {
                    add(ident_at(item.trim()));
                }
            } else {
                add(ident_at(rest));
            }
        }
    }
    out
}

/// Top-level module → the top-level modules it imports, with one file that does it per edge.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let module = module_path(&file);
        let Some(top) = module.first().cloned() else {
            continue; // lib.rs, main.rs
        };
        if top == "cli" {
            continue; // the binary
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let rel = file.strip_prefix(src_dir()).unwrap().display().to_string();
        let entry = g.entry(top.clone()).or_default();
        for to in imports(&module, &code_only(&text)) {
            if to != top {
                entry.entry(to).or_insert_with(|| rel.clone());
            }
        }
    }
    g
}

/// One cycle through `start`, if any, as the module names along it.
fn cycle_through(
    g: &BTreeMap<String, BTreeMap<String, String>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeMap<String, String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(g, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_library_has_no_import_cycle() {
    let g = graph();
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for m in g.keys() {
        if reported.contains(m) {
            continue;
        }
        if let Some(cycle) = cycle_through(&g, m) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} → {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            reported.extend(cycle.iter().cloned());
            problems.push(steps.join(", "));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles between top-level modules:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_library_does_not_import_the_cli() {
    let g = graph();
    let offenders: Vec<String> = g
        .iter()
        .filter_map(|(from, to)| to.get("cli").map(|file| format!("{from} ({file})")))
        .collect();
    assert!(
        offenders.is_empty(),
        "library modules importing the CLI: {offenders:?}"
    );
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    assert!(
        !code_only(&lib).contains("mod cli"),
        "src/lib.rs declares a cli module: the CLI belongs to the binary (src/main.rs)"
    );
}

#[test]
fn every_module_imports_only_its_layer_or_lower() {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let g = graph();
    let mut problems = Vec::new();
    for (from, tos) in &g {
        let Some(&lf) = layer_of.get(from.as_str()) else {
            problems.push(format!(
                "`{from}` is in no layer: add it to LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        for (to, file) in tos {
            match layer_of.get(to.as_str()) {
                Some(&lt) if lt > lf => problems.push(format!(
                    "{file}: `{from}` ({}) imports `{to}` ({}), a higher layer",
                    LAYERS[lf].0, LAYERS[lt].0
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_through_comments_strings_and_test_modules() {
    let code = code_only(
        "use crate::a::X; // crate::b\nlet s = \"crate::c\";\n#[cfg(test)]\nmod tests { use crate::d; }\nfn f() { super::e::g(); }",
    );
    let found = imports(&["m".to_string()], &code);
    assert_eq!(found, ["a", "e"].iter().map(|s| s.to_string()).collect());
    let grouped = imports(
        &["m".to_string(), "n".to_string()],
        "use crate::{f, g::H};\nuse super::super::i;",
    );
    assert_eq!(
        grouped,
        ["f", "g", "i"].iter().map(|s| s.to_string()).collect()
    );
}
