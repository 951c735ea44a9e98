//! A Symphony-style WORKFLOW.md as a layer of orch's configuration, with
//! Symphony's own example (tests/fixtures/symphony, see SOURCES.md): what it
//! maps, what it names, and how orch.toml and the environment override it.

// Jail's closures must return `Result<(), figment::Error>`; its size is figment's choice.
#![allow(clippy::result_large_err)]

use figment::Jail;
use orch_config::{AdapterKind, Config, ConfigError, TrackerKind};
use std::path::{Path, PathBuf};

fn symphony() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/symphony/WORKFLOW.md"),
    )
    .unwrap()
}

fn jailed(e: ConfigError) -> figment::Error {
    e.to_string().into()
}

fn warned(c: &Config) -> Vec<String> {
    c.validate()
        .unwrap()
        .into_iter()
        .map(|w| w.message)
        .collect()
}

#[test]
fn symphonys_example_maps_onto_orch_and_names_what_it_cannot_honour() {
    Jail::expect_with(|jail| {
        jail.create_file("WORKFLOW.md", &symphony())?;
        // What Linear needs besides the workflow: the team orch serves.
        jail.create_file(
            "orch.toml",
            "[[repos]]\nname = \"symphony\"\nremote = \"remote.git\"\n[tracker.linear.teams.SYM]\n",
        )?;
        let c = Config::load_with_workflow(None, Some(Path::new("WORKFLOW.md"))).map_err(jailed)?;
        assert_eq!(c.tracker.kind, TrackerKind::Linear);
        assert_eq!(c.queue.limits.global, Some(10));
        let dev = c
            .agents
            .developer
            .as_ref()
            .expect("codex.command → agents.developer");
        assert_eq!(dev.adapter, AdapterKind::Codex);
        assert_eq!(
            dev.command.as_deref().unwrap(),
            [
                "codex",
                "--config",
                "shell_environment_policy.inherit=all",
                "--config",
                "model=\"gpt-5.5\"",
                "--config",
                "model_reasoning_effort=xhigh",
                "exec",
                "--json"
            ]
        );
        let prompt = c
            .workflow_prompt()
            .expect("the body is the developer's template");
        assert!(
            prompt
                .template
                .starts_with("You are working on a Linear ticket `{{ issue.identifier }}`")
        );
        assert!(!prompt.template.starts_with("---"));
        assert_eq!(
            c.workflow.as_deref(),
            Some(jail.directory().join("WORKFLOW.md").as_path())
        );
        let warnings = warned(&c).join("\n");
        for key in [
            "tracker.provider.project_slug",
            "tracker.active_states",
            "tracker.terminal_states",
            "polling.interval_ms",
            "workspace.root",
            "hooks.after_create",
            "hooks.before_remove",
            "agent.max_turns",
            "codex.approval_policy",
            "codex.thread_sandbox",
            "codex.turn_sandbox_policy",
        ] {
            assert!(
                warnings.contains(&format!("WORKFLOW.md: {key}: not honoured")),
                "{key}:\n{warnings}"
            );
        }
        Ok(())
    });
}

#[test]
fn orch_toml_names_the_workflow_and_overrides_its_keys_with_a_warning() {
    Jail::expect_with(|jail| {
        jail.create_dir("conf")?;
        jail.create_file("conf/WORKFLOW.md", &symphony())?;
        jail.create_file(
            "conf/orch.toml",
            "workflow = \"WORKFLOW.md\"\n[tracker]\nkind = \"builtin\"\n[queue.limits]\nglobal = 2\n",
        )?;
        let c = Config::load(Some(Path::new("conf/orch.toml"))).map_err(jailed)?;
        assert_eq!(c.tracker.kind, TrackerKind::Builtin, "orch.toml wins");
        assert_eq!(
            c.agents.developer.as_ref().unwrap().adapter,
            AdapterKind::Codex
        );
        assert_eq!(c.queue.limits.global, Some(2));
        assert_eq!(
            c.workflow,
            Some(jail.directory().join("conf").join("WORKFLOW.md")),
            "relative to orch.toml's folder"
        );
        let warnings = warned(&c).join("\n");
        assert!(warnings.contains("tracker.kind: \"linear\" is overridden by orch.toml or the environment (\"builtin\")"), "{warnings}");
        assert!(
            warnings.contains("queue.limits.global: 10 is overridden"),
            "{warnings}"
        );
        // The host's developer command runs with the host's adapter, not
        // with the codex adapter the workflow chose for its own command.
        jail.set_env(
            "ORCH_AGENTS__DEVELOPER__COMMAND",
            "[\"examples/agents/developer.sh\"]",
        );
        let c = Config::load(Some(Path::new("conf/orch.toml"))).map_err(jailed)?;
        let dev = c.agents.developer.as_ref().unwrap();
        assert_eq!(dev.adapter, AdapterKind::Command);
        assert_eq!(
            dev.command.as_deref().unwrap(),
            ["examples/agents/developer.sh"]
        );
        // The environment wins over both.
        jail.set_env("ORCH_QUEUE__LIMITS__GLOBAL", "7");
        let c = Config::load(Some(Path::new("conf/orch.toml"))).map_err(jailed)?;
        assert_eq!(c.queue.limits.global, Some(7));
        Ok(())
    });
}

#[test]
fn an_unusable_workflow_value_fails_the_load_unless_the_host_sets_that_key() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "WORKFLOW.md",
            "---\ntracker:\n  kind: trello\n---\nDo it.\n",
        )?;
        let e = Config::load_with_workflow(None, Some(Path::new("WORKFLOW.md"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("`trello` is not a tracker orch supports"),
            "{e}"
        );
        assert_eq!(e.keys().len(), 1);
        assert!(
            e.keys()[0].ends_with("WORKFLOW.md: tracker.kind"),
            "{:?}",
            e.keys()
        );
        jail.create_file("orch.toml", "[tracker]\nkind = \"builtin\"\n")?;
        let c = Config::load_with_workflow(None, Some(Path::new("WORKFLOW.md"))).map_err(jailed)?;
        assert_eq!(c.tracker.kind, TrackerKind::Builtin);
        assert!(
            warned(&c)
                .join("\n")
                .contains("not used: orch.toml or the environment sets tracker.kind")
        );
        Ok(())
    });
}

#[test]
fn a_bad_workflow_file_is_a_typed_error_naming_it() {
    Jail::expect_with(|jail| {
        let missing = Config::load_with_workflow(None, Some(Path::new("nope.md"))).unwrap_err();
        assert!(
            matches!(
                missing,
                ConfigError::Workflow(orch_config::WorkflowError::MissingWorkflowFile { .. })
            ),
            "{missing:?}"
        );
        jail.create_file("list.md", "---\n- a\n---\nx")?;
        let e = Config::load_with_workflow(None, Some(Path::new("list.md"))).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Workflow(orch_config::WorkflowError::FrontMatterNotAMap { .. })
            ),
            "{e:?}"
        );
        jail.create_file("bad.md", "---\nagent: [\n---\nx")?;
        let e = Config::load_with_workflow(None, Some(Path::new("bad.md"))).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Workflow(orch_config::WorkflowError::WorkflowParseError { .. })
            ),
            "{e:?}"
        );
        // A value of the wrong type names the workflow file, not orch.toml.
        jail.create_file("typed.md", "---\ncodex:\n  command: [\"codex\"]\n---\nx")?;
        let e = Config::load_with_workflow(None, Some(Path::new("typed.md"))).unwrap_err();
        assert!(e.to_string().contains("typed.md"), "{e}");
        Ok(())
    });
}

#[test]
fn without_a_workflow_nothing_changes() {
    Jail::expect_with(|jail| {
        // A WORKFLOW.md that merely sits in the working folder is not read:
        // naming it is explicit (Symphony reads ./WORKFLOW.md by default).
        jail.create_file(
            "WORKFLOW.md",
            "---\ntracker:\n  kind: trello\n---\nIgnored.\n",
        )?;
        let c = Config::load(None).map_err(jailed)?;
        assert_eq!(c.workflow, None::<PathBuf>);
        assert!(c.workflow_prompt().is_none());
        Ok(())
    });
}
