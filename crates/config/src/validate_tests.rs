//! Unit tests of `validate.rs` (a file of their own to keep it short).

use super::*;

#[test]
fn env_names() {
    for ok in ["ORCH_API_TOKEN", "_X", "a1"] {
        assert!(is_env_name(ok), "{ok}");
    }
    for bad in ["", "1A", "A-B", "sk-abc123", "A B"] {
        assert!(!is_env_name(bad), "{bad}");
    }
}

#[test]
fn node_url_is_an_http_url() {
    let mut cfg = Config::default();
    cfg.server.node_url = Some("node-1.internal:8080".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("server.node_url"), "{err}");
    cfg.server.node_url = Some("http://node-1.internal:8080".into());
    cfg.validate().unwrap();
}

#[test]
fn public_url_is_an_http_url_and_its_absence_on_every_interface_is_warned() {
    let mut cfg = Config::default();
    cfg.server.public_url = Some("orch.example.org".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("server.public_url"), "{err}");
    cfg.server.public_url = None;
    cfg.server.listen = "0.0.0.0:8080".into();
    let warnings = cfg.validate().unwrap();
    assert!(
        warnings.iter().any(|w| w.key == "server.public_url"),
        "{warnings:?}"
    );
    cfg.server.public_url = Some("https://orch.example.org".into());
    let warnings = cfg.validate().unwrap();
    assert!(
        !warnings.iter().any(|w| w.key == "server.public_url"),
        "{warnings:?}"
    );
}
