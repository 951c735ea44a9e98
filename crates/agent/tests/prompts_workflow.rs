//! The developer's prompt from a WORKFLOW.md body: Symphony's own example
//! (crates/config/tests/fixtures/symphony) renders with `issue` and
//! `attempt`; unknown variables and filters fail; a round with feedback gets
//! orch's section of it after the workflow's prompt.

use orch_agent::prompts::{PromptContext, PromptSet, TemplateOrigin};
use orch_core::{AgentKind, Stage, Task, TaskId, Timestamp};
use std::path::{Path, PathBuf};

fn fixture() -> (PathBuf, String) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/symphony/WORKFLOW.md");
    let text = std::fs::read_to_string(&path).unwrap();
    // The body: after the front matter's closing `---` line.
    let body = text.split_once("\n---\n").unwrap().1.trim().to_owned();
    (path, body)
}

fn ctx(body: &str) -> PromptContext {
    let task = Task {
        id: TaskId(42),
        tracker_id: None,
        work_item_id: "SYM-7".into(),
        repo: "demo".into(),
        branch: "orch/SYM-7".into(),
        stage: Stage::Development,
        title: "Handle empty input".into(),
        body: body.into(),
        created_at: Timestamp::EPOCH,
        updated_at: Timestamp::EPOCH,
        cancel_requested_at: None,
        cancelled_at: None,
    };
    PromptContext::new(&task, "main", AgentKind::Developer).unwrap()
}

fn set(source: &str) -> PromptSet {
    PromptSet::builtin()
        .unwrap()
        .with_workflow(Path::new("/etc/orch/WORKFLOW.md"), source)
        .unwrap()
}

#[test]
fn symphonys_example_renders_with_issue_and_attempt() {
    let (path, body) = fixture();
    let set = PromptSet::builtin()
        .unwrap()
        .with_workflow(&path, &body)
        .unwrap();
    assert_eq!(
        set.origin(AgentKind::Developer),
        &TemplateOrigin::Workflow(path)
    );
    assert_eq!(set.origin(AgentKind::Reviewer), &TemplateOrigin::Builtin);

    let first = set
        .render(AgentKind::Developer, &ctx("parse() panics."))
        .unwrap();
    assert!(
        first.starts_with("You are working on a Linear ticket `SYM-7`"),
        "{first}"
    );
    assert!(first.contains("Title: Handle empty input"), "{first}");
    assert!(first.contains("Current status: development"), "{first}");
    assert!(first.contains("parse() panics."), "{first}");
    assert!(
        !first.contains("Follow-up context"),
        "attempt is null on the first run"
    );
    assert!(!first.contains("orch: what this round must change"));

    let mut again = ctx("");
    again.attempt = 2;
    let second = set.render(AgentKind::Developer, &again).unwrap();
    assert!(second.contains("This is follow-up attempt #2."), "{second}");
    assert!(second.contains("No description provided."), "{second}");
}

#[test]
fn a_review_round_gets_orchs_feedback_after_the_workflow_prompt() {
    let set = set("Work on {{ issue.identifier }}{% if attempt %} (run {{ attempt }}){% endif %}.");
    let mut c = ctx("");
    c.review_round = 2;
    c.reviewer_comments = vec!["Add a test for the empty file.".into()];
    let p = set.render(AgentKind::Developer, &c).unwrap();
    assert!(p.starts_with("Work on SYM-7 (run 2)."), "{p}");
    let feedback = p.find("orch: what this round must change").expect(&p);
    assert!(
        p[feedback..].contains("1. Add a test for the empty file."),
        "{p}"
    );
}

#[test]
fn orchs_own_variables_are_under_orch() {
    let set = set("{{ orch.task.repo }} {{ orch.docs_dir }}");
    let p = set.render(AgentKind::Developer, &ctx("")).unwrap();
    assert_eq!(p, "demo docs/work-items/SYM-7");
}

#[test]
fn an_unknown_variable_or_filter_fails_the_render_naming_the_file() {
    for source in [
        "{{ issue.nope }}",
        "{{ ticket.title }}",
        "{{ issue.title | downcase }}",
    ] {
        let set = set(source);
        let e = set
            .render(AgentKind::Developer, &ctx(""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("workflow:/etc/orch/WORKFLOW.md"),
            "{source}: {e}"
        );
        assert!(e.contains("line 1"), "{source}: {e}");
    }
}

#[test]
fn a_template_that_does_not_parse_is_refused_before_any_run() {
    let e = PromptSet::builtin()
        .unwrap()
        .with_workflow(Path::new("W.md"), "{% if attempt %}never closed")
        .unwrap_err()
        .to_string();
    assert!(e.contains("workflow:W.md"), "{e}");
}
