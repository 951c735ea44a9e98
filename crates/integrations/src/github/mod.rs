//! GitHub: the REST client, the `Forge` port, and GitHub Issues as a tracker
//! with gate states as labels.

pub mod client;
pub mod forge;
pub mod reconcile;
pub mod tracker;

pub use client::GithubClient;
pub use forge::GithubForge;
pub use reconcile::GithubReconciler;
pub use tracker::GithubIssuesTracker;

/// GitHub's web address from its API address: `https://api.github.com` →
/// `https://github.com`; GitHub Enterprise's `https://host/api/v3` →
/// `https://host`; anything else (a fake on loopback) is its own web base.
pub fn web_base(api_base: &str) -> String {
    let api = api_base.trim_end_matches('/');
    if let Some(host) = api.strip_suffix("/api/v3") {
        return host.to_owned();
    }
    for scheme in ["https://", "http://"] {
        if let Some(rest) = api.strip_prefix(scheme)
            && let Some(host) = rest.strip_prefix("api.")
            && !host.contains('/')
        {
            return format!("{scheme}{host}");
        }
    }
    api.to_owned()
}

#[cfg(test)]
mod web_base_tests {
    #[test]
    fn web_base_of_api_addresses() {
        assert_eq!(
            super::web_base("https://api.github.com"),
            "https://github.com"
        );
        assert_eq!(
            super::web_base("https://ghe.example/api/v3/"),
            "https://ghe.example"
        );
        assert_eq!(
            super::web_base("http://127.0.0.1:9999"),
            "http://127.0.0.1:9999"
        );
    }
}
