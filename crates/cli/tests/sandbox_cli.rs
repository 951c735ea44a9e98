//! `orch init` and `orch doctor` about the agent sandbox (issue 12): init
//! turns it on where this machine can make the namespaces, doctor says so.

use std::path::Path;
use std::process::{Command, Output};

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .env_remove("ORCH_STORE__URL")
        .env_remove("ORCH_SANDBOX__MODE")
        .output()
        .expect("run orch")
}

fn sandbox_check(dir: &Path) -> serde_json::Value {
    let out = orch(dir, &["doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "sandbox")
        .cloned()
        .expect("a sandbox check")
}

#[test]
fn init_turns_the_sandbox_on_where_the_machine_supports_it_and_doctor_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = orch(d, &["init"]);
    assert!(out.status.success(), "{out:?}");
    let toml = std::fs::read_to_string(d.join("orch.toml")).unwrap();
    let supported = orch_agent::process::sandbox::probe().namespaces.is_ok();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let check = sandbox_check(d);
    if supported {
        assert!(
            toml.contains("[sandbox]\nmode = \"namespaces\"\n"),
            "{toml}"
        );
        assert!(said.contains("agents run sandboxed"), "{said}");
        assert_eq!(check["level"], "ok", "{check}");
        assert!(
            check["message"]
                .as_str()
                .unwrap()
                .contains("agents run in namespaces"),
            "{check}"
        );
    } else {
        assert!(toml.contains("[sandbox]\nmode = \"off\"\n"), "{toml}");
        assert!(said.contains("cannot sandbox"), "{said}");
        assert_eq!(check["level"], "warn", "{check}");
    }

    // Switched off by the operator: doctor warns where the machine could.
    let off = toml.replace(
        "[sandbox]\nmode = \"namespaces\"\n",
        "[sandbox]\nmode = \"off\"\n",
    );
    std::fs::write(d.join("orch.toml"), off).unwrap();
    let check = sandbox_check(d);
    assert_eq!(check["level"], "warn", "{check}");
    assert!(
        check["message"].as_str().unwrap().contains("unsandboxed"),
        "{check}"
    );
}
