//! Signed webhook ingest on loopback: `POST /webhooks/plane` with a real
//! SQLite store behind it (verify → parse → record the delivery → hand off).
//! Every request is a distinct, correctly signed change, so none is a replay.
//!
//! cargo bench -p orch-server --bench webhook_ingest [-- REQUESTS CONNECTIONS]
//!
//! Prints p50/p99/max latency and requests per second from a Rust load loop
//! (keep-alive connections), then, when `wrk` is on the PATH, runs wrk for
//! 5 s against the same route with pre-signed, distinct deliveries (a Lua
//! script reads them from a file; each wrk thread takes its own share).

use async_trait::async_trait;
use orch_integrations::ingest::WebhookSink;
use orch_integrations::signature::sign;
use orch_integrations::webhook::{Provider, WebhookEvent};
use orch_server::webhooks::{Receiver, Webhooks, router};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "plane_wh_bench_secret";

struct Count(AtomicU64);

#[async_trait]
impl WebhookSink for Count {
    async fn handle(&self, _: Provider, _: WebhookEvent) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn body(i: u64) -> Vec<u8> {
    format!(
        r##"{{"event": "issue", "action": "updated", "webhook_id": "w", "workspace_id": "ws", "data": {{"id": "item-{i}", "project": "p", "state": {{"id": "s-{}", "name": "Approved", "color": "#000", "group": "started"}}, "updated_at": "2026-05-20T10:00:00.{i:06}Z", "name": "Item {i}"}}, "activity": {{"field": "state_id", "new_value": "s", "old_value": "o", "actor": {{"id": "a"}}}}}}"##,
        i % 7
    )
    .into_bytes()
}

/// One keep-alive connection sending `n` requests; returns their latencies.
async fn client(addr: std::net::SocketAddr, ids: Vec<u64>) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut out = Vec::with_capacity(ids.len());
    for i in ids {
        let b = body(i);
        let sig = sign(SECRET.as_bytes(), &b);
        let head = format!(
            "POST /webhooks/plane HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-Plane-Event: issue\r\nX-Plane-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
            b.len()
        );
        let t = Instant::now();
        w.write_all(head.as_bytes()).await.unwrap();
        w.write_all(&b).await.unwrap();
        // Status line and headers, then the body by Content-Length.
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(
            line.starts_with("HTTP/1.1 202"),
            "unexpected answer: {line}"
        );
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let conns = args.get(1).copied().unwrap_or(16).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let sink = Arc::new(Count(AtomicU64::new(0)));
        let app = router(Webhooks {
            store: Arc::new(store) as Arc<dyn Store>,
            sink: sink.clone(),
            plane: Some(Receiver { secret: Some(SECRET.as_bytes().to_vec()), insecure: false, secret_env: "X".into() }),
            gitea: None,
            github: None,
            gitlab: None,
            linear: None,
            jira: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        // Warm up (connections, SQLite pages).
        client(addr, (1_000_000..1_000_200).collect()).await;
        let started = Instant::now();
        let mut handles = Vec::new();
        for c in 0..conns {
            let ids: Vec<u64> = (0..requests).filter(|i| i % conns == c).collect();
            handles.push(tokio::spawn(client(addr, ids)));
        }
        let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for h in handles {
            for d in h.await.unwrap() {
                hist.record(d.as_micros() as u64).unwrap();
            }
        }
        let wall = started.elapsed();
        // Every accepted delivery reached the sink.
        let end = Instant::now() + Duration::from_secs(10);
        while sink.0.load(Ordering::Relaxed) < requests + 200 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "webhook ingest (signed Plane deliveries, SQLite store, {conns} keep-alive connections, {} CPUs): {requests} requests in {:.2} s = {:.0} req/s; latency p50 {} µs, p99 {} µs, max {} µs; handed off {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            wall.as_secs_f64(),
            requests as f64 / wall.as_secs_f64(),
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99),
            hist.max(),
            sink.0.load(Ordering::Relaxed) - 200,
        );

        if let Some(out) = run_wrk(addr, dir.path()) {
            let handed = sink.0.load(Ordering::Relaxed) - 200 - requests;
            println!("wrk (2 threads, 16 connections, 5 s, distinct signed deliveries):\n{out}handed off to the background: {handed}");
        } else {
            println!("(wrk not found on the PATH: the load-tool run was skipped)");
        }
    });
}

/// Run wrk against the route with `LINES` distinct pre-signed deliveries.
fn run_wrk(addr: std::net::SocketAddr, dir: &std::path::Path) -> Option<String> {
    const LINES: u64 = 60_000;
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .ok()?;
    let data = dir.join("deliveries.txt");
    let mut text = String::with_capacity(LINES as usize * 600);
    for i in 0..LINES {
        // Ids far from the Rust loop's, so none is a replay.
        let b = body(10_000_000 + i);
        text.push_str(&sign(SECRET.as_bytes(), &b));
        text.push('\t');
        text.push_str(std::str::from_utf8(&b).expect("the body is ASCII"));
        text.push('\n');
    }
    std::fs::write(&data, text).ok()?;
    let script = dir.join("ingest.lua");
    std::fs::write(
        &script,
        format!(
            r#"local threads = {{}}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  reqs = {{}}
  local n = 0
  for line in io.lines("{}") do
    if n % 2 == id then
      local sig, body = line:match("^(%x+)	(.*)$")
      table.insert(reqs, wrk.format("POST", "/webhooks/plane", {{["Content-Type"] = "application/json", ["X-Plane-Event"] = "issue", ["X-Plane-Signature"] = sig}}, body))
    end
    n = n + 1
  end
  i = 0
end
function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
"#,
            data.display()
        ),
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", "-d5s", "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
