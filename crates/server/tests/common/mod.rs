//! A real server for the tests: a real `Pipeline` on a real SQLite store, a
//! config with one repo whose remote is a real bare git repository, served
//! by `serve` on an ephemeral loopback port, and a small HTTP client.
#![allow(dead_code)] // each test file uses its own part of the helpers

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use orch_core::{RunId, TaskId};
use orch_engine::pipeline::Pipeline;
use orch_engine::ports::{LocalForge, Tracker};
use orch_server::{ApiState, serve};
use orch_store::{ClaimRequest, RunProcess, SqliteOptions, SqliteStore, Store};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub const TOKEN: &str = "test-token-0123456789";

pub struct Server {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    pub dir: tempfile::TempDir,
    pub stop: Option<oneshot::Sender<()>>,
    pub served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Some(TOKEN.to_owned())).await
    }

    pub async fn start_with(token: Option<String>) -> Server {
        Self::start_full(token, "").await
    }

    /// `extra` is appended to the config (e.g. a `[server]` section).
    pub async fn start_full(token: Option<String>, extra: &str) -> Server {
        Self::start_ports(token, extra, None).await
    }

    /// With this tracker instead of the builtin one (e.g. one that fails).
    pub async fn start_with_tracker(tracker: Arc<dyn Tracker>) -> Server {
        Self::start_ports(Some(TOKEN.to_owned()), "", Some(tracker)).await
    }

    /// As the API of node `node` among several sharing the store.
    pub async fn start_as_node(node: &str) -> Server {
        Self::start_all(Some(TOKEN.to_owned()), "", None, Some(node.to_owned())).await
    }

    async fn start_ports(
        token: Option<String>,
        extra: &str,
        tracker: Option<Arc<dyn Tracker>>,
    ) -> Server {
        Self::start_all(token, extra, tracker, None).await
    }

    async fn start_all(
        token: Option<String>,
        extra: &str,
        tracker: Option<Arc<dyn Tracker>>,
        node: Option<String>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let remote = bare_repo(dir.path());
        let cfg = orch_config::Config::from_toml_str(&format!(
            r#"
data_dir = "data"
{extra}

[[repos]]
name = "demo"
remote = "{}"
verify = ["true"]
"#,
            remote.display()
        ))
        .unwrap()
        .with_base_dir(dir.path());
        let sqlite = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let cfg = Arc::new(cfg);
        let pipeline = match tracker {
            None => Pipeline::with_defaults(store.clone(), cfg, "api"),
            Some(t) => {
                let repos = orch_git::RepoStore::new(cfg.repos_dir());
                let forge = Arc::new(LocalForge::new(repos.clone()));
                Pipeline::new(store.clone(), cfg, repos, t, forge, "api")
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = ApiState {
            providers: Arc::new(orch_integrations::providers::Providers::from_config(
                pipeline.config(),
                pipeline.repos(),
            )),
            pipeline: pipeline.clone(),
            token,
            local_token: None,
            node,
        };
        let served = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            store,
            pipeline,
            dir,
            stop: Some(stop),
            served,
        }
    }

    /// A request with a bearer token (or none); the answer's status, headers and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, hyper::HeaderMap, String) {
        let res = self.send(method, path, token, body).await;
        read(res).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response<Incoming> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.send_with(method, path, &headers, body).await
    }

    /// A request with exactly these extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        sender.send_request(req.body(body).unwrap()).await.unwrap()
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, hyper::HeaderMap, String) {
        read(self.send_with(method, path, headers, body).await).await
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, text) = self.call(Method::GET, path, Some(TOKEN), None).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    pub async fn post_json(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        let (status, _, text) = self
            .call(Method::POST, path, Some(TOKEN), body.as_deref())
            .await;
        (status, serde_json::from_str(&text).unwrap())
    }

    /// Claim the next queued job as `worker` and record its process with
    /// its log at `log`: the claimed job's task and run.
    pub async fn start_run(&self, worker: &str, log: &Path) -> (TaskId, RunId) {
        let job = self
            .store
            .claim(&ClaimRequest::new(worker))
            .await
            .unwrap()
            .expect("a job to claim");
        let run = job.run_id.expect("a claimed job has a run");
        let process = RunProcess {
            pid: 1,
            pgid: 1,
            proc_start_ticks: 1,
            log_path: log.display().to_string(),
        };
        assert!(self.store.record_run_process(&run, &process).await.unwrap());
        (job.task_id, run)
    }

    pub async fn create(&self, body: Value) -> Value {
        let (status, created) = self.post_json("/api/tasks", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.served)
            .await
            .expect("the server stops in time")
            .unwrap()
            .unwrap();
    }
}

pub async fn read(res: Response<Incoming>) -> (StatusCode, hyper::HeaderMap, String) {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(20), res.into_body().collect())
        .await
        .expect("the answer ends in time")
        .unwrap()
        .to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Read SSE frames into `seen` until it contains `needle`.
pub async fn read_until(body: &mut Incoming, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} in time; got {seen:?}"))
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=orch test",
            "-c",
            "user.email=test@orch.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A bare repository with one commit on `main`.
pub fn bare_repo(dir: &Path) -> std::path::PathBuf {
    let work = dir.join("seed");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "--quiet", "-b", "main"]);
    std::fs::write(work.join("README.md"), "demo\n").unwrap();
    git(&work, &["add", "README.md"]);
    git(&work, &["commit", "--quiet", "-m", "initial commit"]);
    git(dir, &["clone", "--quiet", "--bare", "seed", "remote.git"]);
    dir.join("remote.git")
}
