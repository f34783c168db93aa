//! A `gateway.toml` for a pair on 127.0.0.1, with its secret files: the
//! end-to-end tests' ([`crate::pair::Pair`], each chassis dialled directly)
//! and the campaign's ([`crate::site::Site`], each chassis `url` pointing at
//! its fault proxy). The route rules are taken verbatim from the shipped
//! `gateway.toml`, so both test the rules users run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bins::repo_root;

/// The admin token of `/_pairgate/status` in every campaign (a test secret).
pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789abcdef";
/// The session secret of every campaign (a test secret).
pub const JWT_SECRET: &str = "chaos-jwt-secret-0123456789abcdef0123456789";

/// The timeouts of every test pair and campaign: short enough that a fault
/// is noticed within a second.
pub const SECONDARY_GRACE_MS: u64 = 200;
pub const PER_TRY_MS: u64 = 1000;
pub const HEALTH_INTERVAL_MS: u64 = 200;
pub const DOWN_AFTER_MS: u64 = 600;
/// How often the gateway compares both chassis' digests while they are in
/// sync (anti-entropy): 20 health intervals (`anti_entropy::every` in
/// crates/pairgate/src/recovery/anti_entropy.rs), 4 s with the campaign's 200 ms.
pub const ANTI_ENTROPY_EVERY: Duration = Duration::from_millis(HEALTH_INTERVAL_MS * 20);

/// What the configuration needs to know.
pub struct GatewayConfig<'a> {
    /// Where the configuration, its secret files and the gateway's state go.
    pub dir: &'a Path,
    pub port: u16,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Per chassis (a, b): the port the gateway dials (the chassis' own or
    /// its proxy's), the chassis certificate.
    pub chassis: [(u16, &'a Path); 2],
    /// The gateway's account on both chassis, and its password on each.
    pub username: &'a str,
    pub passwords: [&'a str; 2],
    pub admin_token: &'a str,
    pub jwt_secret: &'a str,
}

impl GatewayConfig<'_> {
    /// Write the secrets and `gateway.toml` into `dir`; returns the config path.
    pub fn write(&self) -> Result<PathBuf, String> {
        self.write_edited(|_| {}).map(|(config, _)| config)
    }

    /// [`GatewayConfig::write`], with `edit` changing the configuration text
    /// first; returns the config path and the text written.
    pub fn write_edited(&self, edit: impl FnOnce(&mut String)) -> Result<(PathBuf, String), String> {
        let d = self.dir;
        let [pw_a, pw_b] = self.passwords;
        for (name, v) in [("admin.token", self.admin_token), ("jwt.secret", self.jwt_secret), ("a.pw", pw_a), ("b.pw", pw_b)] {
            std::fs::write(d.join(name), v).map_err(|e| format!("writing {name}: {e}"))?;
        }
        let shipped_path = repo_root().join("gateway.toml");
        let shipped = std::fs::read_to_string(&shipped_path).map_err(|e| format!("{}: {e}", shipped_path.display()))?;
        let routes = shipped.find("# ----").map(|i| &shipped[i..]).ok_or("the shipped gateway.toml has no route section")?;
        let q = |p: &Path| toml_str(&p.display().to_string());
        let [(pa, ca), (pb, cb)] = self.chassis;
        let user = self.username;
        let mut text = format!(
            "admin_token_file = {}\n[listen]\naddr = \"127.0.0.1:{}\"\ntls_cert = {}\ntls_key = {}\n[state]\ndir = {}\n\
             [[chassis]]\nname = \"a\"\nurl = \"https://127.0.0.1:{pa}\"\nca_cert = {}\nusername = \"{user}\"\npassword_file = {}\npreferred_primary = true\n\
             [[chassis]]\nname = \"b\"\nurl = \"https://127.0.0.1:{pb}\"\nca_cert = {}\nusername = \"{user}\"\npassword_file = {}\n\
             [timeouts]\nsecondary_grace_ms = {SECONDARY_GRACE_MS}\nper_try_ms = {PER_TRY_MS}\nhealth_interval_ms = {HEALTH_INTERVAL_MS}\ndown_after_ms = {DOWN_AFTER_MS}\n\
             [sessions]\njwt_secret_file = {}\nlogin_attempts_per_minute = 1000\n{routes}",
            q(&d.join("admin.token")),
            self.port,
            q(self.cert),
            q(self.key),
            q(&d.join("gateway-state")),
            q(ca),
            q(&d.join("a.pw")),
            q(cb),
            q(&d.join("b.pw")),
            q(&d.join("jwt.secret")),
        );
        edit(&mut text);
        let config = d.join("gateway.toml");
        std::fs::write(&config, &text).map_err(|e| format!("writing {}: {e}", config.display()))?;
        Ok((config, text))
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
