//! Behaviour of orch-config as its users see it: defaults, file + environment
//! merging, error messages that name the key, path resolution, conversions.
//!
//! Tests that touch the process environment or working directory run inside
//! `figment::Jail`, which serialises them and undoes their changes.

// Jail's closures must return `Result<(), figment::Error>`; its size is figment's choice.
#![allow(clippy::result_large_err)]

use figment::Jail;
use orch_config::{
    AdapterKind, Config, ConfigError, ForgeKind, LogFormat, StoreLocation, Synchronous,
    TrackerKind, example_toml,
};
use orch_core::{AgentKind, Gates};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text)
}

fn invalid(text: &str) -> ConfigError {
    match parse(text).and_then(|c| c.validate().map(|_| c)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// Jail's closures return figment errors; carry ours as text.
fn jailed(e: ConfigError) -> figment::Error {
    e.to_string().into()
}

#[test]
fn empty_file_is_the_embedded_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.data_dir, PathBuf::from(".orch"));
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.server.api_token_env, "ORCH_API_TOKEN");
    assert!(!c.server.read_only_open);
    assert_eq!(c.store.url, None);
    assert_eq!(c.store.synchronous, Synchronous::Normal);
    assert_eq!(c.store.busy_timeout_ms, 5000);
    assert_eq!(c.store.max_connections, None);
    assert_eq!(
        (
            c.queue.max_attempts,
            c.queue.lease_secs,
            c.queue.heartbeat_secs,
            c.queue.poll_ms
        ),
        (3, 60, 15, 500)
    );
    assert_eq!(c.tracker.kind, TrackerKind::Builtin);
    assert_eq!(c.tracker.states.to_analyse, "To Analyse");
    assert_eq!(c.tracker.states.stop, "STOP");
    assert_eq!(c.tracker.states.needs_attention, "Needs Attention");
    assert_eq!(c.forge.kind, ForgeKind::Local);
    assert!(c.repos.is_empty());
    assert_eq!(c.agent_env.allow, ["PATH", "HOME", "LANG", "TERM"]);
    assert_eq!(c.review.max_review_rounds, 3);
    assert_eq!(c.review.max_rejection_rounds, 3);
    assert_eq!(c.logging.format, LogFormat::Human);
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.budget.max_tokens, None);

    let a = c.agent(AgentKind::Developer);
    assert_eq!(a.adapter, AdapterKind::Command);
    assert_eq!(a.command, None);
    assert_eq!(a.timeout(), Duration::from_secs(3600));
    assert_eq!(a.idle_timeout(), Duration::from_secs(600));
    assert_eq!(c.max_attempts(AgentKind::Developer), 3);

    // The defaults convert into exactly the core's own defaults.
    assert_eq!(c.limits(), orch_core::Limits::default());
    assert_eq!(c.gates(), Gates::default());
    assert_eq!(c.retry_policy(), orch_core::RetryPolicy::default());
    assert!(c.stop_scope().applies("any-repo"));
    assert_eq!(c.stop_grace_int(), Duration::from_secs(10));
    assert_eq!(c.stop_grace_term(), Duration::from_secs(10));

    let warnings = c.validate().expect("the defaults are valid");
    assert!(warnings.iter().any(|w| w.key == "agents"), "{warnings:?}");
}

#[test]
fn example_parses_and_validates() {
    let c = parse(example_toml()).unwrap_or_else(|e| panic!("{e}"));
    let warnings = c.validate().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warnings.iter().all(|w| w.key == "server.api_token_env"),
        "the example only lacks the token: {warnings:?}"
    );
    let demo = c.repo("demo").expect("the example has a demo repo");
    assert_eq!(demo.default_branch, "main");
    assert_eq!(demo.verify, ["cargo", "test"]);
    for kind in AgentKind::ALL {
        let agent = c.agent(kind);
        assert_eq!(agent.adapter, AdapterKind::Command);
        // The merger runs the repo's verify and the deployer its deploy
        // commands: only the agents proper have an example script.
        let expected = (!kind.is_serial()).then(|| vec![format!("examples/agents/{kind}.sh")]);
        assert_eq!(agent.command, expected, "{kind}");
    }
    assert_eq!(c.limits().global, Some(4));
    assert_eq!(c.limits().per_agent.get(&AgentKind::Developer), Some(&2));
    // Every default written out in the example is the embedded default.
    let d = Config::default();
    assert_eq!(
        (&c.server, &c.store, &c.features, &c.stop),
        (&d.server, &d.store, &d.features, &d.stop)
    );
    assert_eq!(
        (&c.tracker, &c.forge, &c.agent_env, &c.review, &c.logging),
        (&d.tracker, &d.forge, &d.agent_env, &d.review, &d.logging)
    );
    assert_eq!(c.merge, d.merge);
    assert_eq!(
        (&c.queue.retry, c.queue.max_attempts, c.queue.lease_secs),
        (&d.queue.retry, d.queue.max_attempts, d.queue.lease_secs)
    );
}

#[test]
fn example_mentions_claude_code_and_codex() {
    let text = example_toml();
    assert!(
        text.contains("\"claude\", \"-p\", \"--output-format\", \"stream-json\", \"--verbose\"")
    );
    assert!(text.contains("\"codex\", \"exec\", \"--json\""));
}

#[test]
fn commented_alternatives_in_the_example_parse_too() {
    // Uncommenting the optional sections of the example must give a valid file.
    let c = parse(
        r#"
        [[notify]]
        name = "team-chat"
        url_env = "ORCH_NOTIFY_URL"
        chat_id = "-1001234567890"
        stages = ["awaiting_approval", "deploy", "needs_attention", "done", "cancelled", "failed"]
        [tracker]
        kind = "plane"
        [tracker.plane]
        base_url = "https://plane.example.org"
        workspace = "my-workspace"
        project_ids = ["p1"]
        [forge]
        kind = "gitea"
        [forge.gitea]
        base_url = "https://git.example.org"
        [[repos]]
        name = "demo"
        remote = "https://git.example.org/team/demo.git"
        [repos.deploy]
        prepare = ["./scripts/deploy.sh", "prepare"]
        run = ["./scripts/deploy.sh", "run"]
        health = ["./scripts/deploy.sh", "health"]
        [agents.developer]
        adapter = "claude_code"
        command = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
        max_attempts = 5
        [agents.reviewer]
        adapter = "codex"
        command = ["codex", "exec", "--json"]
        [budget]
        max_tokens = 2000000
        max_cost_usd = 20.0
        max_wall_secs = 14400
        "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    c.validate().unwrap_or_else(|e| panic!("{e}"));
    let plane = c.tracker.plane.as_ref().unwrap();
    assert_eq!(plane.api_key_env, "ORCH_PLANE_API_KEY");
    assert_eq!(
        c.forge.gitea.as_ref().unwrap().token_env,
        "ORCH_GITEA_TOKEN"
    );
    assert_eq!(
        c.agent(AgentKind::Developer).adapter,
        AdapterKind::ClaudeCode
    );
    assert_eq!(c.agent(AgentKind::Reviewer).adapter, AdapterKind::Codex);
    assert_eq!(c.max_attempts(AgentKind::Developer), 5);
    assert_eq!(c.max_attempts(AgentKind::Reviewer), 3);
    assert!(
        c.repo("demo")
            .unwrap()
            .deploy
            .as_ref()
            .is_some_and(|d| !d.auto)
    );
    assert_eq!(
        c.repo_remote(c.repo("demo").unwrap()),
        "https://git.example.org/team/demo.git"
    );
}

#[test]
fn conversions_into_core_policy() {
    let c = parse(
        r#"
        [[repos]]
        name = "a"
        remote = "a.git"
        [queue.retry]
        base_secs = 5
        cap_secs = 50
        factor = 3
        jitter = 0
        [queue.limits]
        global = 4
        per_repo = 2
        per_repo_overrides = { a = 3 }
        per_agent = { developer = 2, merger = 1 }
        [features]
        serial_gate = false
        task_deps = true
        stop_status = true
        stop_status_repos = ["a"]
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    let l = c.limits();
    assert_eq!(
        (l.global, l.per_repo, l.repo_limit("a"), l.repo_limit("b")),
        (Some(4), Some(2), Some(3), Some(2))
    );
    assert_eq!(l.per_agent.get(&AgentKind::Merger), Some(&1));
    assert_eq!(
        c.gates(),
        Gates {
            serial: false,
            task_deps: true
        }
    );
    let r = c.retry_policy();
    assert_eq!(
        (r.base, r.cap, r.factor, r.jitter),
        (Duration::from_secs(5), Duration::from_secs(50), 3.0, 0.0)
    );
    assert_eq!(r.backoff(2, 0.5), Duration::from_secs(15));
    let s = c.stop_scope();
    assert!(s.applies("a") && !s.applies("b"));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let base = Path::new("/srv/orch");
    let c = parse(
        r#"
        [[repos]]
        name = "demo"
        remote = "remotes/demo.git"
        prompts_dir = "prompts/demo"
        [agents.developer]
        command = ["examples/agents/developer.sh", "--fast"]
        [agents.reviewer]
        command = ["claude", "-p"]
        "#,
    )
    .unwrap()
    .with_base_dir(base);
    assert_eq!(c.base_dir(), base);
    assert_eq!(c.data_dir(), base.join(".orch"));
    assert_eq!(c.runs_dir(), base.join(".orch/runs"));
    assert_eq!(c.repos_dir(), base.join(".orch/repos"));
    assert_eq!(c.store_url(), "sqlite:///srv/orch/.orch/orch.db");
    assert_eq!(
        c.store_location().unwrap(),
        StoreLocation::Sqlite(base.join(".orch/orch.db"))
    );
    let demo = c.repo("demo").unwrap();
    assert_eq!(c.repo_remote(demo), "/srv/orch/remotes/demo.git");
    assert_eq!(c.repo_prompts_dir(demo), Some(base.join("prompts/demo")));
    assert_eq!(
        c.agent_command(AgentKind::Developer),
        Some(vec![
            "/srv/orch/examples/agents/developer.sh".to_owned(),
            "--fast".to_owned()
        ])
    );
    assert_eq!(
        c.agent_command(AgentKind::Reviewer),
        Some(vec!["claude".to_owned(), "-p".to_owned()]),
        "a program on PATH stays as it is"
    );
    assert_eq!(c.agent_command(AgentKind::Analyst), None);

    let moved = parse("data_dir = \"/var/lib/orch\"")
        .unwrap()
        .with_base_dir(base);
    assert_eq!(moved.data_dir(), Path::new("/var/lib/orch"));
    assert_eq!(
        moved.store_url(),
        "sqlite:///var/lib/orch/orch.db",
        "the database follows data_dir"
    );

    for (url, want) in [
        ("sqlite://db/orch.db", "sqlite:///srv/orch/db/orch.db"),
        ("sqlite:db/orch.db", "sqlite:///srv/orch/db/orch.db"),
        ("sqlite:///abs/orch.db", "sqlite:///abs/orch.db"),
        ("postgres://orch@db/orch", "postgres://orch@db/orch"),
        (
            "postgresql://orch@db/orch?sslmode=require",
            "postgresql://orch@db/orch?sslmode=require",
        ),
    ] {
        let c = parse(&format!("[store]\nurl = {url:?}"))
            .unwrap()
            .with_base_dir(base);
        assert_eq!(c.store_url(), want, "{url}");
    }
}

#[test]
fn each_validation_error_names_its_key() {
    let repo = "[[repos]]\nname = \"a\"\nremote = \"a.git\"\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[notify]]\nname = \"chat\"\nurl_env = \"https://hooks.example/x\"",
            "notify[0].url_env",
            "environment variable",
        ),
        (
            "[[notify]]\nname = \"chat\"\nurl_env = \"A\"\n[[notify]]\nname = \"chat\"\nurl_env = \"B\"",
            "notify[1].name",
            "used by another [[notify]]",
        ),
        (
            "[[notify]]\nname = \"chat\"\nurl_env = \"A\"\nstages = []",
            "notify[0].stages",
            "nothing would ever be sent",
        ),
        (
            "[store]\nmax_connections = 0",
            "store.max_connections",
            "must be at least 1 (got 0)",
        ),
        (
            "[queue]\nmax_attempts = 0",
            "queue.max_attempts",
            "must be at least 1 (got 0)",
        ),
        (
            "[queue]\nlease_secs = 10\nheartbeat_secs = 10",
            "queue.heartbeat_secs",
            "less than queue.lease_secs",
        ),
        ("[queue]\npoll_ms = 0", "queue.poll_ms", "at least 1"),
        (
            "[queue.retry]\nfactor = 0.5",
            "queue.retry.factor",
            "at least 1.0",
        ),
        (
            "[queue.retry]\njitter = 1.5",
            "queue.retry.jitter",
            "between 0 and 1",
        ),
        (
            "[queue.retry]\nbase_secs = 700",
            "queue.retry.base_secs",
            "must not exceed queue.retry.cap_secs",
        ),
        (
            "[queue.limits]\nglobal = 0",
            "queue.limits.global",
            "at least 1",
        ),
        (
            "[queue.limits]\nper_repo = 0",
            "queue.limits.per_repo",
            "at least 1",
        ),
        (
            "[queue.limits]\nper_agent = { developer = 0 }",
            "queue.limits.per_agent.developer",
            "at least 1",
        ),
        (
            "[queue.limits]\nper_repo_overrides = { x = 0 }",
            "queue.limits.per_repo_overrides.x",
            "at least 1",
        ),
        (
            "[server]\nlisten = \"8080\"",
            "server.listen",
            "not a socket address",
        ),
        (
            "[server]\napi_token_env = \"sk-live-123\"",
            "server.api_token_env",
            "NAME of the variable",
        ),
        (
            "[server]\napi_token_env = \"ORCH_SERVER__TOKEN\"",
            "server.api_token_env",
            "read as a config override",
        ),
        (
            "[store]\nurl = \"mysql://x/y\"",
            "store.url",
            "unsupported scheme \"mysql\"; use sqlite://PATH or postgres://",
        ),
        ("[store]\nurl = \"orch.db\"", "store.url", "no scheme"),
        (
            "[store]\nurl = \"sqlite://:memory:\"",
            "store.url",
            "in-memory",
        ),
        (
            "[store]\nurl = \"sqlite://x.db?mode=rwc\"",
            "store.url",
            "not supported",
        ),
        (
            "[[repos]]\nname = \"a/b\"\nremote = \"x\"",
            "repos[0].name",
            "invalid repo name \"a/b\": may contain only",
        ),
        (
            &format!("{repo}{repo}"),
            "repos[1].name",
            "duplicate repo name \"a\" (also repos[0].name)",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"\"",
            "repos[0].remote",
            "must not be empty",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\nverify = []",
            "repos[0].verify",
            "must not be empty",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\nverify = [\"\"]",
            "repos[0].verify[0]",
            "program name",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\ndefault_branch = \"a b\"",
            "repos[0].default_branch",
            "not a valid git branch name",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\n[repos.deploy]\nrun = []",
            "repos[0].deploy.run",
            "must not be empty",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\n[repos.deploy]\nrun = [\"d\"]\nhealth = []",
            "repos[0].deploy.health",
            "must not be empty",
        ),
        (
            "[features]\nstop_status_repos = [\"../x\"]",
            "features.stop_status_repos[0]",
            "invalid repo name",
        ),
        (
            "[tracker]\nkind = \"plane\"",
            "tracker.plane",
            "required when tracker.kind = \"plane\"",
        ),
        (
            "[tracker.states]\nmerge = \"Review\"",
            "tracker.states.merge",
            "\"Review\" is also tracker.states.review",
        ),
        (
            "[tracker.states]\ndone = \"\"",
            "tracker.states.done",
            "must not be empty",
        ),
        (
            "[tracker.plane]\nbase_url = \"plane.local\"\nworkspace = \"w\"",
            "tracker.plane.base_url",
            "not an http(s) URL",
        ),
        (
            "[tracker.gitea]\nbase_url = \"https://g\"\nrepos = [\"nope\"]",
            "tracker.gitea.repos[0]",
            "OWNER/NAME",
        ),
        (
            "[tracker]\nkind = \"gitlab\"",
            "tracker.gitlab",
            "required when tracker.kind = \"gitlab\"",
        ),
        (
            "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"https://gl\"",
            "tracker.gitlab.projects",
            "is empty",
        ),
        (
            "[tracker.gitlab]\nbase_url = \"https://gl\"\nprojects = [\"nope\"]",
            "tracker.gitlab.projects[0]",
            "neither a project path",
        ),
        (
            "[tracker]\nkind = \"linear\"",
            "tracker.linear",
            "required when tracker.kind = \"linear\"",
        ),
        (
            "[tracker]\nkind = \"linear\"\n[tracker.linear]",
            "tracker.linear.teams",
            "is empty",
        ),
        (
            "[tracker.linear.teams.ENG]\nworkflow_states = { to_analys = \"Todo\" }",
            "tracker.linear.teams.ENG.workflow_states.to_analys",
            "not a key of [tracker.states]",
        ),
        (
            "[tracker.linear.teams.ENG]\nworkflow_states = { done = \"Review\" }",
            "tracker.linear.teams.ENG.workflow_states.done",
            "\"Review\" is also the state of review",
        ),
        (
            "[tracker.linear.teams.ENG]\nrepo = \"nope\"",
            "tracker.linear.teams.ENG.repo",
            "no repo named",
        ),
        (
            "[tracker.linear.teams.\"EN-G\"]",
            "tracker.linear.teams.EN-G",
            "not a Linear team key",
        ),
        (
            "[tracker]\nkind = \"jira\"",
            "tracker.jira",
            "required when tracker.kind = \"jira\"",
        ),
        (
            "[tracker]\nkind = \"jira\"\n[tracker.jira]\nemail = \"a@b.c\"\n[tracker.jira.projects.ENG]",
            "tracker.jira.base_url",
            "is missing",
        ),
        (
            "[tracker]\nkind = \"jira\"\n[tracker.jira]\nbase_url = \"https://x.atlassian.net\"\n[tracker.jira.projects.ENG]",
            "tracker.jira.email",
            "is missing",
        ),
        (
            "[tracker]\nkind = \"jira\"\n[tracker.jira]\nbase_url = \"https://x.atlassian.net\"\nemail = \"a@b.c\"",
            "tracker.jira.projects",
            "is empty",
        ),
        (
            "[tracker.jira.projects.ENG]\nstatuses = { to_analys = \"To Do\" }",
            "tracker.jira.projects.ENG.statuses.to_analys",
            "not a key of [tracker.states]",
        ),
        (
            "[tracker.jira.projects.ENG]\nstatuses = { done = \" review \" }",
            "tracker.jira.projects.ENG.statuses.done",
            "\" review \" is also the state of review in this project",
        ),
        (
            "[tracker.jira.projects.ENG]\nrepo = \"nope\"",
            "tracker.jira.projects.ENG.repo",
            "no repo named",
        ),
        (
            "[tracker.jira.projects.\"EN G\"]",
            "tracker.jira.projects.EN G",
            "not a Jira project key",
        ),
        (
            "[forge]\nkind = \"gitlab\"",
            "forge.gitlab",
            "required when forge.kind = \"gitlab\"",
        ),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\n[forge.gitlab]\nbase_url = \"https://gl\"\n[forge.gitlab.repos]\na = \"team//a\"",
            "forge.gitlab.repos.a",
            "neither a project path",
        ),
        (
            "[forge]\nkind = \"gitea\"",
            "forge.gitea",
            "required when forge.kind = \"gitea\"",
        ),
        (
            "[forge.github]\ntoken_env = \"not a name\"",
            "forge.github.token_env",
            "not an environment variable name",
        ),
        (
            "[agents.developer]\ncommand = []",
            "agents.developer.command",
            "must not be empty",
        ),
        (
            "[agents.developer]\ntimeout_secs = 0",
            "agents.developer.timeout_secs",
            "at least 1",
        ),
        (
            "[agents.merger]\nmax_attempts = 0",
            "agents.merger.max_attempts",
            "at least 1",
        ),
        (
            "[agent_env]\nallow = [\"PATH\", \"ORCH_API_TOKEN\"]",
            "agent_env.allow[1]",
            "orchestrator secret (server.api_token_env)",
        ),
        (
            "[agent_env]\nallow = [\"A-B\"]",
            "agent_env.allow[0]",
            "not an environment variable name",
        ),
        (
            "[agent_env.set]\n\"A B\" = \"x\"",
            "agent_env.set.A B",
            "not an environment variable name",
        ),
        (
            "[budget]\nmax_tokens = 0",
            "budget.max_tokens",
            "greater than 0",
        ),
        (
            "[budget]\nmax_cost_usd = -1.0",
            "budget.max_cost_usd",
            "greater than 0",
        ),
        (
            "[review]\nmax_review_rounds = 0",
            "review.max_review_rounds",
            "at least 1",
        ),
        (
            "[review]\nmax_ci_rounds = 0",
            "review.max_ci_rounds",
            "at least 1",
        ),
        (
            "[review]\nhuman_approval = \"required\"",
            "review.human_approval",
            "local forge",
        ),
        (
            "[[repos]]\nname = \"demo\"\nremote = \"r.git\"\nrequired_checks = [\"ci\"]",
            "repos[0].required_checks",
            "local forge has no CI",
        ),
        (
            "[logging]\nlevel = \"loud\"",
            "logging.level",
            "unknown level",
        ),
        ("data_dir = \"\"", "data_dir", "must not be empty"),
    ];
    for (text, key, words) in cases {
        let err = invalid(text);
        let msg = err.to_string();
        assert_eq!(err.keys(), [*key], "keys for:\n{text}\n=> {msg}");
        assert!(
            msg.starts_with(key),
            "message should start with the key: {msg}"
        );
        assert!(msg.contains(words), "{msg:?} should contain {words:?}");
    }
}

#[test]
fn type_and_enum_errors_name_the_key_and_the_file() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[queue]\nmax_attempts = \"x\"",
            "queue.max_attempts",
            "expected u32, found string \"x\" (in orch.toml)",
        ),
        (
            "[queue]\nmax_attempts = -1",
            "queue.max_attempts",
            "found signed int",
        ),
        (
            "[tracker]\nkind = \"youtrack\"",
            "tracker.kind",
            "unknown value `youtrack` (in orch.toml); expected one of: builtin, plane, github, gitea, gitlab, linear, jira",
        ),
        (
            "[forge]\nkind = \"bitbucket\"",
            "forge.kind",
            "expected one of: local, gitea, github, gitlab",
        ),
        (
            "[store]\nsynchronous = \"off\"",
            "store.synchronous",
            "expected one of: normal, full",
        ),
        (
            "[agents.analyst]\nadapter = \"aider\"",
            "agents.analyst.adapter",
            "command, claude_code, codex",
        ),
        (
            "[logging]\nformat = \"xml\"",
            "logging.format",
            "human, json",
        ),
        (
            "[queue.limits.per_agent]\ndevelper = 1",
            "queue.limits.per_agent.develper",
            "unknown value `develper`",
        ),
        ("[[repos]]\nremote = \"x\"", "repos[0].name", "is required"),
        ("[[repos]]\nname = \"a\"", "repos[0].remote", "is required"),
        (
            "[[repos]]\nname = \"a\"\nremote = \"x\"\n[repos.deploy]\nauto = true",
            "repos[0].deploy.run",
            "is required",
        ),
        (
            "[tracker.plane]\nworkspace = \"w\"",
            "tracker.plane.base_url",
            "is required",
        ),
    ];
    for (text, key, words) in cases {
        let err = parse(text).expect_err(text);
        let msg = err.to_string();
        assert_eq!(err.keys().first().copied(), Some(*key), "{text} => {msg}");
        assert!(msg.contains(words), "{msg:?} should contain {words:?}");
    }
}

#[test]
fn unknown_keys_in_the_file_are_errors_with_a_suggestion() {
    let err = parse("[queue.limts]\nglobal = 4").unwrap_err();
    assert_eq!(err.keys(), ["queue.limts"]);
    assert_eq!(
        err.to_string(),
        "unknown key `queue.limts` in orch.toml; did you mean `queue.limits`?"
    );

    let err = parse("[[repos]]\nname = \"a\"\nremote = \"x\"\nverfy = [\"make\"]").unwrap_err();
    assert_eq!(err.keys(), ["repos[0].verfy"]);
    assert!(
        err.to_string().contains("did you mean `repos[0].verify`?"),
        "{err}"
    );

    let err = parse("colour = \"blue\"").unwrap_err();
    assert_eq!(err.keys(), ["colour"]);
    assert!(
        err.to_string()
            .contains("known keys here: data_dir, server"),
        "{err}"
    );

    let err = parse("[agents.tester]\ncommand = [\"x\"]").unwrap_err();
    assert_eq!(err.keys(), ["agents.tester"]);
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let err = parse("data_dir = ").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("orch.toml: cannot parse:"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = invalid(
        "[queue]\nmax_attempts = 0\n[review]\nmax_review_rounds = 0\n[server]\nlisten = \"x\"",
    );
    assert_eq!(
        err.keys(),
        [
            "server.listen",
            "queue.max_attempts",
            "review.max_review_rounds"
        ]
    );
    assert!(
        err.to_string()
            .starts_with("3 problems in the configuration:"),
        "{err}"
    );
}

#[test]
fn warnings_for_unused_sections_and_unknown_repos() {
    let c = parse(
        "[tracker.plane]\nbase_url = \"https://p\"\nworkspace = \"w\"\n[features]\nstop_status_repos = [\"ghost\"]\n\
         [agents.developer]\ncommand = [\"x\"]\nidle_timeout_secs = 7200",
    )
    .unwrap();
    let w = c.validate().unwrap();
    let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
    assert!(keys.contains(&"tracker.plane"), "{w:?}");
    assert!(keys.contains(&"features.stop_status_repos[0]"), "{w:?}");
    assert!(
        keys.contains(&"agents.developer.idle_timeout_secs"),
        "{w:?}"
    );
    let agents = w.iter().find(|w| w.key == "agents").unwrap();
    assert!(
        agents.message.contains("analyst") && !agents.message.contains("developer"),
        "{agents}"
    );
}

/// GitLab's hooks name a project by path: a numeric id in
/// `tracker.gitlab.projects` (the reconciler lists it) or `[forge.gitlab.repos]`
/// (orch's own merges work) is valid but warned.
#[test]
fn a_numeric_gitlab_project_is_warned() {
    let c = parse(
        "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"https://gl\"\nprojects = [\"team/app\", \"42\"]",
    )
    .unwrap();
    let w = c.validate().unwrap();
    let numeric = w
        .iter()
        .find(|w| w.key == "tracker.gitlab.projects[1]")
        .unwrap_or_else(|| panic!("{w:?}"));
    assert!(numeric.message.contains("by path"), "{numeric}");
    assert!(
        !w.iter().any(|w| w.key == "tracker.gitlab.projects[0]"),
        "{w:?}"
    );
    let c = parse(
        "[[repos]]\nname = \"a\"\nremote = \"x\"\n[forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"https://gl\"\n[forge.gitlab.repos]\na = \"42\"",
    )
    .unwrap();
    let w = c.validate().unwrap();
    assert!(
        w.iter()
            .any(|w| w.key == "forge.gitlab.repos.a" && w.message.contains("by path")),
        "{w:?}"
    );
}

#[test]
fn env_override_wins_over_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "orch.toml",
            "[server]\nlisten = \"127.0.0.1:1111\"\n[store]\nurl = \"sqlite://file.db\"\n[queue.limits]\nglobal = 2\nper_repo = 1\n",
        )?;
        jail.set_env("ORCH_SERVER__LISTEN", "0.0.0.0:9090");
        jail.set_env("ORCH_STORE__URL", "postgres://orch@db/orch");
        jail.set_env("ORCH_QUEUE__LIMITS__GLOBAL", "8");
        jail.set_env("ORCH_QUEUE__LIMITS__PER_AGENT__DEVELOPER", "3");
        jail.set_env("ORCH_FEATURES__STOP_STATUS", "false");
        jail.set_env("ORCH_AGENTS__DEVELOPER__COMMAND", "[\"claude\", \"-p\"]");
        let c = Config::load(Some(Path::new("orch.toml"))).map_err(jailed)?;
        assert_eq!(c.server.listen, "0.0.0.0:9090");
        assert_eq!(c.store_url(), "postgres://orch@db/orch");
        assert_eq!(c.limits().global, Some(8));
        assert_eq!(
            c.limits().per_repo,
            Some(1),
            "keys the env does not name keep the file's value"
        );
        assert_eq!(c.limits().per_agent.get(&AgentKind::Developer), Some(&3));
        assert!(!c.stop_scope().enabled);
        assert_eq!(
            c.agent(AgentKind::Developer).command,
            Some(vec!["claude".into(), "-p".into()])
        );
        c.validate().map_err(jailed)?;
        Ok(())
    });
}

#[test]
fn merge_max_attempts_is_read_from_the_file_and_the_environment() {
    assert_eq!(parse("").unwrap().merge.max_attempts, 5, "the default");
    assert_eq!(
        parse("[merge]\nmax_attempts = 2")
            .unwrap()
            .merge
            .max_attempts,
        2
    );
    let e = invalid("[merge]\nmax_attempts = 0").to_string();
    assert!(
        e.contains("merge.max_attempts") && e.contains("must be at least 1 (got 0)"),
        "{e}"
    );
    Jail::expect_with(|jail| {
        jail.create_file("orch.toml", "[merge]\nmax_attempts = 4\n")?;
        jail.set_env("ORCH_MERGE__MAX_ATTEMPTS", "7");
        let c = Config::load(Some(Path::new("orch.toml"))).map_err(jailed)?;
        assert_eq!(c.merge.max_attempts, 7);
        Ok(())
    });
}

#[test]
fn unrelated_orch_variables_do_not_break_loading() {
    Jail::expect_with(|jail| {
        jail.set_env("ORCH_API_TOKEN", "s3cret");
        jail.set_env("ORCH_TEST_PG_URL", "postgres://test@localhost/test");
        jail.set_env("ORCH_PLANE_API_KEY", "k");
        jail.set_env("ORCH_GITEA_TOKEN", "t");
        jail.set_env("ORCH_LOG", "debug");
        jail.create_file("orch.toml", "[server]\nlisten = \"127.0.0.1:8081\"\n")?;
        let c = Config::load(None).map_err(jailed)?;
        assert_eq!(c.server.listen, "127.0.0.1:8081");
        assert_eq!(c.api_token().as_deref(), Some("s3cret"));
        let warnings = c.validate().map_err(jailed)?;
        assert!(
            !warnings.iter().any(|w| w.key.starts_with("ORCH_")),
            "none of these look like a mistyped override: {warnings:?}"
        );
        Ok(())
    });
}

#[test]
fn env_override_with_one_underscore_is_reported() {
    Jail::expect_with(|jail| {
        jail.set_env("ORCH_SERVER_LISTEN", "0.0.0.0:1");
        let c = Config::load(None).map_err(jailed)?;
        assert_eq!(
            c.server.listen, "127.0.0.1:8080",
            "ignored, as the warning says"
        );
        let warnings = c.validate().map_err(jailed)?;
        let w = warnings
            .iter()
            .find(|w| w.key == "ORCH_SERVER_LISTEN")
            .expect("warned");
        assert!(w.message.contains("ORCH_SERVER__LISTEN"), "{w}");
        Ok(())
    });
}

#[test]
fn unknown_key_from_the_environment_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("ORCH_QUEUE__LIMTS__GLOBAL", "1");
        let err = Config::load(None).expect_err("typo in an override");
        assert_eq!(err.keys(), ["queue.limts"]);
        let msg = err.to_string();
        assert!(
            msg.contains("environment variable ORCH_QUEUE__LIMTS"),
            "{msg}"
        );
        assert!(msg.contains("did you mean `queue.limits`?"), "{msg}");

        jail.clear_env();
        jail.set_env("ORCH_QUEUE__MAX_ATTEMPTS", "many");
        let err = Config::load(None).expect_err("bad value in an override");
        assert_eq!(err.keys(), ["queue.max_attempts"]);
        assert!(
            err.to_string()
                .contains("(from environment variable ORCH_QUEUE__MAX_ATTEMPTS)"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn load_without_a_file_uses_defaults_and_the_working_directory() {
    Jail::expect_with(|jail| {
        let c = Config::load(None).map_err(jailed)?;
        assert_eq!(c.source_path(), None);
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        assert_eq!(c.base_dir(), cwd);
        assert_eq!(c.data_dir(), cwd.join(".orch"));
        assert_eq!(
            c.store_url(),
            format!("sqlite://{}", cwd.join(".orch/orch.db").display())
        );
        assert_eq!(c.store.url, None);
        let _ = jail;
        Ok(())
    });
}

#[test]
fn load_resolves_against_the_file_folder_not_the_working_directory() {
    Jail::expect_with(|jail| {
        jail.create_dir("etc")?;
        jail.create_file(
            "etc/orch.toml",
            "data_dir = \"state\"\n[store]\nurl = \"sqlite://db/orch.db\"\n",
        )?;
        let c = Config::load(Some(Path::new("etc/orch.toml"))).map_err(jailed)?;
        let etc = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join("etc");
        assert_eq!(c.source_path(), Some(etc.join("orch.toml").as_path()));
        assert_eq!(c.data_dir(), etc.join("state"));
        assert_eq!(c.runs_dir(), etc.join("state/runs"));
        assert_eq!(
            c.store_url(),
            format!("sqlite://{}", etc.join("db/orch.db").display())
        );
        Ok(())
    });
}

#[test]
fn a_missing_explicit_file_says_to_run_orch_init() {
    Jail::expect_with(|_jail| {
        let err = Config::load(Some(Path::new("nope/orch.toml"))).expect_err("missing file");
        assert!(matches!(err, ConfigError::NotFound { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("nope/orch.toml") && msg.contains("run `orch init`"),
            "{msg}"
        );
        Ok(())
    });
}

#[test]
fn secrets_come_from_the_environment_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "orch.toml",
            "[server]\napi_token_env = \"ORCH_CFGTEST_TOKEN\"\n",
        )?;
        let c = Config::load(None).map_err(jailed)?;
        assert_eq!(c.api_token(), None);
        let warnings = c.validate().map_err(jailed)?;
        let w = warnings
            .iter()
            .find(|w| w.key == "server.api_token_env")
            .expect("warned");
        assert_eq!(
            w.message,
            "server.api_token_env: names ORCH_CFGTEST_TOKEN, which is not set: mutating API calls will be refused"
        );

        jail.set_env("ORCH_CFGTEST_TOKEN", "tok");
        assert_eq!(c.secret("ORCH_CFGTEST_TOKEN").as_deref(), Some("tok"));
        assert_eq!(c.api_token().as_deref(), Some("tok"));
        assert!(
            !c.validate()
                .map_err(jailed)?
                .iter()
                .any(|w| w.key == "server.api_token_env")
        );
        assert!(
            !format!("{c:?}").contains("tok\""),
            "the secret is not part of the config"
        );
        Ok(())
    });
}

#[test]
fn secrets_of_the_active_tracker_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "orch.toml",
            "[tracker]\nkind = \"plane\"\n[tracker.plane]\nbase_url = \"https://p\"\nworkspace = \"w\"\nproject_ids = [\"x\"]\n\
             api_key_env = \"ORCH_CFGTEST_PLANE_KEY\"\nwebhook_secret_env = \"ORCH_CFGTEST_PLANE_HOOK\"\n",
        )?;
        jail.set_env("ORCH_CFGTEST_PLANE_KEY", "k");
        let c = Config::load(None).map_err(jailed)?;
        let warnings = c.validate().map_err(jailed)?;
        assert!(
            warnings
                .iter()
                .any(|w| w.key == "tracker.plane.webhook_secret_env"
                    && w.message.contains("webhooks cannot be verified")),
            "{warnings:?}"
        );
        assert!(
            !warnings
                .iter()
                .any(|w| w.key == "tracker.plane.api_key_env"),
            "{warnings:?}"
        );
        Ok(())
    });
}

#[test]
fn a_password_in_the_file_is_flagged_but_not_in_the_environment() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "orch.toml",
            "[store]\nurl = \"postgres://orch:hunter2@db/orch\"\n",
        )?;
        let c = Config::load(None).map_err(jailed)?;
        let w = c.validate().map_err(jailed)?;
        assert!(
            w.iter()
                .any(|w| w.key == "store.url" && w.message.contains("ORCH_STORE__URL")),
            "{w:?}"
        );

        jail.set_env("ORCH_STORE__URL", "postgres://orch:hunter2@db/orch");
        let c = Config::load(None).map_err(jailed)?;
        assert!(
            !c.validate()
                .map_err(jailed)?
                .iter()
                .any(|w| w.key == "store.url")
        );
        Ok(())
    });
}

#[test]
fn listen_addr_accepts_localhost() {
    let c = parse("[server]\nlisten = \"localhost:9000\"").unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.server.listen_addr().unwrap(),
        "127.0.0.1:9000".parse().unwrap()
    );
    let bad = parse("[server]\nlisten = \"nowhere\"").unwrap();
    assert_eq!(
        bad.server.listen_addr().unwrap_err().keys(),
        ["server.listen"]
    );
}

#[test]
fn provider_sections_map_projects_and_repos_and_check_merge_style() {
    let base = r#"
[[repos]]
name = "a"
remote = "/tmp/a.git"
[[repos]]
name = "b"
remote = "/tmp/b.git"
[tracker]
kind = "plane"
[tracker.plane]
base_url = "http://127.0.0.1:1"
workspace = "ws"
project_ids = ["p1", "p2"]
[tracker.plane.repos]
p1 = "a"
[forge]
kind = "gitea"
[forge.gitea]
base_url = "http://127.0.0.1:2"
merge_style = "squash"
[forge.gitea.repos]
a = "team/a"
"#;
    let c = parse(base).unwrap();
    let err = c.validate().unwrap_err().to_string();
    // p2 has no repo while two repos exist.
    assert!(err.contains("tracker.plane.repos.p2"), "{err}");
    let fixed = base.replace("p1 = \"a\"", "p1 = \"a\"\np2 = \"b\"");
    let c = parse(&fixed).unwrap();
    c.validate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tracker.plane.as_ref().unwrap().calls_per_minute, 60);
    assert_eq!(c.forge.gitea.as_ref().unwrap().merge_style, "squash");
    for (from, to, key) in [
        (
            "merge_style = \"squash\"",
            "merge_style = \"octopus\"",
            "forge.gitea.merge_style",
        ),
        ("a = \"team/a\"", "a = \"team\"", "forge.gitea.repos.a"),
        ("a = \"team/a\"", "zz = \"team/a\"", "forge.gitea.repos.zz"),
        ("p1 = \"a\"", "p1 = \"nope\"", "tracker.plane.repos.p1"),
    ] {
        let bad = fixed.replace(from, to);
        let err = parse(&bad).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// Issue 15: state names are one state when equal trimmed and
/// case-insensitively (the rule routing uses), so such a pair is refused.
#[test]
fn state_names_equal_but_for_case_or_spaces_collide() {
    let err = invalid("[tracker.states]\nmerge = \" review \"");
    let msg = err.to_string();
    assert_eq!(err.keys(), ["tracker.states.merge"], "{msg}");
    assert!(
        msg.contains("\" review \" is also tracker.states.review")
            && msg.contains("case-insensitively"),
        "{msg}"
    );
    let err = invalid("[tracker.states]\nstop = \"Stop\"\ncancelled = \"STOP\"");
    assert_eq!(err.keys(), ["tracker.states.cancelled"], "{err}");
    // Distinct names, in whatever case, are fine.
    parse("[tracker.states]\nstop = \"Stop\"\nto_analyse = \"to analyse\"")
        .unwrap()
        .validate()
        .unwrap();
}
