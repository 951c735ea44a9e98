//! `orch init`: write a commented orch.toml with the embedded defaults.

use crate::args::InitArgs;
use crate::error::{CliError, CliResult};
use anyhow::Context;

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
    // The example must itself be a valid configuration; a broken one would be a bug here.
    orch_config::Config::from_toml_str(orch_config::example_toml())?
        .with_base_dir(&a.dir)
        .validate()?;
    std::fs::write(&path, orch_config::example_toml())
        .with_context(|| format!("cannot write {}", path.display()))?;
    crate::examples::write_agents(&a.dir)?;
    println!(
        "wrote {} and the example agents in examples/agents/",
        path.display()
    );
    println!("next: `orch db migrate`, then `orch task add --repo demo --title \"…\"`");
    Ok(())
}
