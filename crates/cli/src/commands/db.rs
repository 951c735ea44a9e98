//! `orch db migrate`.

use crate::error::CliResult;
use orch_config::Config;

pub async fn migrate(cfg: &Config) -> CliResult {
    let location = cfg.store_location()?;
    // open_store migrates; running it again is a no-op.
    super::open_store(cfg).await?;
    println!("database up to date: {}", location.url());
    Ok(())
}
