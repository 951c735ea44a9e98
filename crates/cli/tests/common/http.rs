//! Talking to a running `orch serve` from a test: one plain HTTP/1.1
//! request over loopback (no client, so no proxy variable of the caller can
//! reach it), the answer's status and body, `/metrics` parsed, and the
//! engine's own signals (`orch_ticker_passes_total`, …) to wait on instead
//! of sleeping.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// One HTTP/1.1 request; the whole answer (status line, headers, body) as text.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The body of a (possibly chunked) answer.
pub fn body(answer: &str) -> String {
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return rest.to_owned();
    }
    let mut out = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// `/metrics` as Prometheus samples; `auth` is an `Authorization` header.
pub fn scrape(addr: SocketAddr, auth: &str) -> prometheus_parse::Scrape {
    let a = http(addr, "GET", "/metrics", &[auth], "");
    assert_eq!(status(&a), 200, "{a}");
    let text = body(&a);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}): {text}"))
}

/// The sum of a counter's samples whose labels include `label`.
pub fn counter(s: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The API of the engine running for the project in `dir`, as the CLI finds
/// it: the address and control token in `.orch/serve.control`.
pub struct Api {
    pub addr: SocketAddr,
    pub auth: String,
}

impl Api {
    /// Waits (bounded) until the engine has written its control file.
    pub fn of(dir: &Path) -> Api {
        let control = dir.join(".orch/serve.control");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&control)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                let url = v["url"].as_str().unwrap();
                let addr = url.trim_start_matches("http://").parse().unwrap();
                let auth = format!("Authorization: Bearer {}", v["token"].as_str().unwrap());
                return Api { addr, auth };
            }
            assert!(
                Instant::now() < deadline,
                "orch serve never listened (no {})",
                control.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter of the engine's `/metrics`, summed over its labels.
    pub fn counter(&self, name: &str) -> f64 {
        counter(&scrape(self.addr, &self.auth), name, None)
    }

    /// Wait until the engine's counter `name` grew by `n` from now: the
    /// engine's own signal that its loop ran that many more times (the
    /// ticker's passes, the notification outbox's rounds), where a test
    /// would otherwise sleep "long enough" for something not to happen.
    pub fn wait_for_passes(&self, name: &str, n: u32) {
        let from = self.counter(name);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.counter(name) < from + f64::from(n) {
            assert!(
                Instant::now() < deadline,
                "{name} did not grow by {n} in 120 s (from {from})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
