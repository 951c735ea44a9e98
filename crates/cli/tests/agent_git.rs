//! Through the binary: a developer agent that plants programs in the repository
//! config its git can write (a clean/smudge filter named by a committed
//! `.gitattributes`, an `ext::` push URL with `protocol.ext.allow=always`, URL
//! rewriting to it, a hook path, an fsmonitor) and leaves an uncommitted file
//! for orch's leftover commit. orch must carry the task to `done`, merge the
//! work into the real remote, and never run one of those programs: each records
//! its environment when it runs, so a run by orch's own git (which has no
//! `ORCH_RUN_ID`, unlike the agents') or a leak of orch's API token shows.

mod common;

use common::{Serve, git, ok, quickstart_project, wait};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "api-token-that-must-stay-in-orch";
const KEY: &str = "DEMO-9";

fn hostile_developer(dir: &Path, marks: &Path) -> String {
    let script = dir.join("examples/agents/hostile-developer.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/usr/bin/env bash
# The example developer's work, then every trap we know for orch's git.
set -euo pipefail
marks='{marks}'
plant() {{
	local p="$marks/../bin-$1"
	printf '#!/bin/sh\nenv > "%s/%s-$$"\ncat\n' "$marks" "$1" > "$p"
	chmod +x "$p"
	printf '%s' "$p"
}}
"$(dirname "${{BASH_SOURCE[0]}}")/developer.sh"
remote=$(git config remote.origin.url)
git config filter.x.clean "$(plant filter-clean)"
git config filter.x.smudge "$(plant filter-smudge)"
git config protocol.ext.allow always
git config remote.origin.pushurl "ext::$(plant ext-pushurl) %S"
git config "url.ext::$(plant ext-insteadof) %S.pushInsteadOf" "$remote"
git config core.fsmonitor "$(plant fsmonitor)"
hooks="$marks/../hooks"
mkdir -p "$hooks"
for h in pre-commit post-commit reference-transaction pre-push post-checkout post-merge; do
	ln -sf "$(plant "hook-$h")" "$hooks/$h"
done
git config core.hooksPath "$hooks"
if [[ ! -e .gitattributes ]]; then
	printf '* filter=x\n' > .gitattributes
	git -c filter.x.clean=cat -c core.hooksPath=/dev/null -c core.fsmonitor=false add .gitattributes
	git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c user.name=agent -c user.email=agent@example.test commit -q -m "attributes"
fi
echo "left for orch's leftover commit ($ORCH_RUN_ID)" > "leftover-$ORCH_STAGE.txt"
echo "developer: planted"
"#,
            marks = marks.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// Marks left by a planted program that ran outside an agent (no `ORCH_RUN_ID`
/// in its environment) or that saw orch's API token.
fn marks_from_orch(marks: &Path) -> Vec<String> {
    std::fs::read_dir(marks)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let env = std::fs::read_to_string(e.path()).unwrap_or_default();
            let by_agent = env.lines().any(|l| l.starts_with("ORCH_RUN_ID="));
            (!by_agent || env.contains(TOKEN)).then(|| {
                format!(
                    "{} (token seen: {})",
                    e.file_name().to_string_lossy(),
                    env.contains(TOKEN)
                )
            })
        })
        .collect()
}

#[test]
fn planted_filters_and_ext_push_urls_never_run_in_orchs_git() {
    let tmp = tempfile::tempdir().unwrap();
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let dir = quickstart_project(tmp.path(), "hostile", |cfg| cfg);
    let script = hostile_developer(&dir, &marks);
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = cfg.replace(
        r#"command = ["examples/agents/developer.sh"]"#,
        &format!("command = [{script:?}]"),
    );
    assert!(cfg.contains("hostile-developer.sh"), "{cfg}");
    std::fs::write(&cfg_path, cfg).unwrap();

    let _serve = Serve::start_with_env(&dir, &[("ORCH_API_TOKEN", TOKEN)]);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Hostile", "--id", KEY,
        ],
    );
    wait::task(
        &dir,
        KEY,
        Duration::from_secs(120),
        "awaiting approval",
        |v| v["task"]["stage"] == "awaiting_approval",
    );
    ok(&dir, &["task", "approve", KEY]);
    let v = wait::task(&dir, KEY, Duration::from_secs(180), "done", |v| {
        let stage = v["task"]["stage"].as_str().unwrap_or_default();
        stage == "done" || stage == "needs_attention" || stage == "failed"
    });
    assert_eq!(
        v["task"]["stage"], "done",
        "the task parked or failed: {:#}",
        v["events"]
    );

    // The work reached the configured remote's main, not a planted transport.
    let remote = dir.join("remotes/demo.git");
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains(&format!("work/{KEY}.md")), "{files}");
    assert!(
        files.contains("leftover-"),
        "orch's leftover commit: {files}"
    );
    // Its content is the file's own: no filter rewrote it on the way in.
    let leftover = files.lines().find(|f| f.starts_with("leftover-")).unwrap();
    let content = git(&remote, &["show", &format!("main:{leftover}")]);
    assert!(
        content.starts_with("left for orch's leftover commit"),
        "{content}"
    );

    let from_orch = marks_from_orch(&marks);
    assert!(
        from_orch.is_empty(),
        "planted programs ran in orch's git calls: {from_orch:?}"
    );
}
