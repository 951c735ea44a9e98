//! Prompt templates: every built-in renders with a full and a minimal context,
//! the reviewer's verdict instructions match `parse_verdict`, overrides take
//! precedence in order, and broken templates or variables are errors that name
//! the file and line.

use orch_agent::adapters::{ReviewDecision, parse_verdict};
use orch_agent::prompts::{
    Artefact, PromptContext, PromptError, PromptSet, TemplateOrigin, default_template,
};
use orch_core::{AgentKind, Stage, Task, TaskId, Timestamp};
use std::path::PathBuf;

fn task(stage: Stage) -> Task {
    Task {
        id: TaskId(42),
        tracker_id: Some("uuid-1".into()),
        work_item_id: "ORCH-7".into(),
        repo: "demo".into(),
        branch: "feature/ORCH-7-empty-input".into(),
        stage,
        title: "Handle empty input".into(),
        body: "parse() panics on an empty file.\nIt should return an error.".into(),
        created_at: Timestamp::EPOCH,
        updated_at: Timestamp::EPOCH,
        cancel_requested_at: None,
        cancelled_at: None,
    }
}

fn stage_of(kind: AgentKind) -> Stage {
    match kind {
        AgentKind::Analyst => Stage::Analysis,
        AgentKind::Developer => Stage::Development,
        AgentKind::Reviewer => Stage::Review,
        AgentKind::Merger => Stage::Merge,
        AgentKind::Deployer => Stage::Deploy,
    }
}

fn minimal(kind: AgentKind) -> PromptContext {
    PromptContext::new(&task(stage_of(kind)), "main", kind).expect("context")
}

fn full(kind: AgentKind) -> PromptContext {
    let mut ctx = minimal(kind).with_diff(
        "diff --git a/src/parse.rs b/src/parse.rs\n+fn parse() {}\n",
        1024,
    );
    ctx.attempt = 2;
    ctx.review_round = 3;
    ctx.artefacts = vec![
        Artefact {
            path: "docs/work-items/ORCH-7/01-analysis.md".into(),
            content: "# Analysis\nThe parser indexes [0] without a check.\n".into(),
        },
        Artefact {
            path: "docs/work-items/ORCH-7/02-trz.md".into(),
            content: "REQ-1 parse(\"\") returns ParseError::Empty.\n```rust\nlet x = 1;\n```\n"
                .into(),
        },
    ];
    ctx.reviewer_comments = vec![
        "src/parse.rs: return ParseError::Empty".into(),
        "Add a test\nfor the empty input".into(),
    ];
    ctx.gate_comment = Some("Please also cover whitespace-only input.".into());
    ctx.extra
        .insert("conflict_files".into(), "src/a.rs\nsrc/b.rs\n".into());
    ctx.extra.insert("step".into(), "deploy.run".into());
    ctx.extra.insert("output".into(), "error: disk full".into());
    ctx
}

#[test]
fn every_builtin_renders_with_a_full_and_a_minimal_context() {
    let set = PromptSet::builtin().expect("built-in templates parse");
    for kind in AgentKind::ALL {
        assert_eq!(set.origin(kind), &TemplateOrigin::Builtin);
        for ctx in [minimal(kind), full(kind)] {
            let out = set
                .render(kind, &ctx)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(out.contains("ORCH-7"), "{kind}: {out}");
            assert!(out.contains("Handle empty input"), "{kind}");
            assert!(!out.contains("{{") && !out.contains("{%"), "{kind}: {out}");
            assert!(out.ends_with('\n'), "{kind}");
            // trim_blocks keeps the tags from leaving runs of blank lines.
            assert!(!out.contains("\n\n\n\n"), "{kind}:\n{out}");
        }
    }
}

#[test]
fn analyst_names_its_artefacts_and_commits_them() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Analyst, &minimal(AgentKind::Analyst))
        .expect("render");
    for needle in [
        "docs/work-items/ORCH-7/",
        "01-analysis.md",
        "02-trz.md",
        "03-adr.md",
        "04-test-plan.yaml",
        "git commit",
        "feature/ORCH-7-empty-input",
    ] {
        assert!(out.contains(needle), "missing {needle:?}");
    }
    assert!(!out.contains("REJECTED"));
}

#[test]
fn analyst_rerun_puts_the_rejection_comment_first() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Analyst, &full(AgentKind::Analyst))
        .expect("render");
    let rejected = out.find("REJECTED").expect("rejection heading");
    let comment = out
        .find("Please also cover whitespace-only input.")
        .expect("comment");
    let work_item = out.find("## The work item").expect("work item");
    assert!(rejected < comment && comment < work_item, "{out}");
    // The previous artefacts are quoted, with a fence longer than their own.
    assert!(out.contains("````\nREQ-1 parse"), "{out}");
}

#[test]
fn developer_gets_review_comments_and_the_approval_comment() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Developer, &full(AgentKind::Developer))
        .expect("render");
    assert!(
        out.contains("Changes requested — review round 3 of 3"),
        "{out}"
    );
    assert!(out.contains("This is the last round"));
    assert!(out.contains("1. src/parse.rs: return ParseError::Empty"));
    // A multi-line comment stays inside its list item.
    assert!(
        out.contains("2. Add a test\n   for the empty input"),
        "{out}"
    );
    assert!(out.contains("Please also cover whitespace-only input."));

    let first = set
        .render(AgentKind::Developer, &minimal(AgentKind::Developer))
        .expect("render");
    assert!(!first.contains("Changes requested"));
    assert!(first.contains("No analysis artefacts were found"));
}

#[test]
fn reviewer_sees_the_diff_or_is_told_to_fetch_it() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Reviewer, &full(AgentKind::Reviewer))
        .expect("render");
    assert!(out.contains("```diff\ndiff --git a/src/parse.rs"), "{out}");

    let none = set
        .render(AgentKind::Reviewer, &minimal(AgentKind::Reviewer))
        .expect("render");
    assert!(none.contains("The diff was not included"));

    let empty = minimal(AgentKind::Reviewer).with_diff("", 100);
    let out = set.render(AgentKind::Reviewer, &empty).expect("render");
    assert!(out.contains("no changes"), "{out}");

    let cut = minimal(AgentKind::Reviewer).with_diff(&"+line\n".repeat(100), 60);
    let out = set.render(AgentKind::Reviewer, &cut).expect("render");
    assert!(
        out.contains("[… diff truncated by orch: 60 of 600 bytes shown. Run `git diff origin/main...HEAD` to see all of it.]"),
        "{out}"
    );
}

/// The `orch-verdict` blocks of a text, fences included.
fn verdict_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```orch-verdict\n") {
        let after = &rest[start..];
        let body_end = after["```orch-verdict\n".len()..]
            .find("\n```")
            .expect("closed block")
            + "```orch-verdict\n".len();
        blocks.push(after[..body_end + "\n```".len()].to_owned());
        rest = &after[body_end..];
    }
    blocks
}

#[test]
fn reviewer_verdict_examples_are_accepted_by_parse_verdict() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Reviewer, &minimal(AgentKind::Reviewer))
        .expect("render");
    assert!(out.contains("info\nstring is `orch-verdict`"), "{out}");
    assert!(out.contains("\"changes_requested\""));

    let blocks = verdict_blocks(&out);
    assert_eq!(blocks.len(), 2, "{out}");
    let mut decisions = Vec::new();
    for block in &blocks {
        // Pasted as the end of a final answer, as the prompt asks.
        let final_text = format!("I reviewed the diff against the spec.\n\n{block}\n");
        let verdict = parse_verdict(&final_text)
            .unwrap_or_else(|e| panic!("example not accepted: {e}\n{block}"));
        decisions.push(verdict.decision);
        if verdict.decision == ReviewDecision::ChangesRequested {
            assert_eq!(verdict.comments.len(), 2);
        }
    }
    assert_eq!(
        decisions,
        [ReviewDecision::ChangesRequested, ReviewDecision::Approve]
    );
    // The prompt documents only the fenced format, never the `VERDICT:` line.
    assert!(
        !out.lines()
            .any(|l| l.trim_start().to_ascii_lowercase().starts_with("verdict:")),
        "{out}"
    );
}

#[test]
fn merger_lists_the_conflict_files() {
    let set = PromptSet::builtin().expect("set");
    let out = set
        .render(AgentKind::Merger, &full(AgentKind::Merger))
        .expect("render");
    assert!(out.contains("- `src/a.rs`\n- `src/b.rs`\n"), "{out}");
    let out = set
        .render(AgentKind::Merger, &minimal(AgentKind::Merger))
        .expect("render");
    assert!(
        out.contains("did not record which files conflicted"),
        "{out}"
    );
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

#[test]
fn overrides_win_in_the_order_given() {
    let repo = dir_with(&[(
        "developer.md.j2",
        "repo developer {{ task.work_item_id }}\n",
    )]);
    let config = dir_with(&[
        ("developer.md.j2", "config developer\n"),
        ("reviewer.md.j2", "config reviewer {{ review_round }}\n"),
    ]);
    let missing = PathBuf::from("/nonexistent/orch-prompts");
    let set = PromptSet::load(&[
        missing,
        repo.path().to_path_buf(),
        config.path().to_path_buf(),
    ])
    .expect("load");

    let dev = full(AgentKind::Developer);
    assert_eq!(
        set.render(AgentKind::Developer, &dev).expect("render"),
        "repo developer ORCH-7\n"
    );
    assert_eq!(
        set.origin(AgentKind::Developer),
        &TemplateOrigin::File(repo.path().join("developer.md.j2"))
    );
    assert_eq!(
        set.render(AgentKind::Reviewer, &full(AgentKind::Reviewer))
            .expect("render"),
        "config reviewer 3\n"
    );
    assert_eq!(set.origin(AgentKind::Analyst), &TemplateOrigin::Builtin);
    let analyst = set
        .render(AgentKind::Analyst, &minimal(AgentKind::Analyst))
        .expect("render");
    assert!(analyst.starts_with("# Analyse ORCH-7"), "{analyst}");
}

#[test]
fn a_broken_override_is_an_error_naming_file_and_line() {
    let dir = dir_with(&[(
        "reviewer.md.j2",
        "line one\nline two\n{% if diff %}\nunclosed\n",
    )]);
    let err = PromptSet::load(&[dir.path().to_path_buf()]).expect_err("must not parse");
    let path = dir.path().join("reviewer.md.j2");
    match &err {
        PromptError::ParseTemplate { template, line, .. } => {
            assert_eq!(template, &path.display().to_string());
            assert!(line.is_some_and(|l| l >= 3), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("reviewer.md.j2"), "{message}");
    assert!(message.contains("line "), "{message}");
}

#[test]
fn an_unreadable_override_is_an_error_not_a_silent_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A folder where the file should be: it exists but cannot be read as text.
    std::fs::create_dir(dir.path().join("analyst.md.j2")).expect("mkdir");
    let err = PromptSet::load(&[dir.path().to_path_buf()]).expect_err("must fail");
    assert!(matches!(err, PromptError::ReadTemplate { .. }), "{err:?}");
    assert!(err.to_string().contains("analyst.md.j2"), "{err}");
}

#[test]
fn a_misspelt_variable_is_an_error_not_an_empty_string() {
    let dir = dir_with(&[(
        "developer.md.j2",
        "Work on {{ task.title }}\nReview: {{ reviewer_coments | join(', ') }}\n",
    )]);
    let set = PromptSet::load(&[dir.path().to_path_buf()]).expect("parses");
    let err = set
        .render(AgentKind::Developer, &full(AgentKind::Developer))
        .expect_err("strict undefined");
    match &err {
        PromptError::Render {
            kind,
            template,
            line,
            ..
        } => {
            assert_eq!(*kind, AgentKind::Developer);
            assert!(template.ends_with("developer.md.j2"), "{template}");
            assert_eq!(*line, Some(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("undefined"), "{message}");

    // Also a missing attribute, and printing a plain undefined name.
    for source in [
        "{{ task.titel }}",
        "{{ nothing }}",
        "{% for x in nope %}{% endfor %}",
    ] {
        let dir = dir_with(&[("merger.md.j2", source)]);
        let set = PromptSet::load(&[dir.path().to_path_buf()]).expect("parses");
        let res = set.render(AgentKind::Merger, &minimal(AgentKind::Merger));
        assert!(
            matches!(res, Err(PromptError::Render { .. })),
            "{source}: {res:?}"
        );
    }
}

#[test]
fn guarded_optional_values_render_under_strict_undefined() {
    let dir = dir_with(&[(
        "deployer.md.j2",
        "{{ extra.missing | default('n/a') }}|{% if extra.step is defined %}{{ extra.step }}{% endif %}|{{ gate_comment or 'none' }}\n",
    )]);
    let set = PromptSet::load(&[dir.path().to_path_buf()]).expect("parses");
    let out = set
        .render(AgentKind::Deployer, &minimal(AgentKind::Deployer))
        .expect("render");
    assert_eq!(out, "n/a||none\n");
}

#[test]
fn builtin_sources_are_the_shipped_files() {
    assert!(default_template(AgentKind::Reviewer).contains("orch-verdict"));
    assert!(default_template(AgentKind::Analyst).contains("04-test-plan.yaml"));
}

#[test]
fn a_tombstoned_key_renders_as_the_original() {
    let mut t = task(Stage::Analysis);
    t.work_item_id = "ORCH-7#cancelled-42".into();
    let ctx = PromptContext::new(&t, "main", AgentKind::Analyst).expect("context");
    assert_eq!(ctx.task.work_item_id, "ORCH-7");
    assert_eq!(ctx.docs_dir, "docs/work-items/ORCH-7");

    t.work_item_id = "../../etc".into();
    let err = PromptContext::new(&t, "main", AgentKind::Analyst).expect_err("traversal");
    assert!(matches!(err, PromptError::InvalidKey(_)), "{err:?}");
}

/// Not a check: `cargo test -p orch-agent --test prompts_templates -- --ignored
/// --nocapture show` prints every built-in prompt for reading.
#[test]
#[ignore]
fn show() {
    let set = PromptSet::builtin().expect("set");
    for kind in AgentKind::ALL {
        for ctx in [minimal(kind), full(kind)] {
            println!(
                "===== {kind} =====\n{}",
                set.render(kind, &ctx).expect("render")
            );
        }
    }
}
