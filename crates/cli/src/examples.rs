//! The example agents shipped in the binary (`examples/agents/`): scripts that
//! behave like coding agents, so `orch init` and `orch quickstart` work on a
//! fresh machine without any model service.

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const AGENTS: [(&str, &str); 4] = [
    // Sourced by the three agents below.
    (
        "common.sh",
        include_str!("../../../examples/agents/common.sh"),
    ),
    (
        "analyst.sh",
        include_str!("../../../examples/agents/analyst.sh"),
    ),
    (
        "developer.sh",
        include_str!("../../../examples/agents/developer.sh"),
    ),
    (
        "reviewer.sh",
        include_str!("../../../examples/agents/reviewer.sh"),
    ),
];

/// Write the example agents into `<dir>/examples/agents/` (executable); an
/// existing file is left alone, since a person may have edited it.
pub fn write_agents(dir: &Path) -> anyhow::Result<()> {
    let folder = dir.join("examples/agents");
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    for (name, text) in AGENTS {
        let path = folder.join(name);
        if path.exists() {
            continue;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}
