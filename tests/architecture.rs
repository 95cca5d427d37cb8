//! The module map of ARCHITECTURE.md, checked against the source: every `crate::…` path in a
//! module's code (comments aside) names a module on a lower layer, the dev cluster imports
//! only protocol, config and drain, and its own files form no import loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The gateway's layers, lowest first; a module may import only from earlier layers.
const LAYERS: &[&[&str]] = &[
    &["config", "fields", "protocol", "tcp", "testing"],
    &["identity", "web", "drain", "telemetry"],
    &["policy", "devcluster"],
    &["events"],
    &["audit", "cluster"],
    &["recording"],
    &["relay"],
    &["fleet"],
    &["gateway"],
    &["session", "toolkit"],
    &["routes"],
    &["server"],
    &["serve"],
    &["dev"],
];

/// What the dev cluster may import from the gateway's crate.
const DEV_CLUSTER_USES: &[&str] = &["config", "drain", "protocol"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `src/relay/pump.rs` → `["relay", "pump"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    rel.iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect()
}

/// The code of a file without comments and without its `#[cfg(test)]` modules (tests may
/// reach anywhere).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut test_next = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            test_next = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if test_next && trimmed.starts_with("mod ") {
            test_next = false;
            if trimmed.ends_with(';') {
                continue;
            }
            skip_depth = Some(depth);
            depth += opens - closes;
            continue;
        }
        test_next = false;
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The names `prefix` is followed by in `code` (`crate::` → `relay`, `events`, …), including
/// those inside `use crate::{a, b::c}` groups.
fn paths_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        start = true;
                        continue;
                    }
                    c if c.is_whitespace() => continue,
                    _ => {}
                }
                if start && depth == 0 && c.is_ascii_alphabetic() {
                    names.insert(ident(&group[j..]));
                }
                start = false;
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

fn sources() -> (PathBuf, Vec<(Vec<String>, String)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let parsed = files
        .iter()
        .filter(|f| !f.iter().any(|c| c == "tests" || c == "tests.rs"))
        .filter(|f| !f.ends_with("main.rs") && !f.ends_with("lib.rs"))
        .map(|f| {
            (
                module_of(&src, f),
                code(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .collect();
    (src, parsed)
}

#[test]
fn imports_point_down() {
    let (_, files) = sources();
    let mut wrong = Vec::new();
    for (module, code) in &files {
        let top = module[0].as_str();
        for used in paths_after(code, "crate::") {
            if used == top {
                continue;
            }
            let allowed = if top == "devcluster" {
                DEV_CLUSTER_USES.contains(&used.as_str())
            } else {
                match (layer(top), layer(&used)) {
                    (Some(from), Some(to)) => to < from,
                    (None, _) => panic!("module {top} is on no layer: add it to LAYERS"),
                    (_, None) => false,
                }
            };
            if !allowed {
                wrong.push(format!("{} uses crate::{used}", module.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_is_on_the_map() {
    let (src, _) = sources();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        let line = line.trim_start_matches("pub ");
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            assert!(
                layer(name).is_some(),
                "module {name} is on no layer of tests/architecture.rs"
            );
        }
    }
}

#[test]
fn the_dev_cluster_has_no_import_loop() {
    let (_, files) = sources();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in files.iter().filter(|(m, _)| m[0] == "devcluster") {
        let Some(me) = module.get(1) else { continue };
        let uses = edges.entry(me.clone()).or_default();
        for prefix in ["super::", "crate::devcluster::"] {
            for used in paths_after(code, prefix) {
                if &used != me && files.iter().any(|(m, _)| m.len() > 1 && m[1] == used) {
                    uses.insert(used);
                }
            }
        }
    }
    // A topological order exists iff there is no loop.
    let mut left = edges.clone();
    while !left.is_empty() {
        let leaf = left
            .iter()
            .find(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| m.clone());
        match leaf {
            Some(m) => {
                left.remove(&m);
            }
            None => panic!("the dev cluster's modules import each other in a loop: {left:?}"),
        }
    }
}

#[test]
fn the_checker_sees_groups_and_skips_comments_and_tests() {
    let code = code(
        "use crate::{events::{A, B}, relay};\n// crate::server\nlet x = crate::gateway::G;\n#[cfg(test)]\nmod tests {\n    use crate::routes;\n}\n",
    );
    let found = paths_after(&code, "crate::");
    assert_eq!(
        found,
        ["events", "gateway", "relay"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}
