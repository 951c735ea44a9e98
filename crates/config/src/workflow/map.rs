//! Symphony's front matter keys (SPEC §5.3) onto orch's configuration keys.
//!
//! Every key is either mapped (the value orch uses for it), or named in a
//! warning that says why orch does not honour it and what it does instead;
//! nothing is dropped silently. Values that cannot be right (a secret written
//! into the file, a tracker orch does not speak, a shell pipeline as the agent
//! command) are problems, keyed by the orch key they would have set, so that
//! orch.toml or the environment can substitute that key.
//!
//! | front matter                      | orch                                        |
//! |-----------------------------------|---------------------------------------------|
//! | `tracker.kind`                    | `tracker.kind`                              |
//! | `tracker.provider.api_key: $VAR`  | `tracker.linear.api_key_env = "VAR"`        |
//! | `tracker.provider.endpoint`       | `tracker.linear.base_url`                   |
//! | `agent.max_concurrent_agents`     | `queue.limits.global`                       |
//! | `agent.max_retry_backoff_ms`      | `queue.retry.cap_secs`                      |
//! | `codex.command`                   | `agents.developer` (adapter, command)       |
//! | `codex.turn_timeout_ms`           | `agents.developer.timeout_secs`             |
//! | `codex.stall_timeout_ms`          | `agents.developer.idle_timeout_secs`        |
//! | the Markdown body                 | the developer's prompt template             |

use crate::error::{Problem, Warning};
use crate::model::TrackerKind;
use serde_json::{Map, Value, json};

/// What a front matter means to orch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mapped {
    /// orch configuration keys, nested like orch.toml's tables.
    pub overlay: Map<String, Value>,
    pub warnings: Vec<Warning>,
    /// Values that cannot be used, each with the orch key it would have set
    /// (dotted): a host configuration that sets that key overrides it.
    pub problems: Vec<(String, Problem)>,
}

impl Mapped {
    fn set(&mut self, key: &str, value: Value) {
        let mut map = &mut self.overlay;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_owned(), value);
                return;
            }
            let entry = map
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("just made an object");
        }
    }

    fn warn(&mut self, label: &str, key: &str, what: impl std::fmt::Display) {
        self.warnings.push(Warning::at(
            format!("{label}: {key}"),
            format!("not honoured: {what}"),
        ));
    }

    fn problem(&mut self, orch_key: &str, label: &str, key: &str, what: impl std::fmt::Display) {
        self.problems.push((
            orch_key.to_owned(),
            Problem::at(format!("{label}: {key}"), what),
        ));
    }
}

/// Maps `front` (a workflow file's front matter); `label` names the file in
/// warnings and problems.
pub fn map_front_matter(front: &Map<String, Value>, label: &str) -> Mapped {
    let mut m = Mapped::default();
    for (key, value) in front {
        match key.as_str() {
            "tracker" => tracker(&mut m, label, value),
            "polling" => each(&mut m, label, "polling", value, |m, k, _| {
                m.warn(label, &format!("polling.{k}"), "orch reacts to the tracker's webhooks at once and lists the tracker every 25 s as a safety net");
            }),
            "workspace" => each(&mut m, label, "workspace", value, |m, k, _| {
                m.warn(label, &format!("workspace.{k}"), "orch keeps each task's worktree under data_dir/repos, checked out from its own mirror of the repo");
            }),
            "hooks" => each(&mut m, label, "hooks", value, |m, k, _| {
                m.warn(label, &format!("hooks.{k}"), "orch prepares and removes worktrees itself and runs no workflow hook scripts; a repo's checks before a merge are [[repos]] verify, its deploy steps [repos.deploy]");
            }),
            "agent" => each(&mut m, label, "agent", value, |m, k, v| agent(m, label, k, v)),
            "codex" => codex(&mut m, label, value),
            other => m.warn(
                label,
                other,
                "not a key orch knows in a workflow file (tracker, polling, workspace, hooks, agent, codex)",
            ),
        }
    }
    m
}

/// Calls `f` for each key of the section `name`, or warns that it is not a map.
fn each(
    m: &mut Mapped,
    label: &str,
    name: &str,
    value: &Value,
    mut f: impl FnMut(&mut Mapped, &str, &Value),
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                f(m, k, v);
            }
        }
        Value::Null => {}
        other => m.warn(
            label,
            name,
            format!("expected a map, found {}", super::kind_of(other)),
        ),
    }
}

fn tracker(m: &mut Mapped, label: &str, value: &Value) {
    let Value::Object(t) = value else {
        m.problem(
            "tracker.kind",
            label,
            "tracker",
            "expected a map with `kind`",
        );
        return;
    };
    let kind = match t.get("kind") {
        Some(Value::String(s)) => match parse_kind(s) {
            Some(kind) => {
                m.set("tracker.kind", json!(kind.as_str()));
                Some(kind)
            }
            None => {
                m.problem(
                    "tracker.kind",
                    label,
                    "tracker.kind",
                    format!(
                        "`{s}` is not a tracker orch supports (builtin, plane, github, gitea, gitlab, linear, jira); set [tracker] kind in orch.toml to use another"
                    ),
                );
                None
            }
        },
        Some(other) => {
            m.problem(
                "tracker.kind",
                label,
                "tracker.kind",
                format!("expected a string, found {}", super::kind_of(other)),
            );
            None
        }
        None => None,
    };
    for (k, v) in t {
        match k.as_str() {
            "kind" => {}
            "provider" => each(m, label, "tracker.provider", v, |m, pk, pv| {
                provider(m, label, kind, pk, pv);
            }),
            "required_labels" if v.as_array().is_none_or(Vec::is_empty) => {}
            "required_labels" => m.warn(label, "tracker.required_labels", "orch takes every work item its tracker states put in To Analyse; labels do not gate it"),
            "active_states" | "terminal_states" => m.warn(
                label,
                &format!("tracker.{k}"),
                "orch moves work through its own gates; the tracker state of each is set in [tracker.states] (and per team or project)",
            ),
            other => m.warn(label, &format!("tracker.{other}"), "not a tracker key orch knows"),
        }
    }
}

fn parse_kind(s: &str) -> Option<TrackerKind> {
    let s = s.trim().to_ascii_lowercase();
    [
        TrackerKind::Builtin,
        TrackerKind::Plane,
        TrackerKind::Github,
        TrackerKind::Gitea,
        TrackerKind::Gitlab,
        TrackerKind::Linear,
        TrackerKind::Jira,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

fn provider(m: &mut Mapped, label: &str, kind: Option<TrackerKind>, key: &str, value: &Value) {
    let full = format!("tracker.provider.{key}");
    match (kind, key) {
        (Some(TrackerKind::Linear), "api_key") => match value.as_str().map(str::trim) {
            Some(s) if s.starts_with('$') && valid_env_name(&s[1..]) => {
                m.set("tracker.linear.api_key_env", json!(&s[1..]));
            }
            _ => m.problem(
                "tracker.linear.api_key_env",
                label,
                &full,
                "orch reads secrets only from environment variables: write `$LINEAR_API_KEY` (the variable's name), never the key itself",
            ),
        },
        (Some(TrackerKind::Linear), "endpoint") => match value.as_str() {
            Some(url) => {
                let base = url.trim().trim_end_matches('/');
                let base = base.strip_suffix("/graphql").unwrap_or(base);
                m.set("tracker.linear.base_url", json!(base));
            }
            None => m.warn(label, &full, "expected a URL string"),
        },
        (Some(TrackerKind::Linear), _) => m.warn(
            label,
            &full,
            "orch selects Linear issues by team: [tracker.linear.teams.<KEY>] in orch.toml, with the team's repo and state names",
        ),
        _ => m.warn(
            label,
            &full,
            "orch reads this tracker's settings from orch.toml ([tracker.<kind>])",
        ),
    }
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn agent(m: &mut Mapped, label: &str, key: &str, value: &Value) {
    let label_key = format!("agent.{key}");
    match key {
        "max_concurrent_agents" => match positive(value) {
            Some(n) => m.set("queue.limits.global", json!(n)),
            None => m.problem(
                "queue.limits.global",
                label,
                &label_key,
                "expected a positive integer",
            ),
        },
        "max_retry_backoff_ms" => match positive(value) {
            Some(ms) => m.set("queue.retry.cap_secs", json!(ms.div_ceil(1000))),
            None => m.problem(
                "queue.retry.cap_secs",
                label,
                &label_key,
                "expected a positive integer of milliseconds",
            ),
        },
        "max_turns" => m.warn(label, &label_key, "orch runs one agent session per job and bounds it by time, tokens and cost ([agents.developer] timeout_secs, [budget])"),
        "max_concurrent_agents_by_state" => m.warn(label, &label_key, "orch limits concurrency per agent kind and repo ([queue.limits] per_agent, per_repo)"),
        other => m.warn(label, &format!("agent.{other}"), "not an agent key orch knows"),
    }
}

fn codex(m: &mut Mapped, label: &str, value: &Value) {
    let Value::Object(c) = value else {
        m.warn(label, "codex", "expected a map");
        return;
    };
    for (k, v) in c {
        let full = format!("codex.{k}");
        match k.as_str() {
            "command" => match v.as_str().map(codex_command) {
                Some(Ok((adapter, argv))) => {
                    m.set("agents.developer.adapter", json!(adapter));
                    m.set("agents.developer.command", json!(argv));
                }
                Some(Err(why)) => m.problem("agents.developer.command", label, &full, why),
                None => m.problem(
                    "agents.developer.command",
                    label,
                    &full,
                    "expected a command string",
                ),
            },
            "turn_timeout_ms" => match positive(v) {
                Some(ms) => m.set("agents.developer.timeout_secs", json!(ms.div_ceil(1000))),
                None => m.problem(
                    "agents.developer.timeout_secs",
                    label,
                    &full,
                    "expected a positive integer of milliseconds",
                ),
            },
            "stall_timeout_ms" => match v.as_i64() {
                Some(ms) if ms > 0 => m.set(
                    "agents.developer.idle_timeout_secs",
                    json!((ms as u64).div_ceil(1000)),
                ),
                Some(_) => m.warn(label, &full, "orch always stops a run that prints nothing for agents.developer.idle_timeout_secs; it cannot be switched off"),
                None => m.problem(
                    "agents.developer.idle_timeout_secs",
                    label,
                    &full,
                    "expected an integer of milliseconds",
                ),
            },
            "approval_policy" | "thread_sandbox" | "turn_sandbox_policy" => m.warn(
                label,
                &full,
                "orch contains agents with its own sandbox ([sandbox], agents.<kind>.sandbox and egress_allow) and runs Codex non-interactively",
            ),
            "read_timeout_ms" => m.warn(label, &full, "orch reads Codex's JSONL events as they come; there is no request to time out"),
            other => m.warn(label, &format!("codex.{other}"), "not a codex key orch knows"),
        }
    }
}

/// Symphony's `codex.command` (a shell command of the app-server) as an
/// orch agent command. orch runs argv without a shell and speaks to Codex
/// through `codex exec --json`: a command that ends with `app-server` keeps
/// its program and global flags (`--config k=v`) and runs `exec` instead;
/// any other command is run as written, by the plain command adapter.
fn codex_command(command: &str) -> Result<(&'static str, Vec<String>), String> {
    let words = shell_words::split(command)
        .map_err(|e| format!("cannot split the command into words: {e}"))?;
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    if let Some(w) = words
        .iter()
        .find(|w| ["&&", "||", "|", ";", "&", ">", "<"].contains(&w.as_str()) || w.contains("$("))
    {
        return Err(format!(
            "orch runs the agent without a shell, so `{w}` would be passed to it as an argument; put the pipeline in a script and name the script"
        ));
    }
    match words.split_last() {
        Some((last, rest)) if last == "app-server" && !rest.is_empty() => {
            let mut argv = rest.to_vec();
            argv.push("exec".into());
            argv.push("--json".into());
            Ok(("codex", argv))
        }
        _ => Ok(("command", words)),
    }
}

fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(yaml: &str) -> Mapped {
        let front: Map<String, Value> = yaml_serde::from_str(yaml).unwrap();
        map_front_matter(&front, "WORKFLOW.md")
    }

    #[test]
    fn symphonys_codex_command_keeps_its_flags_and_runs_exec() {
        let m = map(
            "codex:\n  command: codex --config shell_environment_policy.inherit=all --config 'model=\"gpt-5.5\"' app-server\n  turn_timeout_ms: 1500\n  stall_timeout_ms: 300000\n",
        );
        assert_eq!(
            m.overlay["agents"]["developer"],
            json!({
                "adapter": "codex",
                "command": ["codex", "--config", "shell_environment_policy.inherit=all", "--config", "model=\"gpt-5.5\"", "exec", "--json"],
                "timeout_secs": 2,
                "idle_timeout_secs": 300,
            })
        );
        assert!(m.problems.is_empty() && m.warnings.is_empty(), "{m:?}");
    }

    #[test]
    fn a_shell_pipeline_as_the_command_is_a_problem_of_the_developer_command() {
        let m = map("codex:\n  command: cd x && codex app-server\n");
        assert_eq!(m.problems.len(), 1, "{m:?}");
        assert_eq!(m.problems[0].0, "agents.developer.command");
        assert!(m.problems[0].1.message.contains("without a shell"));
    }

    #[test]
    fn linear_keys_map_and_a_literal_key_is_refused() {
        let m = map(
            "tracker:\n  kind: Linear\n  provider:\n    api_key: $MY_KEY\n    endpoint: https://linear.example/graphql\n    project_slug: x\n  active_states: [Todo]\n",
        );
        assert_eq!(
            m.overlay["tracker"],
            json!({"kind": "linear", "linear": {"api_key_env": "MY_KEY", "base_url": "https://linear.example"}})
        );
        let keys: Vec<_> = m.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "WORKFLOW.md: tracker.active_states",
                "WORKFLOW.md: tracker.provider.project_slug"
            ]
        );
        let m = map("tracker:\n  kind: linear\n  provider:\n    api_key: lin_api_secret\n");
        assert_eq!(m.problems[0].0, "tracker.linear.api_key_env");
        assert!(!m.problems[0].1.message.contains("lin_api_secret"));
    }

    #[test]
    fn required_labels_are_named_unless_empty() {
        let m = map("tracker:\n  kind: linear\n  required_labels: []\n");
        assert!(m.warnings.is_empty(), "{m:?}");
        let m = map("tracker:\n  kind: linear\n  required_labels: [Agent]\n");
        assert_eq!(m.warnings.len(), 1, "{m:?}");
        assert_eq!(m.warnings[0].key, "WORKFLOW.md: tracker.required_labels");
    }

    #[test]
    fn an_unknown_tracker_is_a_problem_of_tracker_kind() {
        let m = map("tracker:\n  kind: trello\n");
        assert_eq!(m.problems[0].0, "tracker.kind");
        assert!(m.overlay.is_empty());
    }

    #[test]
    fn concurrency_and_backoff_map_and_everything_else_is_named() {
        let m = map(
            "agent:\n  max_concurrent_agents: 4\n  max_retry_backoff_ms: 1\n  max_turns: 20\n  max_concurrent_agents_by_state: {todo: 1}\nhooks:\n  after_create: git clone x .\n  timeout_ms: 5\nworkspace:\n  root: ~/w\npolling:\n  interval_ms: 5000\nserver:\n  port: 1\n",
        );
        assert_eq!(
            Value::Object(m.overlay.clone()),
            json!({"queue": {"limits": {"global": 4}, "retry": {"cap_secs": 1}}})
        );
        let keys: Vec<_> = m
            .warnings
            .iter()
            .map(|w| w.key.trim_start_matches("WORKFLOW.md: "))
            .collect();
        for k in [
            "agent.max_turns",
            "agent.max_concurrent_agents_by_state",
            "hooks.after_create",
            "hooks.timeout_ms",
            "workspace.root",
            "polling.interval_ms",
            "server",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert!(m.problems.is_empty());
    }
}
