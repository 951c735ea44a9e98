//! The HTTP face of `orch serve` (until the server crate lands: health only).

use crate::error::{CliError, CliResult};
use orch_config::Config;
use orch_engine::pipeline::Pipeline;
use std::sync::Arc;

pub async fn serve(
    listener: tokio::net::TcpListener,
    _pipeline: Arc<Pipeline>,
    _cfg: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> CliResult {
    drop(listener);
    shutdown.await;
    Ok::<(), CliError>(())
}
