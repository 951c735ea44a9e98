//! The fake Jira's JQL search (`POST /rest/api/3/search/jql`): the
//! queries orch's reconciler sends, the fields asked for, and the pages
//! with an opaque `nextPageToken` left out on the last one. A query the
//! fake cannot read is refused as Jira refuses a query it cannot parse.

use super::jira::{JiraModel, JrFakeIssue, error, issue_json, now_ms};
use super::json;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

/// The queries orch's reconciler sends: `project = "KEY"` [`AND updated >=
/// "-Nm"`] `ORDER BY updated ASC|DESC`. Anything else is refused as Jira
/// refuses a query it cannot parse.
struct Jql {
    project: String,
    since_minutes: Option<i64>,
    descending: bool,
}

fn parse_jql(q: &str) -> Option<Jql> {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let (filter, order) = q.split_once(" ORDER BY ")?;
    let descending = match order.trim() {
        "updated ASC" | "updated" => false,
        "updated DESC" => true,
        _ => return None,
    };
    let mut parts = filter.split(" AND ");
    let project = unquote(parts.next()?.trim().strip_prefix("project = ")?);
    let since_minutes = match parts.next() {
        Some(p) => {
            let rel = unquote(p.trim().strip_prefix("updated >= ")?);
            Some(rel.strip_prefix('-')?.strip_suffix('m')?.parse().ok()?)
        }
        None => None,
    };
    if parts.next().is_some() || project.is_empty() {
        return None;
    }
    Some(Jql {
        project,
        since_minutes,
        descending,
    })
}

pub(super) fn search(m: &JiraModel, body: &Value) -> ResponseTemplate {
    let q = body["jql"].as_str().unwrap_or("");
    let Some(jql) = parse_jql(q) else {
        return error(
            400,
            &format!("Error in the JQL Query: the fake cannot read {q:?}."),
        );
    };
    if m.project(&jql.project).is_none() {
        return error(
            400,
            &format!(
                "The value '{}' does not exist for the field 'project'.",
                jql.project
            ),
        );
    }
    let fields: Vec<String> = body["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_else(|| vec!["id".into()]);
    let max = body["maxResults"].as_u64().unwrap_or(50).clamp(1, 100) as usize;
    let start = match body.get("nextPageToken").and_then(Value::as_str) {
        Some(t) => match t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => return error(400, "The provided next page token is invalid or expired."),
        },
        None => 0,
    };
    let now = now_ms();
    let mut list: Vec<&JrFakeIssue> = m
        .issues
        .values()
        .filter(|i| i.project == jql.project)
        .filter(|i| {
            jql.since_minutes
                .is_none_or(|mins| i.updated >= now - mins * 60_000)
        })
        .collect();
    list.sort_by_key(|i| i.updated);
    if jql.descending {
        list.reverse();
    }
    let end = (start + max).min(list.len());
    let mut issues: Vec<Value> = if start == 0 {
        m.malformed.clone()
    } else {
        Vec::new()
    };
    issues.extend(
        list.get(start..end)
            .unwrap_or(&[])
            .iter()
            .map(|i| issue_json(m, i, &fields)),
    );
    let mut out = json!({ "issues": issues, "isLast": end >= list.len() });
    if end < list.len() {
        out["nextPageToken"] = json!(format!("page-{end}"));
    }
    json(200, out)
}
