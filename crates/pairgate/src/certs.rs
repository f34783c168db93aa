//! Certificates: the ones a configuration uses and trusts, and a local CA to
//! make them.
//!
//! - **Inventory** ([`inventory`]): every certificate in every PEM file the
//!   configuration names — `[listen] tls_cert` (the gateway's own, a chain
//!   perhaps), each `[[chassis]] ca_cert`, `[cascade.superior] ca_cert` — with
//!   its subject, names, SHA-256 fingerprint and expiry. A file that cannot be
//!   read is a [`CertProblem`] in the list, never a panic. `pairgate certs
//!   show` prints it; the running gateway logs a warning for each certificate
//!   that expires within [`WARN_DAYS`] at start, after each reload and once a
//!   day ([`watch`]), and shows them all on `/_pairgate/status` and `/metrics`,
//!   read at request time: its own certificate as it serves it now (a reload
//!   with a new file shows the new one at once), the trust anchors from their
//!   files.
//! - **A local CA** ([`init`], `pairgate certs init`): a CA, the gateway's
//!   certificate and one per chassis, signed by it, valid one year at most
//!   ([`crate::files::CERT_VALIDITY_DAYS`]). Nothing is replaced: if any of the
//!   files exists, nothing is written. Each certificate file holds the chain
//!   (its certificate, then the CA's), so a client that trusts either the CA
//!   (`ca.pem`) or the file itself accepts it: the gateway's chassis clients
//!   take `ca_cert` as trust anchors (`chassis/upstream.rs`, rustls with
//!   webpki: a path is built from the chassis' certificate to an anchor), so
//!   `ca_cert = "DIR/ca.pem"` accepts every chassis certificate that CA signed.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::config::{Config, LiveConfig, Transport};
use crate::files::{self, FilesError, LocalCa};

/// A certificate that expires within this many days (or has expired) is
/// warned about: in the log, on the status page, in `/metrics`, by `certs show`.
pub const WARN_DAYS: i64 = 30;

const DAY_S: i64 = 86_400;

/// How often the running gateway looks at its certificates again ([`watch`]).
pub const CHECK_EVERY: Duration = Duration::from_secs(DAY_S as u64);

/// Enough for any certificate chain; a bigger file is not what it claims.
const READ_LIMIT: u64 = 1024 * 1024;

/// What a certificate is for, as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// `[listen] tls_cert`: what the gateway serves to its clients.
    Gateway,
    /// A `[[chassis]] ca_cert`: what the gateway trusts from that chassis.
    Chassis(String),
    /// `[cascade.superior] ca_cert`: what the gateway trusts from its superior.
    Superior,
}

impl Role {
    /// The chassis' name, for a chassis' trust anchor.
    pub fn chassis(&self) -> Option<&str> {
        match self {
            Role::Chassis(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Gateway => f.write_str("gateway"),
            Role::Chassis(name) => write!(f, "chassis {name}"),
            Role::Superior => f.write_str("superior"),
        }
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One certificate of a PEM file the configuration names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    pub role: Role,
    pub path: PathBuf,
    /// Its place in the file (0: the first; a chain holds more).
    pub index: usize,
    /// The subject's distinguished name, e.g. `CN=pairgate gateway`.
    pub subject: String,
    /// Subject alternative names: DNS names and IP addresses as written
    /// (`localhost`, `127.0.0.1`), others with their kind (`email:…`, `URI:…`).
    pub sans: Vec<String>,
    /// SHA-256 of the DER, upper-case hex pairs joined by colons (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256: String,
    pub not_after_unix: i64,
    /// Seconds from the inventory's time to not-after; negative once expired.
    pub seconds_left: i64,
    /// Whole days left (rounded down; negative once expired).
    pub days_left: i64,
}

impl CertInfo {
    /// The same certificate with the time left counted from `now`.
    pub fn as_of(self, now: i64) -> CertInfo {
        let seconds_left = self.not_after_unix.saturating_sub(now);
        CertInfo { seconds_left, days_left: seconds_left.div_euclid(DAY_S), ..self }
    }

    /// Whether it expires within [`WARN_DAYS`] (30 × 24 h, that instant
    /// included) or has expired.
    pub fn expiring(&self) -> bool {
        self.seconds_left <= WARN_DAYS * DAY_S
    }

    /// Whether not-after has passed.
    pub fn expired(&self) -> bool {
        self.seconds_left <= 0
    }

    /// Not-after as RFC 3339 in UTC, e.g. `2027-03-01T12:00:00Z`.
    pub fn not_after(&self) -> String {
        rfc3339(self.not_after_unix)
    }

    /// The warning line for an expiring certificate (`EXPIRED …` or `expires
    /// in N days`); None when it is not expiring.
    pub fn warning(&self) -> Option<String> {
        if self.expired() {
            Some(format!("EXPIRED on {}", self.not_after()))
        } else if self.expiring() {
            Some(format!("expires in {} days ({})", self.days_left, self.not_after()))
        } else {
            None
        }
    }
}

/// A certificate file the configuration names that cannot be read, or holds
/// something that is not a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{role} certificate {}: {reason}", path.display())]
pub struct CertProblem {
    pub role: Role,
    pub path: PathBuf,
    pub reason: String,
}

/// The certificate files `cfg` names, with what each is for, in file order:
/// the gateway's, each chassis' trust anchor, the superior's.
pub fn named_files(cfg: &Config) -> Vec<(Role, PathBuf)> {
    let mut out = Vec::new();
    if let Transport::Tls { cert, .. } = &cfg.listen.transport {
        out.push((Role::Gateway, cert.clone()));
    }
    for c in &cfg.chassis {
        if let Some(ca) = &c.ca_cert {
            out.push((Role::Chassis(c.name.clone()), ca.clone()));
        }
    }
    if let Some(ca) = cfg.cascade.as_ref().and_then(|c| c.superior.as_ref()).and_then(|s| s.ca_cert.as_ref()) {
        out.push((Role::Superior, ca.clone()));
    }
    out
}

/// Every certificate in every file `cfg` names (see [`named_files`]), as of
/// now; a file that cannot be read is one [`CertProblem`].
pub fn inventory(cfg: &Config) -> Vec<Result<CertInfo, CertProblem>> {
    inventory_at(cfg, None, now_unix())
}

/// [`inventory`] of a running gateway: its own certificates are the chain
/// it serves now (`served`, DER, leaf first; `front::CertSlot::chain`) —
/// which a reload replaces — not what its file holds now, which may have been
/// replaced since. The trust anchors are read from their files.
pub fn inventory_serving(cfg: &Config, served: Option<&[CertificateDer<'_>]>) -> Vec<Result<CertInfo, CertProblem>> {
    inventory_at(cfg, served, now_unix())
}

/// [`inventory_serving`] as of `now` (Unix seconds).
pub fn inventory_at(cfg: &Config, served: Option<&[CertificateDer<'_>]>, now: i64) -> Vec<Result<CertInfo, CertProblem>> {
    let mut out = Vec::new();
    for (role, path) in named_files(cfg) {
        match (&role, served) {
            (Role::Gateway, Some(chain)) => out.extend(describe_all(&role, &path, chain.iter().map(|c| Ok(c.as_ref())), now)),
            _ => out.extend(read_file(&role, &path, now)),
        }
    }
    out
}

/// [`inventory_serving`] for the pages asked for again and again (the status
/// page, `/metrics`, each open dashboard every second): the files are read
/// and parsed once per configuration in force — a start or a reload, which is
/// also when the gateway takes its trust anchors and its own certificate — and
/// the time left is counted again at each call.
#[derive(Default)]
pub struct InventoryCache {
    last: parking_lot::Mutex<Option<Cached>>,
}

struct Cached {
    /// The configuration it was read for (kept: its address cannot be reused).
    cfg: std::sync::Arc<Config>,
    /// The chain the front served then.
    served: Option<Vec<CertificateDer<'static>>>,
    items: Vec<Result<CertInfo, CertProblem>>,
}

impl InventoryCache {
    /// The inventory of `cfg` with the front serving `served`, as of now.
    pub fn get(&self, cfg: &std::sync::Arc<Config>, served: Option<Vec<CertificateDer<'static>>>) -> Vec<Result<CertInfo, CertProblem>> {
        self.get_at(cfg, served, now_unix())
    }

    /// [`InventoryCache::get`] as of `now` (Unix seconds).
    pub fn get_at(
        &self,
        cfg: &std::sync::Arc<Config>,
        served: Option<Vec<CertificateDer<'static>>>,
        now: i64,
    ) -> Vec<Result<CertInfo, CertProblem>> {
        let mut last = self.last.lock();
        let fresh = last.as_ref().is_some_and(|c| std::sync::Arc::ptr_eq(&c.cfg, cfg) && c.served == served);
        if !fresh {
            let items = inventory_at(cfg, served.as_deref(), now);
            *last = Some(Cached { cfg: cfg.clone(), served, items });
        }
        let items = last.as_ref().map_or(&[][..], |c| c.items.as_slice());
        items.iter().map(|item| item.clone().map(|c| c.as_of(now))).collect()
    }
}

/// The certificates in the PEM file at `path`, each its own entry.
pub fn read_file(role: &Role, path: &Path, now: i64) -> Vec<Result<CertInfo, CertProblem>> {
    let problem = |reason: String| CertProblem { role: role.clone(), path: path.to_path_buf(), reason };
    let mut pem = Vec::new();
    if let Err(e) = std::fs::File::open(path).and_then(|f| f.take(READ_LIMIT).read_to_end(&mut pem)) {
        return vec![Err(problem(format!("cannot be read: {e}")))];
    }
    let ders: Vec<Result<CertificateDer<'static>, String>> =
        CertificateDer::pem_slice_iter(&pem).map(|d| d.map_err(|e| format!("not a PEM certificate: {e}"))).collect();
    let out = describe_all(role, path, ders.iter().map(|d| d.as_ref().map(|d| d.as_ref()).map_err(String::clone)), now);
    if out.is_empty() {
        return vec![Err(problem("holds no certificate (no -----BEGIN CERTIFICATE----- block)".into()))];
    }
    out
}

/// Each of `ders` (a file's certificates, in order) described as of `now`.
fn describe_all<'a>(
    role: &Role,
    path: &Path,
    ders: impl Iterator<Item = Result<&'a [u8], String>>,
    now: i64,
) -> Vec<Result<CertInfo, CertProblem>> {
    ders.enumerate()
        .map(|(index, der)| {
            der.and_then(|der| describe(der, now)).map(|d| CertInfo { role: role.clone(), path: path.to_path_buf(), index, ..d }).map_err(
                |reason| CertProblem {
                    role: role.clone(),
                    path: path.to_path_buf(),
                    reason: format!("certificate {}: {reason}", index + 1),
                },
            )
        })
        .collect()
}

/// One DER certificate described as of `now`; `role`, `path` and `index` are
/// left for the caller (gateway, empty, 0).
pub fn describe(der: &[u8], now: i64) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(general_name).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("its subject alternative names cannot be read: {e}")),
    };
    let not_after_unix = cert.validity().not_after.timestamp();
    let seconds_left = not_after_unix.saturating_sub(now);
    Ok(CertInfo {
        role: Role::Gateway,
        path: PathBuf::new(),
        index: 0,
        subject: cert.subject().to_string(),
        sans,
        sha256: fingerprint(der),
        not_after_unix,
        seconds_left,
        days_left: seconds_left.div_euclid(DAY_S),
    })
}

fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(s) => (*s).to_string(),
        GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
            Ok(v4) => IpAddr::from(v4).to_string(),
            Err(_) => match <[u8; 16]>::try_from(*b) {
                Ok(v6) => IpAddr::from(v6).to_string(),
                Err(_) => format!("IP:{}", hex::encode(b)),
            },
        },
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        other => other.to_string(),
    }
}

/// SHA-256 of `der` as `AB:CD:…` (32 upper-case hex pairs).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Unix seconds as RFC 3339 in UTC (`…Z`); the number itself if out of range.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What to do about an expiring certificate, for log lines and `certs show`.
pub const RENEW_HINT: &str = "put a renewed certificate (and key) in its place (`pairgate certs init --dir NEW_DIR` makes a new set) \
                              and run `pairgate reload` (or send SIGHUP)";

/// Log one warning per expiring certificate and per unreadable file `cfg`
/// names (the gateway's own: `served`, see [`inventory_serving`]); returns
/// how many there were.
pub fn warn_expiring(cfg: &Config, served: Option<&[CertificateDer<'_>]>) -> usize {
    let mut warned = 0;
    for item in inventory_serving(cfg, served) {
        match item {
            Ok(c) if c.expiring() => {
                warned += 1;
                let when = c.warning().unwrap_or_default();
                tracing::warn!(
                    role = %c.role,
                    path = %c.path.display(),
                    days_left = c.days_left,
                    not_after = %c.not_after(),
                    subject = %c.subject,
                    "certificate {when}: {RENEW_HINT}"
                );
            }
            Ok(_) => {}
            Err(p) => {
                warned += 1;
                tracing::warn!(role = %p.role, path = %p.path.display(), "{p}: {RENEW_HINT}");
            }
        }
    }
    warned
}

/// The gateway's certificate watch: [`warn_expiring`] now and every
/// [`CHECK_EVERY`], on the configuration running then and the chain
/// `served()` says the front serves. Runs until the gateway's tasks are
/// stopped (it is spawned on `Tasks`).
pub async fn watch(cfg: LiveConfig, served: impl Fn() -> Option<Vec<CertificateDer<'static>>> + Send + 'static) {
    loop {
        warn_expiring(&cfg.load(), served().as_deref());
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// What `pairgate certs show` prints for an inventory: each certificate with
/// its role, path, subject, names, fingerprint and expiry, a `WARNING` line for
/// each one expiring within [`WARN_DAYS`], an `ERROR` line for each file that
/// cannot be read, and a summary.
pub fn show(items: &[Result<CertInfo, CertProblem>]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (mut certs, mut expiring, mut problems) = (0, 0, 0);
    for item in items {
        match item {
            Ok(c) => {
                certs += 1;
                let _ = writeln!(out, "{}  {}  (certificate {} in the file)", c.role, c.path.display(), c.index + 1);
                let _ = writeln!(out, "  subject    {}", c.subject);
                let sans = if c.sans.is_empty() { "(none)".to_string() } else { c.sans.join(", ") };
                let _ = writeln!(out, "  SANs       {sans}");
                let _ = writeln!(out, "  SHA-256    {}", c.sha256);
                let _ = writeln!(out, "  not after  {}  ({} days left)", c.not_after(), c.days_left);
                if let Some(w) = c.warning() {
                    expiring += 1;
                    let _ = writeln!(out, "  WARNING: {w}");
                    let _ = writeln!(out, "  renew: {RENEW_HINT}");
                }
            }
            Err(p) => {
                problems += 1;
                let _ = writeln!(out, "{}  {}", p.role, p.path.display());
                let _ = writeln!(out, "  ERROR: {}", p.reason);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{certs} certificates, {expiring} expiring within {WARN_DAYS} days or expired, {problems} files or entries that cannot be read"
    );
    out
}

/// Why `pairgate certs init` made nothing.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("--san {value:?}: {reason}")]
    BadSan { value: String, reason: String },
    #[error("--chassis {value:?}: {reason}")]
    BadChassis { value: String, reason: String },
    #[error("--chassis {0:?} is given twice")]
    DuplicateChassis(String),
    #[error("give the gateway's names with --san NAME (a DNS name or an IP address; one --san per name)")]
    NoSan,
    #[error(
        "{} exists already; nothing was written (certs init never replaces a certificate or key): \
         choose another --dir, or move the old files away first",
        .0.display()
    )]
    Exists(PathBuf),
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// A subject alternative name: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// `text` as a SAN: an IP address (v4 or v6) if it is one, else a DNS name
/// (letters, digits and `-` in labels of 1 to 63, at most 253 in all, a
/// leading `*.` allowed; lower-cased). A name whose last label is all digits
/// is refused: it is a mistyped address (`127.0.0.256`), not a name.
pub fn parse_san(text: &str) -> Result<San, CertsError> {
    let bad = |reason: &str| CertsError::BadSan { value: text.to_string(), reason: reason.to_string() };
    let t = text.trim();
    if let Ok(ip) = t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    let name = t.to_ascii_lowercase();
    let rest = name.strip_prefix("*.").unwrap_or(&name);
    let labels: Vec<&str> = rest.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each part between dots must have 1 to 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad("not an IP address, and a DNS name has only letters, digits, '-' and dots (and may start with '*.')"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a part of a DNS name may not start or end with '-'"));
        }
    }
    if labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(bad("not an IP address, and a DNS name cannot end in digits only"));
    }
    Ok(San::Dns(name))
}

/// One chassis of `certs init`: its name and the names its certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisSpec {
    pub name: String,
    pub sans: Vec<San>,
}

/// `NAME` or `NAME=SAN,SAN…` (`--chassis`); without SANs, `localhost` and
/// `127.0.0.1`. NAME as a `[[chassis]] name` may be (1 to 32 letters, digits,
/// `-`, `_`).
pub fn parse_chassis(text: &str) -> Result<ChassisSpec, CertsError> {
    let bad = |reason: &str| CertsError::BadChassis { value: text.to_string(), reason: reason.to_string() };
    let (name, sans) = match text.split_once('=') {
        Some((name, sans)) => (name.trim(), Some(sans)),
        None => (text.trim(), None),
    };
    let name_ok = (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(bad("the name must be 1 to 32 letters, digits, '-' or '_' (as a [[chassis]] name)"));
    }
    let sans = match sans {
        None => files::local_names().iter().map(|s| parse_san(s)).collect::<Result<Vec<_>, _>>()?,
        Some(list) => {
            let sans = list.split(',').map(parse_san).collect::<Result<Vec<_>, _>>()?;
            if sans.is_empty() {
                return Err(bad("no names after '='"));
            }
            dedup(sans)
        }
    };
    Ok(ChassisSpec { name: name.to_string(), sans })
}

fn dedup(sans: Vec<San>) -> Vec<San> {
    let mut out: Vec<San> = Vec::with_capacity(sans.len());
    for s in sans {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// What `certs init` will make, checked: the gateway's names, the chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPlan {
    pub dir: PathBuf,
    pub gateway_sans: Vec<San>,
    pub chassis: Vec<ChassisSpec>,
}

/// The default chassis of `certs init`: `a` and `b`.
pub const DEFAULT_CHASSIS: [&str; 2] = ["a", "b"];

impl InitPlan {
    /// From the command line's `--dir`, `--san`s and `--chassis` (none:
    /// [`DEFAULT_CHASSIS`]).
    pub fn new(dir: &Path, sans: &[String], chassis: &[String]) -> Result<InitPlan, CertsError> {
        if sans.is_empty() {
            return Err(CertsError::NoSan);
        }
        let gateway_sans = dedup(sans.iter().map(|s| parse_san(s)).collect::<Result<Vec<_>, _>>()?);
        let given: Vec<&str> = if chassis.is_empty() { DEFAULT_CHASSIS.to_vec() } else { chassis.iter().map(String::as_str).collect() };
        let mut specs: Vec<ChassisSpec> = Vec::with_capacity(given.len());
        for c in given {
            let spec = parse_chassis(c)?;
            if specs.iter().any(|s| s.name == spec.name) {
                return Err(CertsError::DuplicateChassis(spec.name));
            }
            specs.push(spec);
        }
        Ok(InitPlan { dir: dir.to_path_buf(), gateway_sans, chassis: specs })
    }

    /// Every file it makes, certificate then key: the CA, the gateway, each chassis.
    pub fn targets(&self) -> Vec<PathBuf> {
        let mut out = vec![self.dir.join("ca.pem"), self.dir.join("ca.key"), self.dir.join("gateway.pem"), self.dir.join("gateway.key")];
        for c in &self.chassis {
            out.push(self.dir.join(format!("chassis-{}.pem", c.name)));
            out.push(self.dir.join(format!("chassis-{}.key", c.name)));
        }
        out
    }
}

/// One file `certs init` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub path: PathBuf,
    /// What it is, e.g. `the gateway's certificate for localhost, 127.0.0.1`.
    pub what: String,
}

/// Make the CA, the gateway's certificate and each chassis' (see the module
/// docs). Refuses before writing anything if any target exists; if a write
/// fails half-way, removes what it wrote. Keys are 0600, the directory (if
/// made) 0700.
pub fn init(plan: &InitPlan) -> Result<Vec<Made>, CertsError> {
    let targets = plan.targets();
    if let Some(there) = targets.iter().find(|p| std::fs::symlink_metadata(p).is_ok()) {
        return Err(CertsError::Exists(there.clone()));
    }
    // Everything generated first: nothing is written if any of it fails.
    let ca = LocalCa::generate("pairgate local CA")?;
    let names = |sans: &[San]| sans.iter().map(San::to_string).collect::<Vec<_>>();
    let mut files: Vec<(PathBuf, String, bool, String)> = Vec::with_capacity(targets.len());
    let mut add = |path: PathBuf, contents: String, secret: bool, what: String| files.push((path, contents, secret, what));
    let d = &plan.dir;
    add(d.join("ca.pem"), ca.cert_pem.clone(), false, "the local CA's certificate (what clients and ca_cert trust)".into());
    add(d.join("ca.key"), ca.key_pem.clone(), true, "the CA's key (0600; keep it where only you can read it)".into());
    let gw = names(&plan.gateway_sans);
    let (cert, key) = ca.issue("pairgate gateway", &gw)?;
    add(d.join("gateway.pem"), cert, false, format!("the gateway's certificate for {}, then the CA's", gw.join(", ")));
    add(d.join("gateway.key"), key, true, "its key (0600)".into());
    for c in &plan.chassis {
        let n = names(&c.sans);
        let (cert, key) = ca.issue(&format!("pairgate chassis {}", c.name), &n)?;
        let what = format!("chassis {}'s certificate for {}, then the CA's", c.name, n.join(", "));
        add(d.join(format!("chassis-{}.pem", c.name)), cert, false, what);
        add(d.join(format!("chassis-{}.key", c.name)), key, true, "its key (0600)".into());
    }
    files::create_parent(&d.join("ca.pem"))?;
    let mut made: Vec<Made> = Vec::with_capacity(files.len());
    for (path, contents, secret, what) in files {
        let written =
            if secret { files::create_secret(&path, contents.as_bytes()) } else { files::create_public(&path, contents.as_bytes()) };
        if let Err(e) = written {
            for m in &made {
                let _ = std::fs::remove_file(&m.path);
            }
            // Someone else's file appeared meanwhile: say so as for one found first.
            if let FilesError::Io { source, .. } = &e {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    return Err(CertsError::Exists(path));
                }
            }
            return Err(e.into());
        }
        made.push(Made { path, what });
    }
    Ok(made)
}

/// What `certs init` prints after making `made` in `plan.dir`: the files, the
/// `gateway.toml` lines that use them (absolute paths: `abs_dir`), and how the
/// chassis and the clients use theirs. Never a key's contents.
pub fn init_report(plan: &InitPlan, abs_dir: &Path, made: &[Made]) -> String {
    use std::fmt::Write;
    let q = |p: PathBuf| toml_string(&p.display().to_string());
    let mut out = String::new();
    let _ = writeln!(out, "pairgate certs init: {}", plan.dir.display());
    for m in made {
        let _ = writeln!(out, "  made  {}  {}", m.path.display(), m.what);
    }
    let _ = writeln!(out, "  every certificate is valid {} days, from an hour ago", files::CERT_VALIDITY_DAYS);
    let _ = writeln!(out);
    let _ = writeln!(out, "In gateway.toml:");
    let _ = writeln!(out);
    let _ = writeln!(out, "[listen]");
    let _ = writeln!(out, "tls_cert = {}", q(abs_dir.join("gateway.pem")));
    let _ = writeln!(out, "tls_key = {}", q(abs_dir.join("gateway.key")));
    for c in &plan.chassis {
        let _ = writeln!(out);
        let _ = writeln!(out, "[[chassis]]");
        let _ = writeln!(out, "name = {}", toml_string(&c.name));
        let _ = writeln!(out, "ca_cert = {}   # the CA: accepts any chassis certificate it signed", q(abs_dir.join("ca.pem")));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Each chassis serves its own certificate and key, e.g. the reference chassis:");
    for c in &plan.chassis {
        let cert = abs_dir.join(format!("chassis-{}.pem", c.name));
        let key = abs_dir.join(format!("chassis-{}.key", c.name));
        let _ = writeln!(
            out,
            "  chassis {}: --tls-cert {} --tls-key {}",
            c.name,
            files::shell_word(&cert.display().to_string()),
            files::shell_word(&key.display().to_string())
        );
    }
    let _ = writeln!(
        out,
        "Browsers, Prometheus (tls_config.ca_file) and other clients of the gateway trust {}.",
        abs_dir.join("ca.pem").display()
    );
    let _ = writeln!(out, "Then `pairgate check-config gateway.toml`, and `pairgate reload` (or SIGHUP) if the gateway runs.");
    out
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der(not_after: time::OffsetDateTime, names: &[&str]) -> Vec<u8> {
        cert(not_after, names).0
    }

    /// A self-signed certificate: its DER and its PEM.
    fn cert(not_after: time::OffsetDateTime, names: &[&str]) -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after;
        let c = params.self_signed(&key).expect("cert");
        (c.der().to_vec(), c.pem())
    }

    #[test]
    fn sans_are_addresses_or_names_and_mistakes_are_refused() {
        assert_eq!(parse_san("127.0.0.1").expect("v4"), San::Ip("127.0.0.1".parse().expect("ip")));
        assert_eq!(parse_san("::1").expect("v6"), San::Ip("::1".parse().expect("ip")));
        assert_eq!(parse_san("[fe80::1]").expect("bracketed v6"), San::Ip("fe80::1".parse().expect("ip")));
        assert_eq!(parse_san("Gateway.Example").expect("name"), San::Dns("gateway.example".into()));
        assert_eq!(parse_san("localhost").expect("name"), San::Dns("localhost".into()));
        assert_eq!(parse_san("*.wall.example").expect("wildcard"), San::Dns("*.wall.example".into()));
        assert_eq!(parse_san("pg-1.site").expect("dash"), San::Dns("pg-1.site".into()));
        for bad in ["", "127.0.0.256", "1.2.3", "a..b", "-a.example", "a-.example", "a b", "a_b.example", "*.", "ä.example"] {
            assert!(matches!(parse_san(bad), Err(CertsError::BadSan { .. })), "{bad:?} was accepted");
        }
        assert!(parse_san(&"a".repeat(64)).is_err(), "a 64-character label");
        assert!(parse_san(&["a"; 130].join(".")).is_err(), "259 characters");
    }

    #[test]
    fn chassis_specs_default_to_this_machine_and_names_are_checked() {
        let a = parse_chassis("a").expect("a");
        assert_eq!(a.name, "a");
        assert_eq!(a.sans, vec![San::Dns("localhost".into()), San::Ip("127.0.0.1".parse().expect("ip"))]);
        let b = parse_chassis("rack-2=10.0.0.2,chassis-b.site,10.0.0.2").expect("b");
        assert_eq!(b.name, "rack-2");
        assert_eq!(b.sans, vec![San::Ip("10.0.0.2".parse().expect("ip")), San::Dns("chassis-b.site".into())], "deduplicated");
        for bad in ["", "=1.2.3.4", "a/b", "a=", "a=bad name", &"x".repeat(33)] {
            assert!(parse_chassis(bad).is_err(), "{bad:?} was accepted");
        }
        let plan = InitPlan::new(Path::new("d"), &["localhost".into()], &[]).expect("plan");
        assert_eq!(plan.chassis.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(matches!(InitPlan::new(Path::new("d"), &[], &[]), Err(CertsError::NoSan)));
        assert!(matches!(
            InitPlan::new(Path::new("d"), &["x".into()], &["a".into(), "a=1.2.3.4".into()]),
            Err(CertsError::DuplicateChassis(_))
        ));
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_case_sha256() {
        let f = fingerprint(b"abc");
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(f, "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD");
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[test]
    fn expiring_means_thirty_days_or_less_left_and_expired_is_negative() {
        let now = now_unix();
        let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(now + s).expect("time");
        let d = |s: i64| describe(&cert_der(at(s), &["localhost"]), now).expect("describe");
        let edge = d(WARN_DAYS * DAY_S);
        assert!(edge.expiring() && !edge.expired(), "{edge:?}");
        assert_eq!(edge.days_left, 30);
        let later = d(WARN_DAYS * DAY_S + 1);
        assert!(!later.expiring(), "{later:?}");
        assert_eq!(later.warning(), None);
        let ten = d(10 * DAY_S - 5);
        assert_eq!(ten.days_left, 9);
        assert_eq!(ten.warning().as_deref().map(|w| w.starts_with("expires in 9 days")), Some(true), "{ten:?}");
        let gone = d(-1);
        assert!(gone.expired() && gone.expiring());
        assert_eq!(gone.days_left, -1);
        assert!(gone.warning().is_some_and(|w| w.starts_with("EXPIRED")));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_chain_is_one_entry_per_certificate_and_a_missing_file_is_a_problem() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let (chain, _key) = ca.issue("leaf", &["localhost".into(), "127.0.0.1".into()]).expect("leaf");
        let path = dir.path().join("chain.pem");
        std::fs::write(&path, chain).expect("write");
        let items = read_file(&Role::Chassis("a".into()), &path, now_unix());
        assert_eq!(items.len(), 2);
        let leaf = items[0].as_ref().expect("leaf");
        assert_eq!(leaf.subject, "CN=leaf");
        assert_eq!(leaf.sans, ["localhost", "127.0.0.1"]);
        assert_eq!(leaf.role.to_string(), "chassis a");
        assert!((363..=365).contains(&leaf.days_left), "{leaf:?}");
        assert_eq!(items[1].as_ref().expect("ca").subject, "CN=test CA");
        assert_eq!(items[1].as_ref().expect("ca").index, 1);

        let missing = read_file(&Role::Gateway, &dir.path().join("nope.pem"), now_unix());
        assert!(matches!(&missing[..], [Err(p)] if p.reason.starts_with("cannot be read")), "{missing:?}");
        std::fs::write(dir.path().join("empty.pem"), "nothing here").expect("write");
        let empty = read_file(&Role::Superior, &dir.path().join("empty.pem"), now_unix());
        assert!(matches!(&empty[..], [Err(p)] if p.reason.contains("no certificate")), "{empty:?}");
        let text = show(&[items[0].clone(), missing[0].clone()]);
        assert!(text.contains("ERROR: cannot be read"), "{text}");
        assert!(text.contains("1 certificates, 0 expiring"), "{text}");
    }

    #[test]
    fn a_running_gateway_shows_the_chain_it_serves_and_the_anchors_files() {
        let dir = tempfile::tempdir().expect("dir");
        let text = include_str!("../../../gateway.toml");
        let cfg = Config::parse(text, &dir.path().join("gateway.toml"), crate::config::FileChecks::Skip).expect("config");
        let roles: Vec<String> = named_files(&cfg).iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(roles, ["gateway", "chassis a", "chassis b"]);
        let served = vec![CertificateDer::from(cert_der(
            time::OffsetDateTime::now_utc() + time::Duration::days(3) - time::Duration::minutes(1),
            &["gw"],
        ))];
        let items = inventory_at(&cfg, Some(&served), now_unix());
        assert_eq!(items.len(), 3, "{items:?}");
        let gw = items[0].as_ref().expect("the served certificate, though its file is missing");
        assert_eq!((gw.role.clone(), gw.sans.clone(), gw.days_left), (Role::Gateway, vec!["gw".to_string()], 2));
        assert!(gw.path.ends_with("certs/gateway.pem"), "{gw:?}");
        assert!(gw.expiring());
        // The chassis' anchors come from their files, which are not there.
        for (item, name) in items[1..].iter().zip(["a", "b"]) {
            let p = item.as_ref().expect_err("no such file");
            assert_eq!(p.role.chassis(), Some(name));
        }
        // Without a served chain (certs show), the gateway's file is read.
        assert!(inventory(&cfg).iter().all(Result::is_err));
    }

    #[test]
    fn the_cached_inventory_is_read_once_per_configuration_in_force_and_counts_days_from_now() {
        let dir = tempfile::tempdir().expect("dir");
        let text = include_str!("../../../gateway.toml");
        let parse =
            || std::sync::Arc::new(Config::parse(text, &dir.path().join("gateway.toml"), crate::config::FileChecks::Skip).expect("config"));
        let cfg = parse();
        let anchors: Vec<PathBuf> = named_files(&cfg).into_iter().filter(|(r, _)| r.chassis().is_some()).map(|(_, p)| p).collect();
        let in_days = |d: i64| time::OffsetDateTime::now_utc() + time::Duration::days(d) + time::Duration::minutes(1);
        let write = |path: &Path, pem: &str| {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, pem).expect("write");
        };
        let (first, first_pem) = cert(in_days(100), &["a"]);
        for p in &anchors {
            write(p, &first_pem);
        }
        let cache = InventoryCache::default();
        let served = |d: i64| Some(vec![CertificateDer::from(cert_der(in_days(d), &["gw"]))]);
        let gw_served = served(3);
        let now = now_unix();
        let a_of =
            |items: &[Result<CertInfo, CertProblem>]| items.iter().flatten().find(|c| c.role.chassis() == Some("a")).cloned().expect("a");
        let before = cache.get_at(&cfg, gw_served.clone(), now);
        assert_eq!(a_of(&before).sha256, fingerprint(&first));
        assert_eq!(a_of(&before).days_left, 100);
        // The file is replaced, not reloaded: the gateway still trusts what it read.
        let (second, second_pem) = cert(in_days(200), &["a2"]);
        write(&anchors[0], &second_pem);
        let later = cache.get_at(&cfg, gw_served.clone(), now + 2 * DAY_S);
        assert_eq!(a_of(&later).sha256, fingerprint(&first), "read again without a reload");
        assert_eq!(a_of(&later).days_left, 98, "the time left is counted at each call");
        let gw_days = |items: &[Result<CertInfo, CertProblem>]| items[0].as_ref().expect("served").days_left;
        assert_eq!(gw_days(&later), 1);
        // A new served chain (a reload of the front's certificate) is seen…
        assert_eq!(gw_days(&cache.get_at(&cfg, served(30), now)), 30);
        // …and so is a reload's new configuration, with the new file.
        let reloaded = cache.get_at(&parse(), gw_served, now);
        assert_eq!(a_of(&reloaded).sha256, fingerprint(&second));
        assert_eq!(a_of(&reloaded).days_left, 200);
    }

    #[test]
    fn init_refuses_before_writing_anything_if_one_file_exists() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path().join("certs");
        let plan = InitPlan::new(&d, &["localhost".into()], &["a".into(), "b".into()]).expect("plan");
        std::fs::create_dir(&d).expect("dir");
        std::fs::write(d.join("chassis-b.key"), "someone's key").expect("write");
        match init(&plan) {
            Err(CertsError::Exists(p)) => assert_eq!(p, d.join("chassis-b.key")),
            other => panic!("expected Exists, got {other:?}"),
        }
        let left: Vec<_> = std::fs::read_dir(&d).expect("read").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, ["chassis-b.key"], "nothing else was written");
        std::fs::remove_file(d.join("chassis-b.key")).expect("rm");
        let made = init(&plan).expect("init");
        assert_eq!(made.len(), 8);
        let report = init_report(&plan, &d, &made);
        assert!(!report.contains("PRIVATE KEY"), "{report}");
        assert!(report.contains(&format!("ca_cert = \"{}\"", d.join("ca.pem").display())), "{report}");
    }
}
