//! The layering of `src/`, as `docs/architecture.md` writes it down: every module may use
//! only modules of lower layers (and its own submodules and parent). The layers are read from
//! the document itself, so the document and this check cannot disagree.
//!
//! What counts as a use: every `crate::a::b` path in code (not in comments), up to the first
//! `#[cfg(test)]` of a file (tests come last in every file), in every file that is not itself
//! a test module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers table of docs/architecture.md: module path → layer.
fn layers(root: &Path) -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mut layers = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | layer | modules | what they own |
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for module in modules.split('`').skip(1).step_by(2) {
            assert!(
                layers.insert(module.to_owned(), layer).is_none(),
                "docs/architecture.md lists `{module}` twice"
            );
        }
    }
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `src/intake/pull/mod.rs` → `intake::pull`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "main" || p == "lib")
    {
        parts.pop();
    }
    parts.join("::")
}

/// The entry of `layers` that `module` falls under: the longest listed prefix.
fn listed<'a>(layers: &'a BTreeMap<String, u32>, module: &str) -> Option<(&'a str, u32)> {
    layers
        .iter()
        .filter(|(name, _)| module == name.as_str() || module.starts_with(&format!("{name}::")))
        .max_by_key(|(name, _)| name.len())
        .map(|(name, layer)| (name.as_str(), *layer))
}

/// Files that are test modules (`#[cfg(test)]` then `mod name;` in their parent).
fn test_modules(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut tests = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = if file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "main.rs" || n == "lib.rs")
        {
            file.parent().unwrap().to_owned()
        } else {
            file.with_extension("")
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]"
                && let Some(name) = pair[1]
                    .strip_prefix("mod ")
                    .and_then(|m| m.strip_suffix(';'))
            {
                tests.insert(dir.join(format!("{name}.rs")));
                tests.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    tests
}

/// Every `crate::…` path in the code of `text` before its tests.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code == "#[cfg(test)]" {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        for (at, _) in code.match_indices("crate::") {
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `$crate::`, `other_crate::`
            }
            let path: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push((n + 1, path.trim_end_matches(':').to_owned()));
        }
    }
    found
}

/// What in the tree at `root` breaks the layering of its `docs/architecture.md`.
fn breaks(root: &Path) -> Vec<String> {
    let src = root.join("src");
    let layers = layers(root);
    let mut files = Vec::new();
    sources(&src, &mut files);
    let tests = test_modules(&files);
    let mut broken = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(*f)) {
        let module = module_of(&src, file);
        if module.is_empty() {
            continue; // main.rs and lib.rs: the top, may use everything
        }
        let Some((from, from_layer)) = listed(&layers, &module) else {
            broken.push(format!(
                "{}: `{module}` is in no layer of docs/architecture.md",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in uses(&text) {
            let Some((to, to_layer)) = listed(&layers, &path) else {
                broken.push(format!(
                    "{}:{line}: `crate::{path}` is in no layer",
                    file.display()
                ));
                continue;
            };
            let within = to == from
                || to.starts_with(&format!("{from}::"))
                || from.starts_with(&format!("{to}::"));
            if !within && to_layer >= from_layer {
                broken.push(format!(
                    "{}:{line}: `{from}` (layer {from_layer}) uses `crate::{path}` (`{to}`, layer \
                     {to_layer}): a module may use only lower layers",
                    file.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_module_uses_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        layers(root).len() > 10,
        "docs/architecture.md has no layers table"
    );
    let broken = breaks(root);
    assert!(
        broken.is_empty(),
        "imports that break the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_a_use_that_breaks_the_layering() {
    let text = "//! doc [`crate::serve`]\nuse crate::publisher::Outcome;\nlet x = crate::site::Live;\n\
                #[cfg(test)]\nuse crate::serve;\n";
    assert_eq!(
        uses(text),
        [
            (2, "publisher::Outcome".to_owned()),
            (3, "site::Live".to_owned())
        ]
    );
    let layers = BTreeMap::from([("intake".to_owned(), 2), ("intake::pull".to_owned(), 6)]);
    assert_eq!(
        listed(&layers, "intake::pull::Board"),
        Some(("intake::pull", 6))
    );
    assert_eq!(listed(&layers, "intake::Channel"), Some(("intake", 2)));
    assert_eq!(listed(&layers, "intakes"), None);
}

#[test]
fn a_tree_that_breaks_its_layers_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "docs/architecture.md",
        "| layer | modules | owns |\n|---|---|---|\n| 0 | `low` | x |\n| 1 | `high`, `peer` | y |\n",
    );
    write(
        "src/main.rs",
        "mod high;\nmod low;\nmod peer;\nuse crate::high::Run;\n",
    );
    write("src/high/mod.rs", "mod part;\nuse crate::low::Thing;\n");
    write(
        "src/high/part.rs",
        "use crate::high::Run;\nuse crate::low::Thing;\n",
    );
    write(
        "src/low.rs",
        "//! [`crate::high`] in a comment is no use.\nuse crate::high::Run;\n\
         #[cfg(test)]\nmod tests { use crate::peer::X; }\n",
    );
    write(
        "src/peer.rs",
        "use crate::high::Run;\nuse crate::nowhere::Y;\n",
    );
    write("src/orphan.rs", "");
    let broken = breaks(root.path());
    let lines: Vec<&str> = broken
        .iter()
        .map(|b| b.rsplit_once("/src/").map_or(b.as_str(), |(_, rest)| rest))
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "a use up, a use of a peer, an unknown module, a file in no layer: {broken:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("low.rs:2: `low` (layer 0) uses `crate::high::Run`")),
        "{broken:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("peer.rs:1: `peer` (layer 1) uses `crate::high::Run`")),
        "{broken:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("peer.rs:2: `crate::nowhere::Y` is in no layer")),
        "{broken:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("orphan.rs: `orphan` is in no layer")),
        "{broken:#?}"
    );
}
