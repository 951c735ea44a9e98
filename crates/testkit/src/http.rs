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
    try_http(addr, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer from {addr}"))
}

/// `http`, or `None` when nothing answers (an engine that is gone).
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(40))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
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
#[derive(Clone)]
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
            if let Some(api) = Api::find(dir) {
                return api;
            }
            assert!(
                Instant::now() < deadline,
                "orch serve never listened (no {})",
                control.display()
            );
            // The engine is starting: before its control file there is no
            // engine to ask, so nothing to wait on but the file.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The engine's API as its control file names it now, if there is one.
    pub fn find(dir: &Path) -> Option<Api> {
        let text = std::fs::read_to_string(dir.join(".orch/serve.control")).ok()?;
        let v = serde_json::from_str::<serde_json::Value>(&text).ok()?;
        let addr = v["url"]
            .as_str()?
            .trim_start_matches("http://")
            .parse()
            .ok()?;
        let auth = format!("Authorization: Bearer {}", v["token"].as_str()?);
        Some(Api { addr, auth })
    }

    /// A counter of the engine's `/metrics`, summed over its labels.
    pub fn counter(&self, name: &str) -> f64 {
        counter(&scrape(self.addr, &self.auth), name, None)
    }

    /// Wait until the engine's counter `name` grew by `n` from now: the
    /// engine's own signal that its loop ran that many more times (the
    /// ticker's passes, the notification outbox's rounds), where a test
    /// would otherwise sleep "long enough" for something not to happen.
    /// Each pass also moves the engine's change counter, so each look
    /// follows one (`super::wait`), no polling.
    pub fn wait_for_passes(&self, name: &str, n: u32) {
        let from = self.counter(name);
        let target = from + f64::from(n);
        super::wait::until_at(
            self,
            Duration::from_secs(120),
            || (self.counter(name) >= target).then_some(()),
            || format!("{name} did not grow by {n} in 120 s (from {from})"),
        );
    }

    /// The engine's change counter once it exceeds `after`, or after
    /// `wait` (`GET /api/changes`); `None` when the engine does not answer.
    pub fn changes(&self, after: u64, wait: Duration) -> Option<u64> {
        let path = format!("/api/changes?after={after}&timeout_ms={}", wait.as_millis());
        let a = try_http(self.addr, "GET", &path, &[&self.auth], "")?;
        if status(&a) != 200 {
            return None;
        }
        serde_json::from_str::<serde_json::Value>(&body(&a)).ok()?["seq"].as_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_answer_is_read_whole() {
        let a = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(status(a), 200);
        assert_eq!(body(a), "hello world");
    }

    #[test]
    fn a_plain_answer_is_its_body() {
        let a = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!((status(a), body(a).as_str()), (401, "no"));
    }
}
