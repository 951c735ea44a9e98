//! Outgoing notifications through `orch serve`: a `[[notify]]` webhook
//! (a real HTTP server on loopback) hears of the stages it listens for, in
//! order; an outage of the endpoint and a crash of orch in the middle lose
//! nothing; the URL's token never shows in orch's logs.

mod common;

use common::{Serve, add_task, ok, quickstart_project, wait};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "DEMO-2";
const WAIT: Duration = Duration::from_secs(120);
const TOKEN: &str = "T0KEN-in-the-url";

/// What the webhook saw: every request's status answered and body.
#[derive(Default)]
struct Seen {
    answered: Vec<(u16, Value)>,
}

impl Seen {
    fn accepted(&self) -> Vec<Value> {
        self.answered
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A webhook on 127.0.0.1 that answers 503 to its first `failures` requests,
/// then 200. Returns its URL (with a token in the path, as Slack's have).
fn webhook(failures: usize) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/services/{TOKEN}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap_or(0);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap_or(());
            let mut seen = s.lock().unwrap();
            let status = if seen.answered.len() < failures {
                503
            } else {
                200
            };
            assert!(
                request_line.starts_with(&format!("POST /services/{TOKEN} ")),
                "{request_line}"
            );
            seen.answered
                .push((status, serde_json::from_slice(&body).unwrap_or_default()));
            let reason = if status == 200 {
                "OK"
            } else {
                "Service Unavailable"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, seen)
}

/// Until the fake webhook saw what `f` looks for: each look after a
/// change the engine of `dir` signalled (a post is an outbox entry the
/// engine marks sent, or counts a failed attempt of, once the fake answered).
fn wait_until(dir: &Path, what: &str, f: impl Fn() -> bool) {
    common::wait::until(
        dir,
        WAIT,
        || f().then_some(()),
        || format!("{what} never happened"),
    );
}

#[test]
fn webhook_hears_its_stages_in_order_through_an_outage_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "notify", |cfg| {
        cfg + "\n[[notify]]\nname = \"chat\"\nurl_env = \"ORCH_TEST_NOTIFY_URL\"\nchat_id = \"-42\"\nstages = [\"awaiting_approval\", \"done\"]\n"
    });
    let (url, seen) = webhook(1);
    let mut serve = Serve::start_with_env(&dir, &[("ORCH_TEST_NOTIFY_URL", &url)]);

    add_task(&dir, KEY, "Say hello", &[]);
    wait::task(&dir, KEY, WAIT, "analysis", |v| {
        v["task"]["stage"] == "awaiting_approval"
    });
    // The first post meets the outage (503); orch dies before its retry.
    wait_until(&dir, "the first post", || {
        !seen.lock().unwrap().answered.is_empty()
    });
    serve.crash_and_restart();
    // The restarted orch finds the message in its outbox and delivers it.
    wait_until(&dir, "the retried post", || {
        seen.lock().unwrap().accepted().len() == 1
    });
    let first = seen.lock().unwrap().accepted()[0].clone();
    assert_eq!(first["orch"]["work_item"], KEY);
    assert_eq!(first["orch"]["stage"], "awaiting_approval");
    assert_eq!(first["chat_id"], "-42", "Telegram's chat id as configured");
    assert_eq!(first["msgtype"], "m.text", "Matrix reads body and msgtype");
    let text = first["text"].as_str().unwrap();
    assert!(
        text.starts_with("DEMO-2 “Say hello” (demo) is Awaiting Approval"),
        "{text}"
    );
    assert_eq!(first["body"], first["text"]);

    ok(&dir, &["task", "approve", KEY]);
    wait::task(&dir, KEY, WAIT, "done", |v| v["task"]["stage"] == "done");
    wait_until(&dir, "the done post", || {
        seen.lock().unwrap().accepted().len() == 2
    });
    // A stray duplicate or an unlisted stage would be written by the time
    // the engine has passed over its tasks twice more, and posted by the
    // outbox's next round.
    let api = common::http::Api::of(&dir);
    api.wait_for_passes("orch_ticker_passes_total", 2);
    api.wait_for_passes("orch_notify_rounds_total", 1);
    let seen = seen.lock().unwrap();
    let stages: Vec<_> = seen
        .answered
        .iter()
        .map(|(s, v)| (*s, v["orch"]["stage"].as_str().unwrap_or("?").to_owned()))
        .collect();
    assert_eq!(
        stages,
        [
            (503, "awaiting_approval".to_owned()),
            (200, "awaiting_approval".to_owned()),
            (200, "done".to_owned())
        ],
        "only the listed stages, each delivered once, in order"
    );
    drop(serve);
    for n in 0..2 {
        let log = std::fs::read_to_string(dir.join(format!("serve-{n}.log"))).unwrap();
        assert!(
            !log.contains(TOKEN),
            "serve-{n}.log shows the webhook's token"
        );
    }
}
