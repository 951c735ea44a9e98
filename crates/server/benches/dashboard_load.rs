//! Load check of the dashboard (issue 6), a benchmark binary, not a test:
//! 1,000 tasks in the store and 50 open `/api/events` streams (the live
//! board of 50 people) while tasks keep changing; measured over real HTTP on
//! loopback:
//!
//! - the board's first render: `/` plus its script and style sheet plus
//!   `/api/board` (what the browser fetches before it can draw), p50/p99;
//! - the landing view's: the same plus `/api/inbox`, p50/p99;
//! - `/queue`, p50/p99;
//! - the process's resident memory (server and bench client share it).
//!
//!   cargo bench -p orch-server --bench dashboard_load

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use orch_core::EventKind;
use orch_core::{EventInput, NewTask, Stage};
use orch_engine::pipeline::Pipeline;
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TASKS: usize = 1000;
const SSE_CLIENTS: usize = 50;
const SAMPLES: usize = 300;
const TOKEN: &str = "bench-token";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = orch_config::Config::from_toml_str(
        "data_dir = \"data\"\n\n[[repos]]\nname = \"demo\"\nremote = \"/nonexistent.git\"\n",
    )
    .unwrap()
    .with_base_dir(dir.path());
    let sqlite = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let stages = [
        Stage::Analysis,
        Stage::AwaitingApproval,
        Stage::Development,
        Stage::Review,
        Stage::Done,
    ];
    let mut ids = Vec::new();
    for i in 0..TASKS {
        let mut t = NewTask::new("demo", format!("Task number {i} with a realistic title"));
        t.body = "Some body text describing the work item. ".repeat(5);
        t.stage = stages[i % stages.len()];
        ids.push(store.create_task(t, "bench").await.unwrap().id);
    }
    let pipeline = Pipeline::with_defaults(store.clone(), Arc::new(cfg), "bench");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = orch_server::ApiState {
        providers: Arc::new(orch_integrations::providers::Providers::from_config(
            pipeline.config(),
            pipeline.repos(),
        )),
        pipeline,
        token: Some(TOKEN.into()),
        local_token: None,
        node: None,
    };
    tokio::spawn(orch_server::serve(listener, state, std::future::pending()));
    let rss_idle = rss_kib();

    // 50 live boards, each reading its stream to the end.
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..SSE_CLIENTS {
        let received = received.clone();
        tokio::spawn(async move {
            let res = get(addr, "/api/events").await;
            let mut body = res.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    received.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    // Tasks keep changing: one event every 50 ms, so the streams carry traffic.
    {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let id = ids[n % ids.len()];
                let _ = store
                    .append_event(id, EventInput::new("bench", EventKind::Comment, "tick"))
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut first_render = Histogram::<u64>::new(3).unwrap();
    let mut board_bytes = 0;
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for path in ["/", "/assets/app.js", "/assets/app.css"] {
            body(get(addr, path).await).await;
        }
        board_bytes = body(get(addr, "/api/board").await).await;
        first_render.record(t.elapsed().as_micros() as u64).unwrap();
    }
    // The landing view (the "needs you" inbox) also reads /api/inbox; with
    // 200 of the tasks awaiting approval it lists 200 items.
    let mut landing = Histogram::<u64>::new(3).unwrap();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for path in [
            "/",
            "/assets/app.js",
            "/assets/app.css",
            "/api/board",
            "/api/inbox",
        ] {
            body(get(addr, path).await).await;
        }
        landing.record(t.elapsed().as_micros() as u64).unwrap();
    }
    let mut queue = Histogram::<u64>::new(3).unwrap();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        body(get(addr, "/queue").await).await;
        queue.record(t.elapsed().as_micros() as u64).unwrap();
    }
    let rss_loaded = rss_kib();
    let streamed = received.load(std::sync::atomic::Ordering::Relaxed);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "dashboard load: {TASKS} tasks, {SSE_CLIENTS} open SSE clients, tasks changing every 50 ms"
    );
    println!(
        "  first render (/ + app.js + app.css + /api/board, {} KiB of board JSON): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        board_bytes / 1024,
        ms(&first_render, 0.5),
        ms(&first_render, 0.99),
        first_render.max() as f64 / 1000.0
    );
    println!(
        "  landing view (the above + /api/inbox): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(&landing, 0.5),
        ms(&landing, 0.99),
        landing.max() as f64 / 1000.0
    );
    println!(
        "  /queue: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(&queue, 0.5),
        ms(&queue, 0.99),
        queue.max() as f64 / 1000.0
    );
    println!(
        "  RSS (server and bench client in one process): {} MiB before the clients, {} MiB under load",
        rss_idle / 1024,
        rss_loaded / 1024
    );
    println!(
        "  the 50 streams received {} KiB of events in total",
        streamed / 1024
    );
}

async fn get(addr: SocketAddr, path: &str) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res
}

async fn body(res: hyper::Response<hyper::body::Incoming>) -> usize {
    res.into_body().collect().await.unwrap().to_bytes().len()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
