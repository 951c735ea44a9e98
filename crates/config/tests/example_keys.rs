//! Every key `orch init` documents is read by orch.
//!
//! The example (`crates/config/src/example.toml`, what `orch init` writes)
//! documents every key, most set to their default and the optional ones
//! commented out (`# max_wall_secs = 14400`). An option that is documented,
//! validated and then never read is a promise orch does not keep (issue 15:
//! `budget.max_wall_secs`, `deploy.self_deploy`). This test reads every key
//! of the example, commented or not, and checks two things:
//!
//! 1. **It is a field of the config model.** The commented key lines and
//!    section headers are uncommented (only `# key = value` and `# [section]`
//!    lines, exactly one `# ` deep; indented prose examples stay comments), and
//!    the whole text is loaded as a `Config`, whose types all deny unknown
//!    fields: a key that maps to no field fails the load.
//! 2. **Some non-test code outside the config crate reads that field.** The
//!    field name is the key's last segment (the model renames no field). A
//!    source file of another crate (`crates/*/src`, test modules cut off at
//!    their `#[cfg(test)]`) must access `.<field>`. A field read inside the
//!    config crate counts when it is read in a function (an accessor such as
//!    `Config::lease()` for `queue.lease_secs`) that other crates call, directly
//!    or through other such functions. Validation (`validate.rs`) does not
//!    count: checking a value is not using it.
//!
//! This is a grep, not a compiler: a common name (`name`, `url`) is satisfied
//! by any `.name`, so the check bites on the options with names of their own,
//! which is where a forgotten option hides. Keys of tables that are maps
//! (their keys are data, e.g. `[tracker.plane.repos]`) count as the map's
//! field, listed in `MAP_TABLES`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Tables whose keys are data (repo names, project ids), not fields.
const MAP_TABLES: &[&str] = &[
    "tracker.plane.repos",
    "forge.gitea.repos",
    "forge.github.repos",
    "forge.gitlab.repos",
];

/// Config sources that read fields without using them.
const NOT_USES: &[&str] = &["validate.rs", "validate_tests.rs"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `# [section]` / `# [[section]]` header or a `# key = value` line of the
/// example, uncommented; `None` for prose.
fn uncomment(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# ")?;
    let first = rest.chars().next()?;
    if first == '[' {
        let end = rest.find(']')?;
        let name = rest[..end].trim_start_matches('[');
        return name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            .then_some(rest);
    }
    let (key, value) = rest.split_once(" = ")?;
    let key_ok = key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        || (key.starts_with('"') && key.ends_with('"'));
    (key_ok && !value.trim().is_empty()).then_some(rest)
}

/// The example with its commented keys and sections made real.
fn uncommented_example() -> String {
    orch_config::example_toml()
        .lines()
        .map(|l| uncomment(l).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every key path of a TOML text (`budget.max_wall_secs`, `repos.deploy.run`):
/// array-of-table indices are dropped, a map table's keys count as the map.
fn key_paths(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut paths = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            // `[tracker.plane.repos]   # … [[repos]]`: the comment goes first.
            let header = line.split('#').next().unwrap_or_default().trim();
            section = header
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let path = if MAP_TABLES.contains(&section.as_str()) {
            section.clone()
        } else if section.is_empty() {
            key.trim().to_owned()
        } else {
            format!("{section}.{}", key.trim())
        };
        paths.insert(path);
    }
    paths
}

/// Rust sources under `dir`, each as (file name, text without test modules).
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            out.push((p, code));
        }
    }
}

/// Whether `code` accesses `.name` (not `.name_more`).
fn accesses(code: &str, name: &str) -> bool {
    let needle = format!(".{name}");
    code.match_indices(&needle).any(|(i, _)| {
        !code[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Whether `code` calls a function `name` (`.name(`, `::name(`, ` name(`).
fn calls(code: &str, name: &str) -> bool {
    [".", "::", " ", "("]
        .iter()
        .any(|p| code.contains(&format!("{p}{name}(")))
}

/// The config crate's functions: name → body (the lines after its `fn` up
/// to the next `fn`), outside `NOT_USES`.
fn config_functions() -> BTreeMap<String, String> {
    let mut files = Vec::new();
    sources(&crates_dir().join("config/src"), &mut files);
    let mut fns: BTreeMap<String, String> = BTreeMap::new();
    for (path, code) in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        if NOT_USES.contains(&name) {
            continue;
        }
        let mut current: Option<String> = None;
        for line in code.lines() {
            if let Some(i) = line.find("fn ") {
                let after = &line[i + 3..];
                let ident: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() && after[ident.len()..].starts_with(['(', '<']) {
                    current = Some(ident);
                }
            }
            if let Some(f) = &current {
                let body = fns.entry(f.clone()).or_default();
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    fns
}

#[test]
fn every_key_of_the_example_is_a_field_that_orch_reads() {
    // 1. Every key, commented or not, is a field of the model.
    let full = uncommented_example();
    if let Err(e) = orch_config::Config::from_toml_str(&full) {
        panic!("the example's keys, uncommented, do not load: {e}\n{full}");
    }
    let paths = key_paths(&full);
    assert!(
        paths.contains("budget.max_wall_secs") && paths.contains("repos.deploy.run"),
        "commented keys are read too: {paths:?}"
    );

    // 2. Each is read by code outside the config crate, directly or through
    // an accessor that code calls.
    let mut others = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        let src = entry.path().join("src");
        if entry.file_name() != "config" && src.is_dir() {
            sources(&src, &mut others);
        }
    }
    assert!(others.len() > 50, "found the other crates' sources");
    let outside =
        |name: &str, f: fn(&str, &str) -> bool| others.iter().any(|(_, code)| f(code, name));
    let fns = config_functions();
    // Accessors in use: called outside the crate, or by an accessor in use.
    let mut used: BTreeSet<&str> = fns
        .keys()
        .filter(|f| outside(f, calls))
        .map(String::as_str)
        .collect();
    loop {
        let more: Vec<&str> = fns
            .keys()
            .filter(|f| !used.contains(f.as_str()))
            .filter(|f| used.iter().any(|u| calls(&fns[*u], f)))
            .map(String::as_str)
            .collect();
        if more.is_empty() {
            break;
        }
        used.extend(more);
    }
    let unread: Vec<&String> = paths
        .iter()
        .filter(|path| {
            let field = path.rsplit('.').next().unwrap();
            let direct = outside(field, accesses);
            let via = used.iter().any(|f| accesses(&fns[*f], field));
            !(direct || via)
        })
        .collect();
    assert!(
        unread.is_empty(),
        "keys that `orch init` documents but no code reads (only validated, or not at all): \
         {unread:?}. Make orch honour each, or remove it from the example, the docs and validation."
    );
}

#[test]
fn uncommenting_takes_keys_and_sections_not_prose() {
    assert_eq!(
        uncomment("# max_wall_secs = 14400"),
        Some("max_wall_secs = 14400")
    );
    assert_eq!(uncomment("# [tracker.plane]"), Some("[tracker.plane]"));
    assert_eq!(uncomment("# [[notify]]"), Some("[[notify]]"));
    assert_eq!(
        uncomment("# \"2f0c…\" = \"demo\""),
        Some("\"2f0c…\" = \"demo\"")
    );
    assert_eq!(
        uncomment("#   [agents.developer]"),
        None,
        "indented prose examples stay"
    );
    assert_eq!(uncomment("# Per task; exceeding one stops the agent"), None);
    assert_eq!(
        uncomment("#   ORCH_STORE__URL=postgres://orch@db/orch"),
        None
    );
    assert!(accesses("cfg.budget.max_wall_secs,", "max_wall_secs"));
    assert!(!accesses("cfg.budget.max_wall_secs_x", "max_wall_secs"));
}

/// `deploy.self_deploy` meant nothing (every phase B survives a restart of
/// orch), so it is gone from the example; a file that still sets it loads,
/// with a warning that says so.
#[test]
fn self_deploy_still_loads_but_warns_that_it_does_nothing() {
    let c = orch_config::Config::from_toml_str(
        "[[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\n\n[repos.deploy]\nrun = [\"true\"]\nself_deploy = true\n",
    )
    .unwrap();
    let warnings = c.validate().expect("valid");
    let w = warnings
        .iter()
        .find(|w| w.key == "repos[0].deploy.self_deploy")
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(w.message.contains("has no effect"), "{w:?}");
    assert!(!orch_config::example_toml().contains("self_deploy"));
}
