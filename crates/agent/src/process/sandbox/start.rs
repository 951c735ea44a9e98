//! The monitor's side of a sandboxed start: read the run's `sandbox.json`,
//! set up the egress proxy's namespace, start the init.

use crate::process::ProcessError;
use crate::process::cgroup::RunCgroup;
use crate::process::monitor_args::MonitorArgs;
use crate::process::sandbox;
use std::collections::BTreeMap;

/// Starts a sandboxed agent (see [`super`]): never falls back to an
/// unsandboxed start.
pub(crate) fn spawn(
    args: &MonitorArgs,
    env: &BTreeMap<String, String>,
    cgroup: Option<&RunCgroup>,
    join: &[std::os::fd::RawFd],
) -> Result<sandbox::spawn::SandboxSpawned, ProcessError> {
    let path = args.sandbox.as_ref().expect("checked by the caller");
    let bytes = std::fs::read(path)
        .map_err(|e| ProcessError::io(format!("reading {}", path.display()), e))?;
    let spec: sandbox::SandboxSpec =
        serde_json::from_slice(&bytes).map_err(|e| ProcessError::Json {
            path: path.clone(),
            source: e,
        })?;
    let root = args.run_dir.join("sandbox-root");
    std::fs::create_dir_all(&root)
        .map_err(|e| ProcessError::io(format!("creating {}", root.display()), e))?;
    let dir = cgroup.and_then(|c| c.open_dir().ok());
    let mut env = env.clone();
    if let Some(home) = &spec.home {
        env.insert("HOME".to_owned(), home.display().to_string());
    }
    let spawn = |env: &BTreeMap<String, String>, new_netns: bool| {
        sandbox::spawn::spawn(&sandbox::spawn::SandboxSpawn {
            spec: &spec,
            root: &root,
            argv: &args.argv,
            env,
            cwd: args.cwd.as_deref(),
            cgroup_dir: dir.as_ref(),
            stray_grace: args.stray_grace,
            new_netns,
            join,
        })
    };
    let failed = |e| ProcessError::io(format!("starting {:?} sandboxed", args.argv), e);
    if sandbox::spawn::namespace_flags().1.is_some() {
        // Not root: the namespaces belong to the agent's own user
        // namespace, which the monitor cannot enter to set up the proxy.
        orch_core::note!(
            "orch-monitor[{}]: not root: the sandbox has no network at all (no egress proxy)",
            std::process::id()
        );
        return spawn(&env, true).map_err(failed);
    }
    let (spawned, listener) = sandbox::egress::in_new_netns(|port| {
        let proxy = format!("http://127.0.0.1:{port}");
        for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            env.insert(name.to_owned(), proxy.clone());
        }
        // Every host, loopback ones too, goes through the proxy.
        env.remove("NO_PROXY");
        env.remove("no_proxy");
        spawn(&env, false)
    })
    .map_err(failed)?;
    sandbox::egress::serve(listener, spec.egress.clone(), args.run_dir.clone())
        .map_err(|e| ProcessError::io("starting the egress proxy", e))?;
    Ok(spawned)
}
