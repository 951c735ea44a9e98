//! Gitea's own API description (`fixtures/gitea/swagger.v1.json`) and the
//! check of one request against it, shared by the forge's and the issues
//! tracker's contract tests.

use serde_json::Value;
use std::path::PathBuf;

pub fn swagger() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitea/swagger.v1.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Keys orch sends for older Gitea and Forgejo, which 1.26's swagger no
/// longer lists (documented in plane-gitea-facts.md §4).
const LEGACY_KEYS: [&str; 2] = ["MergeTitleField", "MergeMessageField"];

/// Does a concrete path match a swagger template? The last parameter may hold
/// slashes (Gitea routes branches as `/branches/*` and heads as `/pulls/{base}/*`).
pub fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if p.len() < t.len() {
        return false;
    }
    for (i, seg) in t.iter().enumerate() {
        let last = i + 1 == t.len();
        let is_param = seg.starts_with('{');
        if !is_param && p[i] != *seg {
            return false;
        }
        if last
            && p.len() > t.len()
            && !(is_param && (seg.contains("branch") || seg.contains("head")))
        {
            return false;
        }
    }
    true
}

/// Check one request; `Err` says what does not fit.
pub fn check(
    sw: &Value,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<String, String> {
    let api_path = path.strip_prefix("/api/v1").ok_or("not under /api/v1")?;
    let paths = sw["paths"].as_object().unwrap();
    // The most specific template: the fewest parameters among matches.
    let mut found: Vec<(&String, &Value)> =
        paths.iter().filter(|(t, _)| matches(t, api_path)).collect();
    found.sort_by_key(|(t, _)| t.matches('{').count());
    let (template, item) = found
        .first()
        .ok_or_else(|| format!("no swagger path for {api_path}"))?;
    let op = item
        .get(method.to_lowercase())
        .ok_or_else(|| format!("{template} has no {method}"))?;
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    for (k, _) in query {
        if !params
            .iter()
            .any(|p| p["in"] == "query" && p["name"] == k.as_str())
        {
            return Err(format!(
                "{method} {template}: undeclared query parameter {k}"
            ));
        }
    }
    if let Some(schema_ref) = params
        .iter()
        .find(|p| p["in"] == "body")
        .and_then(|p| p["schema"]["$ref"].as_str())
    {
        let def = &sw["definitions"][schema_ref.trim_start_matches("#/definitions/")];
        let body = body.ok_or_else(|| format!("{method} {template}: a body is required"))?;
        for req in def["required"].as_array().into_iter().flatten() {
            let key = req.as_str().unwrap();
            if body.get(key).is_none() {
                return Err(format!("{method} {template}: required field {key} missing"));
            }
        }
        let props = def["properties"].as_object().cloned().unwrap_or_default();
        for k in body.as_object().into_iter().flat_map(|o| o.keys()) {
            if !props.contains_key(k) && !LEGACY_KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "{method} {template}: field {k} is not in {schema_ref}"
                ));
            }
        }
    } else if body.is_some_and(|b| !b.is_null()) {
        return Err(format!(
            "{method} {template}: sends a body the API does not take"
        ));
    }
    Ok(format!("{method} {template}"))
}
