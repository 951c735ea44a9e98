//! Every webhook parser takes arbitrary bytes without panicking, and
//! so does the reading of Jira's ADF documents (comments and descriptions
//! are a tracker's input too). The case count is fixed, so CI runs it in
//! bounded time.

use orch_integrations::webhook::{gitea, github, gitlab, jira, linear, plane};
use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    [
        "plane/plane-issue-updated.json",
        "plane/plane-issue-created.json",
        "gitea/gitea-pull-request-merged.json",
        "gitea/gitea-issue-label-updated.json",
        "gitlab/issue-hook.json",
        "gitlab/merge-request-hook.json",
        "linear/issue-webhook.json",
        "jira/issue-updated-webhook.json",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect()
}

fn all_parsers(body: &[u8], event: Option<&str>) {
    let _ = plane::parse(body, event);
    let _ = gitea::parse(body, event);
    let _ = github::parse(body, event);
    let _ = gitlab::parse(body, event);
    let _ = linear::parse(body, event);
    let _ = jira::parse(body, event);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048), event in proptest::option::of("[a-z_.]{0,20}")) {
        all_parsers(&body, event.as_deref());
    }

    /// Mutations of real payloads reach deeper than random bytes: valid JSON
    /// with fields of the wrong type, truncations, flipped bytes.
    #[test]
    fn mutated_payloads_never_panic(which in 0usize..8, cut in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8)) {
        let mut body = seeds()[which].clone();
        for (i, b) in flips {
            let at = i.index(body.len());
            body[at] = b;
        }
        all_parsers(&body, Some("issue"));
        all_parsers(&body, Some("pull_request"));
        all_parsers(&body, Some("issue_label"));
        let end = cut.index(body.len() + 1);
        all_parsers(&body[..end], Some("pull_request"));
    }

    /// Arbitrary JSON values in the fields the parsers read.
    #[test]
    fn wrong_types_never_panic(v in json_value()) {
        for base in seeds() {
            let mut doc: serde_json::Value = serde_json::from_slice(&base).unwrap();
            for ptr in ["/data", "/data/state", "/data/id", "/activity", "/activity/field", "/pull_request", "/pull_request/head", "/pull_request/number", "/repository", "/action", "/version", "/issue", "/issue/labels", "/issue/number", "/issue/pull_request", "/issue/key", "/issue/fields/status", "/changelog", "/changelog/id", "/changelog/items", "/webhookEvent"] {
                let mut d = doc.clone();
                if let Some(slot) = d.pointer_mut(ptr) { *slot = v.clone(); }
                let bytes = serde_json::to_vec(&d).unwrap();
                all_parsers(&bytes, Some("issue"));
                all_parsers(&bytes, Some("pull_request"));
                all_parsers(&bytes, Some("issues"));
                all_parsers(&bytes, Some("issue_label"));
            }
            doc["version"] = "v2".into();
            all_parsers(&serde_json::to_vec(&doc).unwrap(), None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any tree of ADF-like nodes (the keys ADF uses, values of any type)
    /// reads as text within the cap, without panicking.
    #[test]
    fn any_adf_like_document_reads_as_bounded_text(v in adf_like()) {
        use orch_integrations::jira::adf::{MAX_TEXT, to_text};
        let text = to_text(&v);
        prop_assert!(text.chars().count() <= MAX_TEXT);
        let doc = serde_json::json!({ "type": "doc", "version": 1, "content": [v] });
        prop_assert!(to_text(&doc).chars().count() <= MAX_TEXT);
    }
}

/// Objects with ADF's keys (`type` among ADF's node names or not, `text`,
/// `content`, `attrs`), nested, with values of any type in any place.
fn adf_like() -> impl Strategy<Value = serde_json::Value> {
    let kind = prop_oneof![
        Just("paragraph"),
        Just("text"),
        Just("hardBreak"),
        Just("mention"),
        Just("codeBlock"),
        Just("listItem"),
        Just("inlineCard"),
        Just("date"),
        Just("madeUp"),
    ];
    let leaf = prop_oneof![
        (kind.clone(), ".{0,12}").prop_map(|(k, t)| serde_json::json!({ "type": k, "text": t, "attrs": { "text": t, "url": t, "timestamp": t } })),
        json_value(),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        (kind.clone(), proptest::collection::vec(inner.clone(), 0..6), inner)
            .prop_map(|(k, content, attrs)| serde_json::json!({ "type": k, "content": content, "attrs": attrs }))
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
