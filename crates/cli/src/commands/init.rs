//! `orch init`: write a commented orch.toml with the embedded defaults.

use crate::args::InitArgs;
use crate::error::{CliError, CliResult};
use crate::output::outln;
use anyhow::Context;

/// The example's `[sandbox] mode` line, which `init` turns on where it can.
const SANDBOX_OFF: &str = "[sandbox]\nmode = \"off\"\n";

pub fn run(a: &InitArgs) -> CliResult {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let path = a.dir.join(orch_config::DEFAULT_FILE);
    if path.exists() && !a.force {
        return Err(CliError::Usage(format!(
            "{} already exists; edit it, or pass --force to overwrite it with the defaults",
            path.display()
        )));
    }
    // Agents run sandboxed where this machine can make the namespaces.
    let support = orch_agent::process::sandbox::probe();
    let text = match &support.namespaces {
        Ok(()) => orch_config::example_toml().replacen(
            SANDBOX_OFF,
            "[sandbox]\nmode = \"namespaces\"\n",
            1,
        ),
        Err(_) => orch_config::example_toml().to_owned(),
    };
    // The example must itself be a valid configuration; a broken one would be a bug here.
    orch_config::Config::from_toml_str(&text)?
        .with_base_dir(&a.dir)
        .validate()?;
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    crate::examples::write_agents(&a.dir)?;
    outln!(
        "wrote {} and the example agents in examples/agents/",
        path.display()
    );
    match support.namespaces {
        Ok(()) => outln!("agents run sandboxed ([sandbox] mode = \"namespaces\")"),
        Err(why) => outln!(
            "agents run unsandboxed ([sandbox] mode = \"off\"): this machine cannot sandbox them: {why}"
        ),
    }
    outln!("next: `orch db migrate`, then `orch task add --repo demo --title \"…\"`");
    Ok(())
}
