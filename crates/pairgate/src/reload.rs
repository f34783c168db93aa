//! Reload: `gateway.toml` and the certificates read again while the gateway
//! serves (SIGHUP, or `pairgate reload`, which is `POST /_pairgate/reload`).
//!
//! Everything is checked before anything changes: the file as `check-config`
//! checks it (the same FILE:LINE:COL message when it is refused), the
//! certificates and keys it names. Then, at once:
//! - the **route rules** (classification, where IDs live, secrets, conflict
//!   keys, `compare_ignores`, `ends_sessions_of`), for the next request and the
//!   appliers' next entry;
//! - `[timeouts] per_try_ms` and `secondary_grace_ms` for client requests and
//!   the appliers (the gateway's own background work, such as health probes,
//!   pairing, resyncs and chassis logins, keeps the values it started with);
//! - `[listen] max_body_bytes` and `metrics_open`;
//! - `[reads] coalesce`, for the next read;
//! - the gateway's **certificate** and key (served from the next TLS
//!   handshake; open connections keep theirs), and each chassis' `ca_cert`
//!   (a new client per chassis; requests in flight finish on the old one).
//!
//! No connection is dropped and no session ends. A change to anything else
//! (addresses, chassis, accounts, the state directory, the journal, sessions,
//! collections, events, cascade, health timing, the front's limits) needs a
//! restart: such a file is refused, naming those settings, and nothing changes.

use std::sync::Arc;

use crate::config::{Config, FileChecks, Transport};
use crate::gateway::Gateway;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not pass `check-config` (the message names file, line, column and fix).
    #[error("{0}\nthe configuration running before stays")]
    Invalid(String),
    #[error(
        "{file}: a reload cannot change {}; restart the gateway for that (nothing was changed, the configuration running before stays)",
        settings.join(", ")
    )]
    RestartNeeded { file: String, settings: Vec<&'static str> },
    #[error("{0}\nnothing was changed, the configuration running before stays")]
    Certificate(String),
}

/// What a reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    pub file: String,
    /// The reloadable settings that differ from before (certificates are
    /// always read again and listed as `certificates`).
    pub changed: Vec<&'static str>,
}

/// The settings of `new` that differ from `old` and only a restart can change.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    let listen = |c: &Config| {
        let mut l = c.listen.clone();
        l.max_body_bytes = 0;
        l.metrics_open = false;
        // Which files hold the certificate may change (they are read again);
        // HTTPS or not may not.
        l.transport = match l.transport {
            Transport::Tls { .. } => Transport::Tls { cert: Default::default(), key: Default::default() },
            Transport::InsecureHttp => Transport::InsecureHttp,
        };
        l
    };
    check("[listen] addr, insecure_http and the connection limits", listen(old) != listen(new));
    check("admin_token_file", old.admin_token_file != new.admin_token_file);
    check("[state]", old.state != new.state);
    let chassis = |c: &Config| {
        c.chassis.clone().map(|mut ch| {
            ch.ca_cert = ch.ca_cert.map(|_| Default::default());
            ch.line = 0;
            ch
        })
    };
    check("[[chassis]] (other than ca_cert)", chassis(old) != chassis(new));
    check(
        "[timeouts] health_interval_ms, down_after_ms",
        (old.timeouts.health_interval, old.timeouts.down_after) != (new.timeouts.health_interval, new.timeouts.down_after),
    );
    check("[journal]", old.journal != new.journal);
    check("[sessions]", old.sessions != new.sessions);
    let collections = |c: &Config| c.collections.iter().cloned().map(|mut x| (x.line = 0, x).1).collect::<Vec<_>>();
    check("[[collection]]", collections(old) != collections(new));
    let events = |c: &Config| c.events.iter().cloned().map(|mut x| (x.line = 0, x).1).collect::<Vec<_>>();
    check("[[event]]", events(old) != events(new));
    let cascade = |c: &Config| {
        c.cascade.clone().map(|mut x| {
            x.line = 0;
            if let Some(s) = &mut x.superior {
                s.line = 0;
            }
            x
        })
    };
    check("[cascade]", cascade(old) != cascade(new));
    out
}

/// The reloadable settings of `new` that differ from `old`.
pub fn reloadable_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !old.routes.same_rules(&new.routes) {
        out.push("[[route]]");
    }
    if old.timeouts.per_try != new.timeouts.per_try {
        out.push("[timeouts] per_try_ms");
    }
    if old.timeouts.secondary_grace != new.timeouts.secondary_grace {
        out.push("[timeouts] secondary_grace_ms");
    }
    if old.listen.max_body_bytes != new.listen.max_body_bytes {
        out.push("[listen] max_body_bytes");
    }
    if old.listen.metrics_open != new.listen.metrics_open {
        out.push("[listen] metrics_open");
    }
    if old.reads != new.reads {
        out.push("[reads] coalesce");
    }
    out.push("certificates");
    out
}

impl Gateway {
    /// Read the configuration file again and swap what can be swapped (see
    /// the module docs); on any error nothing changes.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock();
        let old = self.cfg.load_full();
        let file = old.file.display().to_string();
        let new = Config::load(&old.file, FileChecks::Check).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let restart = restart_only_changes(&old, &new);
        if !restart.is_empty() {
            return Err(ReloadError::RestartNeeded { file, settings: restart });
        }
        // Everything that can fail, before anything changes.
        let cert = match (&new.listen.transport, &self.cert) {
            (Transport::Tls { cert, key }, Some(_)) => {
                Some(crate::front::certified_key(cert, key).map_err(|e| ReloadError::Certificate(e.to_string()))?)
            }
            _ => None,
        };
        let mut clients = Vec::with_capacity(2);
        for (c, m) in new.chassis.iter().zip(self.pair.members.iter()) {
            let client = crate::chassis::upstream::Client::new(&c.name, &c.url, c.ca_cert.as_deref(), new.timeouts.per_try)
                .map_err(|e| ReloadError::Certificate(e.to_string()))?;
            clients.push((m, client));
        }
        let changed = reloadable_changes(&old, &new);
        // Now all at once.
        if let (Some(key), Some(slot)) = (cert, &self.cert) {
            slot.replace(key);
        }
        for (m, client) in clients {
            m.upstream.retrust(client);
        }
        self.translator.set_routes(new.routes.clone());
        if let Some(egress) = &self.egress {
            egress.set_routes(new.routes.clone());
        }
        self.cfg.store(Arc::new(new));
        tracing::info!(file, ?changed, "configuration reloaded");
        // The certificates just read: any still near its expiry is said again.
        let served = self.cert.as_ref().map(|slot| slot.chain());
        crate::certs::warn_expiring(&self.cfg.load(), served.as_deref());
        Ok(Reloaded { file, changed })
    }

    /// [`Gateway::reload`], asked for by `who` (the admin token, an admin
    /// account, SIGHUP), and put on the dashboard's timeline either way.
    pub fn reload_for(&self, who: &str) -> Result<Reloaded, ReloadError> {
        let outcome = self.reload();
        let text = match &outcome {
            Ok(r) => format!("configuration reloaded by {who} ({}): {}", r.file, r.changed.join(", ")),
            Err(e) => format!("reload asked by {who} refused, the old configuration stays: {e}"),
        };
        self.timeline.record(crate::timeline::Kind::Admin, None, text);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> (tempfile::TempDir, std::path::PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../../gateway.toml").to_string();
        let path = dir.path().join("gateway.toml");
        (dir, path, text)
    }

    fn parse(path: &std::path::Path, text: &str) -> Config {
        Config::parse(text, path, FileChecks::Skip).unwrap()
    }

    #[test]
    fn routes_timeouts_and_listen_limits_reload_and_the_rest_needs_a_restart() {
        let (_d, path, text) = shipped();
        let old = parse(&path, &text);
        assert_eq!(restart_only_changes(&old, &old), Vec::<&str>::new());
        assert_eq!(reloadable_changes(&old, &old), vec!["certificates"]);

        // A comment added at the top moves every line: no change.
        let moved = parse(&path, &format!("# a note\n\n{text}"));
        assert!(restart_only_changes(&old, &moved).is_empty());
        assert_eq!(reloadable_changes(&old, &moved), vec!["certificates"]);

        let edited = text
            .replace("per_try_ms = 2000", "per_try_ms = 1500")
            .replace("metrics_open = false", "metrics_open = true")
            .replace("coalesce = true", "coalesce = false")
            .replacen("path = \"/metrics\"", "path = \"/gateway-metrics\"", 1);
        let new = parse(&path, &edited);
        assert!(restart_only_changes(&old, &new).is_empty());
        assert_eq!(
            reloadable_changes(&old, &new),
            vec!["[[route]]", "[timeouts] per_try_ms", "[listen] metrics_open", "[reads] coalesce", "certificates"]
        );

        let restart = text
            .replace("addr = \"127.0.0.1:8443\"", "addr = \"127.0.0.1:9443\"")
            .replace("health_interval_ms = 500", "health_interval_ms = 400")
            .replace("dir = \".state/gateway\"", "dir = \".state/other\"");
        let new = parse(&path, &restart);
        assert_eq!(
            restart_only_changes(&old, &new),
            vec!["[listen] addr, insecure_http and the connection limits", "[state]", "[timeouts] health_interval_ms, down_after_ms"]
        );
    }
}
