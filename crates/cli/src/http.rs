//! The HTTP face of `orch serve`: the API of `orch-server` on the listener.

use crate::error::{CliError, CliResult};
use orch_config::Config;
use orch_engine::pipeline::Pipeline;
use std::sync::Arc;

pub async fn serve(
    listener: tokio::net::TcpListener,
    pipeline: Arc<Pipeline>,
    providers: Arc<orch_integrations::providers::Providers>,
    cfg: &Config,
    local_token: Option<String>,
    node: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> CliResult {
    let token = cfg.api_token().filter(|t| !t.is_empty());
    if token.is_none() {
        orch_core::note!(
            "warning: {} is not set: the API refuses every change until it is",
            cfg.server.api_token_env
        );
    }
    let state = orch_server::ApiState {
        pipeline,
        providers,
        token,
        local_token,
        node: Some(node),
    };
    orch_server::serve(listener, state, shutdown)
        .await
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("the HTTP server failed: {e}")))
}
