//! A run log of another node (issue 11): this node's API streams it from
//! that node's API, forwarding the viewer's place and its own token, and
//! marking the request so the other node never forwards it again; when
//! that node does not answer, the stream says where the log is.
//!
//! The other node is a plain loopback server that answers as an orch API
//! does and records what it was asked (the real pair of nodes runs in
//! `crates/cli/tests/multi_node.rs`).

use orch_core::TaskId;
use orch_core::run::{RunOutcome, Usage};
use orch_store::{NodeReport, RunFinish};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::*;

const THEIR_LOG: &str = "id: r:11\ndata: from the other node\n\nevent: end\ndata: end of log\n\n";

/// A node's API that answers every request with `THEIR_LOG` and keeps the
/// request's head.
async fn other_node() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let served = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{THEIR_LOG}",
                THEIR_LOG.len()
            );
            conn.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (url, seen, served)
}

/// A task of `s` with a finished run of node `node`, its log at `log`.
async fn run_of(s: &Server, node: &str, log: &std::path::Path) -> (TaskId, orch_core::RunId) {
    let created = s
        .create(json!({"repo": "demo", "title": "Elsewhere"}))
        .await;
    let id = TaskId(created["result"]["task"].as_i64().unwrap());
    let (task, run) = s.start_run(node, log).await;
    assert_eq!(task, id);
    // Finished, so a stream read on this node ends when the file is read.
    let finish = RunFinish {
        outcome: RunOutcome::Succeeded,
        exit_code: Some(0),
        signal: None,
        usage: Usage::default(),
        session_id: None,
        error: None,
        final_text: None,
    };
    assert!(s.store.finish_run(&run, &finish).await.unwrap());
    (id, run)
}

async fn report(s: &Server, node: &str, api_url: Option<&str>) {
    s.store
        .node_heartbeat(NodeReport {
            name: node,
            boot_id: "boot",
            claims_stopped: false,
            api_url,
            machine: Some("elsewhere"),
        })
        .await
        .unwrap();
}

fn sse(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("data:") || l.starts_with("event:"))
        .collect()
}

#[tokio::test]
async fn another_nodes_run_log_is_streamed_from_that_node() {
    let s = Server::start_as_node("here").await;
    let (url, seen, other) = other_node().await;
    report(&s, "there", Some(&url)).await;
    let (id, run) = run_of(&s, "there", &s.dir.path().join("not-here.log")).await;

    let (status, headers, text) = s
        .call_with(
            hyper::Method::GET,
            &format!("/api/tasks/{id}/logs"),
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("last-event-id", &format!("{run}:5")),
            ],
            None,
        )
        .await;
    assert_eq!(status, hyper::StatusCode::OK, "{text}");
    assert_eq!(headers["x-orch-log-node"], "there");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(text, THEIR_LOG, "the other node's stream, as it sent it");

    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let head = asked[0].to_ascii_lowercase();
    assert!(
        head.starts_with(&format!("get /api/tasks/{id}/logs?run={run} http/1.1")),
        "the run is named: {head}"
    );
    assert!(head.contains("x-orch-forwarded-by: here"), "{head}");
    assert!(
        head.contains(&format!("authorization: bearer {TOKEN}").to_ascii_lowercase()),
        "this node's token: {head}"
    );
    assert!(
        head.contains(&format!("last-event-id: {run}:5")),
        "the viewer's place: {head}"
    );

    // A request another node forwarded is served here, never forwarded
    // again: this machine has no such file, so the log is empty.
    let (status, headers, text) = s
        .call_with(
            hyper::Method::GET,
            &format!("/api/tasks/{id}/logs?run={run}"),
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("x-orch-forwarded-by", "there"),
            ],
            None,
        )
        .await;
    assert_eq!(status, hyper::StatusCode::OK);
    assert!(!headers.contains_key("x-orch-log-node"));
    assert_eq!(sse(&text), ["event: end", "data: end of log"]);
    assert_eq!(seen.lock().unwrap().len(), 1, "no second forward");

    // A run this task does not have is a 404.
    let (status, _, text) = s
        .call(
            hyper::Method::GET,
            &format!("/api/tasks/{id}/logs?run=nope"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, hyper::StatusCode::NOT_FOUND, "{text}");
    other.abort();
    s.shutdown().await;
}

#[tokio::test]
async fn a_node_that_does_not_answer_is_named_and_a_log_on_this_disk_is_still_read() {
    let s = Server::start_as_node("here").await;
    // A port nobody listens on any more.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    report(&s, "there", Some(&gone)).await;
    let log = s.dir.path().join("theirs.log");
    let (id, run) = run_of(&s, "there", &log).await;

    let (status, headers, text) = s
        .call(
            hyper::Method::GET,
            &format!("/api/tasks/{id}/logs"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, hyper::StatusCode::OK);
    assert!(!headers.contains_key("x-orch-log-node"));
    let events = sse(&text);
    assert_eq!(events[0], "event: error", "{text}");
    assert!(
        events[1].contains(&format!("the log of run {run} is on node there"))
            && events[1].contains(&gone)
            && events[1].contains("does not answer"),
        "{text}"
    );
    assert_eq!(events[2..], ["event: end", "data: end of log"]);

    // The same disk holds it (a node renamed on this machine): read here.
    std::fs::write(&log, "kept here\n").unwrap();
    let (_, _, text) = s
        .call(
            hyper::Method::GET,
            &format!("/api/tasks/{id}/logs?run={run}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert!(sse(&text).contains(&"data: kept here"), "{text}");
    s.shutdown().await;
}
