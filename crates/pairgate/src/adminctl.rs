//! The admin actions as commands: `pairgate resync|primary|maintenance`.
//! They read `gateway.toml` for the gateway's address, certificate and admin
//! token, and call the `/_pairgate/…` endpoints (see `admin.rs`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Config, Transport};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Setup(String),
    #[error("the gateway at {0} did not answer: {1}")]
    Unreachable(String, String),
    #[error("the gateway refused: {0}")]
    Refused(String),
    #[error("gave up after {0:?}: {1}")]
    Timeout(Duration, String),
}

/// A client for one gateway, from its configuration.
pub struct Ctl {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Ctl {
    pub fn new(cfg: &Config) -> Result<Ctl, CtlError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = std::fs::read_to_string(&cfg.admin_token_file)
            .map_err(|e| CtlError::Setup(format!("{}: {e}", cfg.admin_token_file.display())))?
            .trim()
            .to_string();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let scheme = match &cfg.listen.transport {
            Transport::Tls { cert, .. } => {
                let roots = crate::chassis::upstream::trust_anchors("gateway", cert).map_err(|e| CtlError::Setup(e.to_string()))?;
                builder =
                    builder.tls_backend_preconfigured(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth());
                "https"
            }
            Transport::InsecureHttp => "http",
        };
        // A gateway listening on every address is reached on loopback.
        let mut addr = cfg.listen.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let http = builder.build().map_err(|e| CtlError::Setup(e.to_string()))?;
        Ok(Ctl { http, base: format!("{scheme}://{addr}"), token })
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, CtlError> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| CtlError::Unreachable(self.base.clone(), e.to_string()))?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v)
        } else {
            Err(CtlError::Refused(v["error"]["message"].as_str().unwrap_or("no reason given").to_string()))
        }
    }

    pub async fn status(&self) -> Result<Value, CtlError> {
        let r = self
            .http
            .get(format!("{}/_pairgate/status", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CtlError::Unreachable(self.base.clone(), e.to_string()))?;
        r.json().await.map_err(|e| CtlError::Unreachable(self.base.clone(), e.to_string()))
    }
}

fn chassis<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["chassis"].as_array()?.iter().find(|c| c["name"] == name)
}

/// Ask for a full resync of `name` and follow it to `in_sync` with a progress bar.
pub async fn resync(cfg: &Config, name: &str, limit: Duration) -> Result<(), CtlError> {
    let ctl = Ctl::new(cfg)?;
    let accepted = ctl.post(&format!("/_pairgate/resync/{name}"), Value::Null).await?;
    let before = accepted["resyncs_before"].as_u64().unwrap_or(0);
    let bar = indicatif::ProgressBar::new(4);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} resync {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .map_err(|e| CtlError::Setup(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    let start = Instant::now();
    while start.elapsed() < limit {
        let s = ctl.status().await?;
        let phase = s["resync"]["phase"].as_str().unwrap_or("").to_string();
        let mine = s["resync"]["chassis"] == name;
        let state = chassis(&s, name).and_then(|c| c["state"].as_str()).unwrap_or("?").to_string();
        let lag = chassis(&s, name).and_then(|c| c["lag"].as_u64()).unwrap_or(0);
        let done = chassis(&s, name).and_then(|c| c["resyncs"].as_u64()).unwrap_or(0) > before;
        let step = match (mine, phase.as_str()) {
            (true, "waiting_for_source") => 0,
            (true, "exporting") => 1,
            (true, "importing") => 2,
            (true, "replaying") | (true, "done") => 3,
            _ => 0,
        };
        bar.set_position(step);
        let r = &s["resync"];
        let moved = match (r["bytes"].as_u64(), r["bytes_total"].as_u64()) {
            (Some(b), Some(t)) if mine && t > 0 => format!(", {:.1} of {:.1} MB", b as f64 / 1e6, t as f64 / 1e6),
            (Some(b), None) if mine && b > 0 => format!(", {:.1} MB", b as f64 / 1e6),
            _ => String::new(),
        };
        let rows = r["rows"].as_u64().unwrap_or(0);
        let attempt = r["attempt"].as_u64().filter(|&a| mine && a > 1).map(|a| format!(", attempt {a}")).unwrap_or_default();
        bar.set_message(format!("{phase} ({rows} rows{moved}{attempt}); {state}, lag {lag}"));
        if mine && phase.starts_with("failed") {
            bar.abandon_with_message(phase.clone());
        }
        if done && state == "in_sync" && lag == 0 {
            bar.set_position(4);
            bar.finish_with_message("in sync, digests equal");
            println!("chassis {name}: in sync, digests equal ({:.1} s)", start.elapsed().as_secs_f64());
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.abandon();
    Err(CtlError::Timeout(limit, format!("chassis {name} is not back in sync")))
}
