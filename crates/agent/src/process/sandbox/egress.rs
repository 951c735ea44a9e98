//! The egress allowlist of a sandboxed run: the run's network namespace has
//! only its loopback, where orch's own HTTP proxy listens (CONNECT tunnels,
//! and plain-HTTP requests in absolute form, one per connection); the proxy
//! (a thread of the monitor, on the host's network) admits only the allowed
//! hosts and records every refusal in the run folder (`egress.log`).
//!
//! How the proxy gets into the namespace without a forwarder or a veth pair:
//! network namespaces are per thread, so the monitor's thread enters a new
//! one (`unshare(CLONE_NEWNET)`), brings its loopback up, binds the listening
//! socket there, starts the sandbox's init inside it, and goes back to the
//! host's namespace. A socket stays in the namespace it was made in: the
//! proxy accepts the agent's connections from there and connects out from
//! the host's.

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Refused connections, one JSON object ([`Refusal`]) per line.
pub const EGRESS_LOG: &str = "egress.log";

/// One refused connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at: orch_core::Timestamp,
    /// What the agent asked for (`host:port`), or the request line when it
    /// was not a CONNECT.
    pub target: String,
    pub why: String,
}

/// Which `host:port` pairs the proxy admits: an entry `host:port` admits
/// that port, a bare `host` any port. Host names compare without case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowlist(pub Vec<String>);

impl Allowlist {
    pub fn admits(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                h.eq_ignore_ascii_case(host) && p.parse::<u16>() == Ok(port)
            }
            _ => entry.eq_ignore_ascii_case(host),
        })
    }
}

/// Reads the refusals of a run (a damaged line is skipped: the monitor
/// writes whole lines, so only a crash mid-write leaves one).
pub fn read_refusals(run_dir: &Path) -> Vec<Refusal> {
    std::fs::read_to_string(run_dir.join(EGRESS_LOG))
        .map(|s| {
            s.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `host:port` from a CONNECT target (`[v6]:port` too).
fn split_target(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Brings the current network namespace's loopback up.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket for the ioctl, closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: fd was just created.
    let fd: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: an ifreq zeroed, then its name and flags set.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req))
    }
}

/// The calling thread's network namespace, to come back to.
fn current_netns() -> io::Result<OwnedFd> {
    Ok(std::fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// Runs `f` with the calling thread in a new network namespace whose
/// loopback is up and holds the proxy's listening socket; returns what `f`
/// returned and the listener. Processes `f` starts are in that namespace.
pub(crate) fn in_new_netns<T>(
    f: impl FnOnce(u16) -> io::Result<T>,
) -> io::Result<(T, TcpListener)> {
    let home = current_netns()?;
    // SAFETY: unshare of this thread's network namespace only.
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
    let result = (|| {
        loopback_up()?;
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        Ok((f(port)?, listener))
    })();
    // SAFETY: back to the namespace we came from; failing that, this
    // thread must not go on (it would run the proxy's outgoing side inside).
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        orch_core::note!("orch monitor: cannot return to the host's network namespace: {e}");
        // SAFETY: ends the monitor at once.
        unsafe { libc::_exit(1) };
    }
    result
}

/// Serves the proxy on `listener` for the monitor's life, in threads.
pub(crate) fn serve(listener: TcpListener, allow: Allowlist, run_dir: PathBuf) -> io::Result<()> {
    std::thread::Builder::new()
        .name("egress-proxy".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (allow, run_dir) = (allow.clone(), run_dir.clone());
                let _ = std::thread::Builder::new()
                    .name("egress-conn".into())
                    .stack_size(128 * 1024)
                    .spawn(move || handle(conn, &allow, &run_dir));
            }
        })
        .map(drop)
}

fn refuse(run_dir: &Path, mut conn: TcpStream, target: &str, status: &str, why: String) {
    let line = serde_json::to_string(&Refusal {
        at: crate::process::run_dir::now(),
        target: target.to_owned(),
        why: why.clone(),
    })
    .unwrap_or_default();
    let logged = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(EGRESS_LOG))
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = logged {
        orch_core::note!("orch monitor: recording a refused connection: {e}");
    }
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\norch: {why}\n"
        )
        .as_bytes(),
    );
}

/// The request head, up to 16 KiB: the request line and the header lines.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || head.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "incomplete request",
            ));
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            return Ok(head);
        }
    }
}

fn handle(conn: TcpStream, allow: &Allowlist, run_dir: &Path) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_side) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_side);
    let Ok(head) = read_head(&mut reader) else {
        return;
    };
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    // CONNECT host:port (a tunnel), or a plain-HTTP request in absolute form
    // (`GET http://host:port/path`), forwarded in origin form.
    let connect = method.eq_ignore_ascii_case("CONNECT");
    let parsed = if connect {
        split_target(target).map(|(h, p)| (h, p, None))
    } else {
        absolute_form(target).map(|(h, p, path)| (h, p, Some(path)))
    };
    let Some((host, port, path)) = parsed else {
        let why = format!("cannot proxy {request_line:?}: CONNECT host:port or an http:// URL");
        return refuse(run_dir, conn, &request_line, "400 Bad Request", why);
    };
    let shown = format!("{host}:{port}");
    if !allow.admits(&host, port) {
        let why = format!("{shown} is not on this agent's egress allowlist");
        return refuse(run_dir, conn, &shown, "403 Forbidden", why);
    }
    let upstream = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| {
            a.find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(10)).ok())
        });
    let Some(mut upstream) = upstream else {
        let why = format!("{shown} is allowed but could not be reached");
        return refuse(run_dir, conn, &shown, "502 Bad Gateway", why);
    };
    if let Some(path) = path {
        // One request per connection: the next one may be for another host.
        let mut out = format!("{method} {path} {version}\r\n");
        for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").trim();
            if !(name.eq_ignore_ascii_case("connection")
                || name.eq_ignore_ascii_case("proxy-connection")
                || name.eq_ignore_ascii_case("proxy-authorization")
                || name.eq_ignore_ascii_case("keep-alive"))
            {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        if upstream.write_all(out.as_bytes()).is_err() {
            return;
        }
        return relay(conn, reader, upstream, false);
    }
    relay(conn, reader, upstream, true)
}

/// `http://host[:port]/path` → (host, port, path).
fn absolute_form(target: &str) -> Option<(String, u16, String)> {
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = match split_target(authority) {
        Some(hp) => hp,
        None => (authority.to_owned(), 80),
    };
    (!host.is_empty() && !host.contains('@')).then_some((host, port, path))
}

/// Copies both ways until both sides are done; a tunnel first tells the
/// client it is open.
fn relay(conn: TcpStream, reader: BufReader<TcpStream>, upstream: TcpStream, tunnel: bool) {
    let mut client = conn;
    let _ = client.set_read_timeout(None);
    if tunnel
        && client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
    {
        return;
    }
    // Bytes the client sent after the head (a TLS hello, say) come first.
    let early = reader.buffer().to_vec();
    let (Ok(mut up_w), Ok(mut up_r), Ok(mut client_w)) = (
        upstream.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
    ) else {
        return;
    };
    let _ = reader.get_ref().set_read_timeout(None);
    let to_upstream = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            if up_w.write_all(&early).is_ok() {
                let mut inner = reader.into_inner();
                let _ = io::copy(&mut inner, &mut up_w);
            }
            let _ = up_w.shutdown(Shutdown::Write);
        });
    let _ = io::copy(&mut up_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Write);
    if let Ok(t) = to_upstream {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_matches_host_and_port() {
        let a = Allowlist(vec!["api.example:443".into(), "Mirror.Example".into()]);
        assert!(a.admits("API.example", 443));
        assert!(!a.admits("api.example", 80));
        assert!(a.admits("mirror.example", 8080));
        assert!(!a.admits("other.example", 443));
    }

    #[test]
    fn absolute_form_urls_split_into_host_port_and_path() {
        assert_eq!(
            absolute_form("http://h:8080/v1/messages?x=1"),
            Some(("h".into(), 8080, "/v1/messages?x=1".into()))
        );
        assert_eq!(
            absolute_form("http://h"),
            Some(("h".into(), 80, "/".into()))
        );
        assert_eq!(absolute_form("https://h/"), None);
        assert_eq!(absolute_form("http://u@h/"), None);
    }

    #[test]
    fn connect_targets_split_into_host_and_port() {
        assert_eq!(split_target("h:443"), Some(("h".into(), 443)));
        assert_eq!(split_target("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_target("h"), None);
        assert_eq!(split_target(":80"), None);
    }
}
