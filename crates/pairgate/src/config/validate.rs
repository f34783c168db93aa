//! From the file's shape ([`RawConfig`]) to a usable [`Config`]: defaults, ranges,
//! addresses, URLs, secrets, route rules.
//!
//! Validation stops at the first problem and points at the value that causes it (or,
//! for something missing, at the header of the table it is missing from). Checks of
//! files and environment variables are only collected here ([`Pending`]) and run by
//! the caller afterwards, when asked to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::chassis_url::ChassisUrl;
use super::error::{ConfigError, Problem};
use super::external::{Expect, Pending, Target};
use super::raw::{
    RawCascade, RawChassis, RawCollection, RawConfig, RawEvent, RawIdMap, RawJournal, RawListen, RawRoute, RawSessions, RawTimeouts, S,
};
use super::route::{is_identifier, ConflictKey, Fill, PathPattern, RouteKind, RouteRule, RouteTable, RuleMethod, Segment};
use super::sections::*;
use super::source_map::SourceMap;
use super::{Config, FileChecks};
use crate::ids::pointer::WildPointer;
use crate::ids::rules::{EventIds, IdAt, RouteIds, Table};

/// Largest `id_block` accepted: far beyond any request of the contract, far below
/// the 2^53 ID space.
const MAX_ID_BLOCK: u64 = 1_000_000;
/// Path prefixes the gateway handles itself, before any route rule.
const RESERVED_PREFIXES: [&str; 2] = ["_pairgate", "_sim"];

type Result<T> = std::result::Result<T, ConfigError>;

struct Validator<'m, 'a> {
    map: &'m SourceMap<'a>,
    base_dir: &'m Path,
    pending: Vec<Pending>,
}

pub(crate) fn validate(raw: RawConfig, map: &SourceMap<'_>, base_dir: &Path, checks: FileChecks) -> Result<(Config, Vec<Pending>)> {
    let mut v = Validator { map, base_dir, pending: Vec::new() };

    if let Some(inline) = &raw.admin_token {
        return Err(v.err(inline.span(), Problem::InlineSecret { key: "admin_token" }));
    }
    let admin_token_file = v.file("admin_token_file", &raw.admin_token_file, Expect::Secret)?;
    let default_block =
        v.number("default_mutate_id_block", raw.default_mutate_id_block.as_ref(), DEFAULT_MUTATE_ID_BLOCK.into(), 0, MAX_ID_BLOCK)?;
    let listen = v.listen(&raw.listen)?;
    let state_dir = v.path("state.dir", &raw.state.get_ref().dir)?;
    v.pending.push(Pending {
        span: raw.state.get_ref().dir.span(),
        target: Target::StateDir { key: "state.dir".to_string(), path: state_dir.clone() },
    });
    let chassis = v.chassis_pair(&raw.chassis, &listen)?;
    let timeouts = match &raw.timeouts {
        Some(t) => v.timeouts(t.get_ref())?,
        None => Timeouts::default(),
    };
    let journal = match &raw.journal {
        Some(j) => v.journal(j.get_ref())?,
        None => Journal::default(),
    };
    let reads = Reads { coalesce: raw.reads.as_ref().and_then(|r| r.get_ref().coalesce.as_ref()).is_none_or(|c| *c.get_ref()) };
    let sessions = v.sessions(&raw.sessions)?;
    let routes = v.routes(&raw.route, to_u32(default_block))?;
    let collections = v.collections(&raw.collection)?;
    let events = v.events(&raw.event)?;
    let cascade = raw.cascade.as_ref().map(|c| v.cascade(c, &listen)).transpose()?;

    let config = Config {
        file: map.file().to_path_buf(),
        listen,
        admin_token_file,
        state: State { dir: state_dir },
        chassis,
        timeouts,
        journal,
        reads,
        sessions,
        routes,
        collections,
        events,
        cascade,
        file_checks: checks,
    };
    Ok((config, v.pending))
}

/// Values reaching this are range-checked against limits below `u32::MAX`.
fn to_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Validator<'_, '_> {
    fn err(&self, span: Range<usize>, problem: Problem) -> ConfigError {
        ConfigError::Invalid { at: self.map.location(span.start), problem }
    }

    fn line(&self, span: Range<usize>) -> usize {
        self.map.location(span.start).line
    }

    /// A non-empty path, resolved against the configuration file's directory.
    fn path(&self, key: &str, value: &S<String>) -> Result<PathBuf> {
        let text = value.get_ref();
        if text.trim().is_empty() {
            return Err(self.err(value.span(), Problem::EmptyPath { key: key.to_string() }));
        }
        let path = Path::new(text);
        Ok(if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) })
    }

    /// A path to a file that must exist with the expected content (checked later).
    fn file(&mut self, key: &str, value: &S<String>, expect: Expect) -> Result<PathBuf> {
        let path = self.path(key, value)?;
        self.pending.push(Pending { span: value.span(), target: Target::File { key: key.to_string(), path: path.clone(), expect } });
        Ok(path)
    }

    fn number(&self, key: &str, value: Option<&S<u64>>, default: u64, min: u64, max: u64) -> Result<u64> {
        let Some(value) = value else {
            return Ok(default);
        };
        let n = *value.get_ref();
        if n < min || n > max {
            return Err(self.err(value.span(), Problem::OutOfRange { key: key.to_string(), value: n, min, max }));
        }
        Ok(n)
    }

    fn millis(&self, key: &str, value: Option<&S<u64>>, default: u64, min: u64, max: u64) -> Result<Duration> {
        self.number(key, value, default, min, max).map(Duration::from_millis)
    }

    fn listen(&mut self, raw: &S<RawListen>) -> Result<Listen> {
        let l = raw.get_ref();
        let addr: SocketAddr = l.addr.get_ref().parse().map_err(|e: std::net::AddrParseError| {
            self.err(l.addr.span(), Problem::BadListenAddr { value: l.addr.get_ref().clone(), reason: e.to_string() })
        })?;
        let insecure = l.insecure_http.as_ref().is_some_and(|b| *b.get_ref());
        let transport = if insecure {
            for (key, value) in [("tls_cert", &l.tls_cert), ("tls_key", &l.tls_key)] {
                if let Some(value) = value {
                    return Err(self.err(value.span(), Problem::TlsWithInsecureHttp { key }));
                }
            }
            Transport::InsecureHttp
        } else {
            let Some(cert) = &l.tls_cert else {
                return Err(self.err(raw.span(), Problem::TlsFileMissing { key: "tls_cert" }));
            };
            let Some(key) = &l.tls_key else {
                return Err(self.err(raw.span(), Problem::TlsFileMissing { key: "tls_key" }));
            };
            Transport::Tls {
                cert: self.file("listen.tls_cert", cert, Expect::Certificate)?,
                key: self.file("listen.tls_key", key, Expect::PrivateKey)?,
            }
        };
        Ok(Listen {
            addr,
            transport,
            max_body_bytes: self.number("listen.max_body_bytes", l.max_body_bytes.as_ref(), DEFAULT_MAX_BODY_BYTES, 1024, 1 << 30)?,
            header_timeout: self.millis(
                "listen.header_timeout_ms",
                l.header_timeout_ms.as_ref(),
                DEFAULT_HEADER_TIMEOUT_MS,
                100,
                300_000,
            )?,
            idle_timeout: self.millis("listen.idle_timeout_ms", l.idle_timeout_ms.as_ref(), DEFAULT_IDLE_TIMEOUT_MS, 1_000, 3_600_000)?,
            body_timeout: self.millis("listen.body_timeout_ms", l.body_timeout_ms.as_ref(), DEFAULT_BODY_TIMEOUT_MS, 100, 3_600_000)?,
            max_connections: to_u32(self.number(
                "listen.max_connections",
                l.max_connections.as_ref(),
                DEFAULT_MAX_CONNECTIONS,
                1,
                1_000_000,
            )?),
            max_requests_in_flight: to_u32(self.number(
                "listen.max_requests_in_flight",
                l.max_requests_in_flight.as_ref(),
                DEFAULT_MAX_REQUESTS_IN_FLIGHT,
                1,
                1_000_000,
            )?),
            metrics_open: l.metrics_open.as_ref().is_some_and(|b| *b.get_ref()),
        })
    }

    fn chassis_pair(&mut self, raw: &S<Vec<S<RawChassis>>>, listen: &Listen) -> Result<[Chassis; 2]> {
        let list = raw.get_ref();
        let [raw_a, raw_b] = list.as_slice() else {
            // Point at the first chassis too many, or at the (only) one there is.
            let span = list.get(2).or(list.first()).map_or(raw.span(), |c| c.span());
            return Err(self.err(span, Problem::ChassisCount { found: list.len() }));
        };
        let a = self.chassis(raw_a, listen)?;
        let b = self.chassis(raw_b, listen)?;
        let (ra, rb) = (raw_a.get_ref(), raw_b.get_ref());
        if a.name == b.name {
            let first_line = self.line(ra.name.span());
            return Err(self.err(rb.name.span(), Problem::DuplicateChassisName { name: b.name, first_line }));
        }
        if a.url.same_endpoint(&b.url) {
            let first_line = self.line(ra.url.span());
            return Err(self.err(rb.url.span(), Problem::DuplicateChassisUrl { url: b.url.to_string(), first_line }));
        }
        if a.username != b.username {
            let first_line = self.line(ra.username.span());
            return Err(self.err(rb.username.span(), Problem::DifferentServiceUsernames { first: a.username, first_line }));
        }
        if a.preferred_primary && b.preferred_primary {
            let span_of = |p: &Option<S<bool>>, fallback: &S<RawChassis>| p.as_ref().map_or(fallback.span(), |p| p.span());
            let first_line = self.line(span_of(&ra.preferred_primary, raw_a));
            return Err(self.err(span_of(&rb.preferred_primary, raw_b), Problem::TwoPreferredPrimaries { first_line }));
        }
        Ok([a, b])
    }

    /// A password from a file or an environment variable, exactly one of them
    /// (`file_key` names the file in messages); `problems`: what to say when
    /// both are given, and when neither is (at `whole`).
    fn secret_source(
        &mut self,
        file_key: &str,
        (file, env): (&Option<S<String>>, &Option<S<String>>),
        whole: Range<usize>,
        [twice, missing]: [Problem; 2],
    ) -> Result<SecretSource> {
        Ok(match (file, env) {
            (Some(_), Some(env)) => return Err(self.err(env.span(), twice)),
            (None, None) => return Err(self.err(whole, missing)),
            (Some(file), None) => SecretSource::File(self.file(file_key, file, Expect::Secret)?),
            (None, Some(env)) => {
                let var = env.get_ref();
                if !is_identifier(var) {
                    return Err(self.err(env.span(), Problem::BadEnvName { value: var.clone() }));
                }
                self.pending.push(Pending { span: env.span(), target: Target::Env { name: var.clone() } });
                SecretSource::Env(var.clone())
            }
        })
    }

    /// The certificate (or CA) a peer reached at `url` must present: required
    /// over https, refused over plain http; `problems`: what to say when it is
    /// missing (at `whole`), and when it would never be used.
    fn trust_anchor(
        &mut self,
        key: &str,
        ca: &Option<S<String>>,
        url: &ChassisUrl,
        whole: Range<usize>,
        [missing, with_http]: [Problem; 2],
    ) -> Result<Option<PathBuf>> {
        match (ca, url.is_https()) {
            (Some(ca), true) => Ok(Some(self.file(key, ca, Expect::Certificate)?)),
            (None, true) => Err(self.err(whole, missing)),
            (Some(ca), false) => Err(self.err(ca.span(), with_http)),
            (None, false) => Ok(None),
        }
    }

    /// `[cascade]` and its `[cascade.superior]`.
    fn cascade(&mut self, entry: &S<RawCascade>, listen: &Listen) -> Result<Cascade> {
        let r = entry.get_ref();
        let serial = r.serial.get_ref();
        let serial_ok = (1..=64).contains(&serial.len()) && serial.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !serial_ok {
            return Err(self.err(r.serial.span(), Problem::BadPairSerial { value: serial.clone() }));
        }
        let url = |key: &'static str, raw: &S<String>| {
            ChassisUrl::parse(raw.get_ref())
                .map_err(|reason| self.err(raw.span(), Problem::BadCascadeUrl { key, value: raw.get_ref().clone(), reason }))
        };
        let public_url = url("public_url", &r.public_url)?;
        let superior = match &r.superior {
            None => None,
            Some(sup) => {
                let s = sup.get_ref();
                let sup_url = url("superior.url", &s.url)?;
                if points_at(&sup_url, listen.addr) {
                    return Err(self.err(s.url.span(), Problem::SuperiorIsGateway { url: sup_url.to_string() }));
                }
                let ca_cert = self.trust_anchor(
                    "cascade.superior.ca_cert",
                    &s.ca_cert,
                    &sup_url,
                    sup.span(),
                    [Problem::SuperiorCaCertMissing, Problem::SuperiorCaCertWithHttp],
                )?;
                if s.username.get_ref().trim().is_empty() {
                    return Err(self.err(s.username.span(), Problem::SuperiorEmptyUsername));
                }
                if let Some(inline) = &s.password {
                    return Err(self.err(inline.span(), Problem::InlineSecret { key: "password" }));
                }
                let password = self.secret_source(
                    "cascade.superior.password_file",
                    (&s.password_file, &s.password_env),
                    sup.span(),
                    [Problem::SuperiorPasswordTwice, Problem::SuperiorPasswordMissing],
                )?;
                Some(Superior { url: sup_url, ca_cert, username: s.username.get_ref().clone(), password, line: self.line(sup.span()) })
            }
        };
        Ok(Cascade { serial: serial.clone(), public_url, superior, line: self.line(entry.span()) })
    }

    fn chassis(&mut self, entry: &S<RawChassis>, listen: &Listen) -> Result<Chassis> {
        let r = entry.get_ref();
        let name = r.name.get_ref().clone();
        let name_ok = (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(self.err(r.name.span(), Problem::BadChassisName { value: name }));
        }
        let url = ChassisUrl::parse(r.url.get_ref())
            .map_err(|reason| self.err(r.url.span(), Problem::BadChassisUrl { value: r.url.get_ref().clone(), reason }))?;
        if points_at(&url, listen.addr) {
            return Err(self.err(r.url.span(), Problem::ChassisIsGateway { url: url.to_string() }));
        }
        let ca_cert = self.trust_anchor(
            &format!("chassis.{name}.ca_cert"),
            &r.ca_cert,
            &url,
            entry.span(),
            [Problem::CaCertMissing { chassis: name.clone() }, Problem::CaCertWithHttp { chassis: name.clone() }],
        )?;
        if r.username.get_ref().trim().is_empty() {
            return Err(self.err(r.username.span(), Problem::EmptyUsername { chassis: name }));
        }
        if let Some(inline) = &r.password {
            return Err(self.err(inline.span(), Problem::InlineSecret { key: "password" }));
        }
        let password = self.secret_source(
            &format!("chassis.{name}.password_file"),
            (&r.password_file, &r.password_env),
            entry.span(),
            [Problem::PasswordSourceTwice { chassis: name.clone() }, Problem::PasswordSourceMissing { chassis: name.clone() }],
        )?;
        let features = match &r.features {
            None => None,
            Some(list) => {
                let mut set = Vec::new();
                for item in list.get_ref() {
                    match crate::chassis::features::Feature::parse(item.get_ref()) {
                        Some(f) => set.push(f),
                        None => return Err(self.err(item.span(), Problem::UnknownFeature { chassis: name, value: item.get_ref().clone() })),
                    }
                }
                Some(set.into_iter().collect())
            }
        };
        Ok(Chassis {
            features,
            name,
            url,
            ca_cert,
            username: r.username.get_ref().clone(),
            password,
            preferred_primary: r.preferred_primary.as_ref().is_some_and(|p| *p.get_ref()),
            line: self.line(entry.span()),
        })
    }

    fn pointer(&self, key: &'static str, raw: &S<String>) -> Result<WildPointer> {
        WildPointer::parse(raw.get_ref())
            .map_err(|reason| self.err(raw.span(), Problem::BadIdPointer { key, value: raw.get_ref().clone(), reason }))
    }

    /// A list of pointers (absent: none).
    /// A rule's `fills`: JSON pointers into the body, each with a name of [`Fill`].
    fn fills(&self, kind: RouteKind, raw: &Option<S<RawIdMap>>) -> Result<Vec<(String, Fill)>> {
        let Some(raw) = raw else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (field, name) in raw.get_ref() {
            let bad = |span: std::ops::Range<usize>, reason: String| {
                self.err(span, Problem::BadFill { field: field.get_ref().clone(), value: name.get_ref().clone(), reason })
            };
            if kind != RouteKind::Mutate {
                return Err(bad(raw.span(), format!("a `{}` rule sends no body the gateway fills", kind.as_str())));
            }
            match check_json_pointer(field.get_ref()) {
                Ok(()) if !field.get_ref().is_empty() => {}
                Ok(()) => return Err(bad(field.span(), "the whole body cannot be filled".into())),
                Err(reason) => return Err(bad(field.span(), format!("not a JSON pointer (RFC 6901): {reason}"))),
            }
            let Some(fill) = Fill::parse(name.get_ref()) else { return Err(bad(name.span(), "no such value".into())) };
            out.push((field.get_ref().clone(), fill));
        }
        Ok(out)
    }

    /// A rule's `conflicts`: keys over its path parameters (absent: it
    /// conflicts with everything).
    fn conflicts(&self, kind: RouteKind, path: &PathPattern, raw: &Option<S<Vec<S<String>>>>) -> Result<Option<Vec<ConflictKey>>> {
        let Some(raw) = raw else { return Ok(None) };
        if kind != RouteKind::Mutate {
            return Err(self.err(raw.span(), Problem::ConflictsForbidden { kind: kind.as_str() }));
        }
        let mut out = Vec::new();
        for key in raw.get_ref() {
            let parsed = ConflictKey::parse(key.get_ref(), path)
                .map_err(|reason| self.err(key.span(), Problem::BadConflictKey { value: key.get_ref().clone(), reason }))?;
            out.push(parsed);
        }
        Ok(Some(out))
    }

    fn pointers(&self, key: &'static str, raw: &Option<S<Vec<S<String>>>>) -> Result<Vec<WildPointer>> {
        raw.as_ref().map(|v| v.get_ref().as_slice()).unwrap_or(&[]).iter().map(|p| self.pointer(key, p)).collect()
    }

    fn names(raw: &Option<S<Vec<S<String>>>>) -> Vec<String> {
        raw.as_ref().map(|v| v.get_ref().iter().map(|s| s.get_ref().clone()).collect()).unwrap_or_default()
    }

    /// A `[[collection]]`'s rebuild recipe and compare exclusions.
    fn rebuild(&self, r: &RawCollection) -> Result<(Rebuild, Vec<WildPointer>)> {
        let path = |p: &Option<S<String>>| -> Result<Option<String>> {
            match p {
                None => Ok(None),
                Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains('?') => Ok(Some(p.get_ref().clone())),
                Some(p) => Err(self.err(p.span(), Problem::BadCollectionPath { value: p.get_ref().clone() })),
            }
        };
        let table = match &r.table {
            None => None,
            Some(t) if crate::config::route::is_identifier(t.get_ref()) => Some(crate::ids::rules::Table::from(t.get_ref().as_str())),
            Some(t) => return Err(self.err(t.span(), Problem::BadIdTable { value: t.get_ref().clone() })),
        };
        let mut derive = Vec::new();
        if let Some(d) = &r.derive {
            for (key, at) in d.get_ref() {
                derive.push((key.clone(), self.pointer("derive", at)?));
            }
        }
        let stage = match &r.stage {
            None => None,
            Some(s) => {
                let s = s.get_ref();
                Some(Stage {
                    items: self.pointer("stage.items", &s.items)?,
                    create: path(&Some(s.create.clone()))?.unwrap_or_default(),
                    fields: s.fields.get_ref().iter().map(|f| f.get_ref().clone()).collect(),
                    clear: path(&Some(s.clear.clone()))?.unwrap_or_default(),
                })
            }
        };
        let rebuild = Rebuild {
            table,
            create: path(&r.create)?,
            fields: Self::names(&r.fields),
            derive,
            delete: path(&r.delete)?,
            fixed: r.fixed.as_ref().map(|p| self.pointer("fixed", p)).transpose()?,
            match_by: r.match_by.as_ref().map(|p| self.pointer("match_by", p)).transpose()?,
            update: path(&r.update)?,
            update_fields: Self::names(&r.update_fields),
            set: path(&r.set)?,
            secret: r.secret.as_ref().map(|s| s.get_ref().clone()),
            stage,
        };
        if rebuild.create.is_some() && rebuild.table.is_none() {
            let span = r.create.as_ref().map(|c| c.span()).unwrap_or_default();
            return Err(self.err(span, Problem::CreateNeedsTable { path: r.path.get_ref().clone() }));
        }
        Ok((rebuild, self.pointers("compare_ignores", &r.compare_ignores)?))
    }

    fn collections(&self, raw: &[S<RawCollection>]) -> Result<Vec<Collection>> {
        let mut out: Vec<Collection> = Vec::new();
        for entry in raw {
            let r = entry.get_ref();
            let path = r.path.get_ref();
            let params: Vec<&str> = path.split('/').filter(|s| s.starts_with('{') && s.ends_with('}')).collect();
            let well_formed = path.starts_with('/') && !path.contains("//") && !path.contains('?') && params.len() <= 1;
            if !well_formed {
                return Err(self.err(r.path.span(), Problem::BadCollectionPath { value: path.clone() }));
            }
            if out.iter().any(|c| &c.path == path) {
                return Err(self.err(r.path.span(), Problem::DuplicateCollection { path: path.clone() }));
            }
            let each = match (params.first(), &r.each) {
                (None, None) => None,
                (Some(param), Some(each)) => {
                    let parent = out.iter().position(|c| c.each.is_none() && &c.path == each.get_ref());
                    let Some(parent) = parent else {
                        return Err(self.err(each.span(), Problem::UnknownParentCollection { value: each.get_ref().clone() }));
                    };
                    Some(Each { param: param.to_string(), parent })
                }
                (Some(_), None) => return Err(self.err(entry.span(), Problem::CollectionNeedsEach { path: path.clone() })),
                (None, Some(each)) => return Err(self.err(each.span(), Problem::EachWithoutParam { path: path.clone() })),
            };
            let (rebuild, compare_ignores) = self.rebuild(r)?;
            out.push(Collection { path: path.clone(), each, rebuild, compare_ignores, line: self.line(entry.span()) });
        }
        Ok(out)
    }

    fn timeouts(&self, t: &RawTimeouts) -> Result<Timeouts> {
        let grace = self.number("timeouts.secondary_grace_ms", t.secondary_grace_ms.as_ref(), DEFAULT_SECONDARY_GRACE_MS, 1, 10_000)?;
        let per_try = self.number("timeouts.per_try_ms", t.per_try_ms.as_ref(), DEFAULT_PER_TRY_MS, 10, 60_000)?;
        let interval = self.number("timeouts.health_interval_ms", t.health_interval_ms.as_ref(), DEFAULT_HEALTH_INTERVAL_MS, 10, 60_000)?;
        let down_after = self.number("timeouts.down_after_ms", t.down_after_ms.as_ref(), DEFAULT_DOWN_AFTER_MS, 10, 600_000)?;
        if grace > per_try {
            let span = t.secondary_grace_ms.as_ref().or(t.per_try_ms.as_ref()).map_or(0..0, |s| s.span());
            return Err(self.err(span, Problem::GraceLongerThanTry { grace, per_try }));
        }
        if down_after < interval {
            let span = t.down_after_ms.as_ref().or(t.health_interval_ms.as_ref()).map_or(0..0, |s| s.span());
            return Err(self.err(span, Problem::DownBeforeProbe { down_after, interval }));
        }
        Ok(Timeouts {
            secondary_grace: Duration::from_millis(grace),
            per_try: Duration::from_millis(per_try),
            health_interval: Duration::from_millis(interval),
            down_after: Duration::from_millis(down_after),
        })
    }

    fn journal(&self, j: &RawJournal) -> Result<Journal> {
        Ok(Journal {
            max_entries: self.number("journal.max_entries", j.max_entries.as_ref(), DEFAULT_JOURNAL_MAX_ENTRIES, 1, 100_000_000)?,
            max_bytes: self.number("journal.max_bytes", j.max_bytes.as_ref(), DEFAULT_JOURNAL_MAX_BYTES, 1 << 20, 1 << 40)?,
            commit_max_batch: to_u32(self.number(
                "journal.commit_max_batch",
                j.commit_max_batch.as_ref(),
                DEFAULT_COMMIT_MAX_BATCH.into(),
                1,
                65_536,
            )?),
            commit_max_delay: Duration::from_micros(self.number(
                "journal.commit_max_delay_us",
                j.commit_max_delay_us.as_ref(),
                DEFAULT_COMMIT_MAX_DELAY_US,
                0,
                100_000,
            )?),
            max_in_flight: to_u32(self.number("journal.max_in_flight", j.max_in_flight.as_ref(), DEFAULT_MAX_IN_FLIGHT.into(), 1, 1024)?),
        })
    }

    fn sessions(&mut self, raw: &S<RawSessions>) -> Result<Sessions> {
        let s = raw.get_ref();
        if let Some(inline) = &s.jwt_secret {
            return Err(self.err(inline.span(), Problem::InlineSecret { key: "jwt_secret" }));
        }
        Ok(Sessions {
            jwt_secret_file: self.file("sessions.jwt_secret_file", &s.jwt_secret_file, Expect::Secret)?,
            idle_timeout: Duration::from_secs(self.number(
                "sessions.idle_timeout_s",
                s.idle_timeout_s.as_ref(),
                DEFAULT_SESSION_IDLE_TIMEOUT_S,
                60,
                604_800,
            )?),
            login_attempts_per_minute: to_u32(self.number(
                "sessions.login_attempts_per_minute",
                s.login_attempts_per_minute.as_ref(),
                DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE.into(),
                1,
                100_000,
            )?),
        })
    }

    fn routes(&self, raw: &[S<RawRoute>], default_block: u32) -> Result<RouteTable> {
        let mut rules = Vec::with_capacity(raw.len());
        let mut seen: HashMap<(RuleMethod, String), usize> = HashMap::new();
        for entry in raw {
            let r = entry.get_ref();
            let method = RuleMethod::parse(r.method.get_ref())
                .ok_or_else(|| self.err(r.method.span(), Problem::BadMethod { value: r.method.get_ref().clone() }))?;
            let path = PathPattern::parse(r.path.get_ref())
                .map_err(|reason| self.err(r.path.span(), Problem::BadPattern { value: r.path.get_ref().clone(), reason }))?;
            if let Some(Segment::Literal(first)) = path.segments().first() {
                if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| *p == first) {
                    return Err(self.err(r.path.span(), Problem::ReservedPath { value: path.to_string(), prefix }));
                }
            }
            let kind = RouteKind::parse(r.kind.get_ref())
                .ok_or_else(|| self.err(r.kind.span(), Problem::BadKind { value: r.kind.get_ref().clone() }))?;
            if matches!(kind, RouteKind::Events | RouteKind::Static) && method != RuleMethod::Get {
                return Err(self.err(r.method.span(), Problem::KindNeedsGet { kind: kind.as_str(), method: method.to_string() }));
            }
            let id_block = match (kind, &r.id_block) {
                (RouteKind::Mutate, Some(block)) => Some(to_u32(self.number("route.id_block", Some(block), 0, 0, MAX_ID_BLOCK)?)),
                (RouteKind::Mutate, None) => {
                    return Err(self.err(entry.span(), Problem::IdBlockMissing { method: method.to_string(), path: path.to_string() }))
                }
                (_, Some(block)) => return Err(self.err(block.span(), Problem::IdBlockForbidden { kind: kind.as_str() })),
                (_, None) => None,
            };
            let ends_sessions_of = match &r.ends_sessions_of {
                None => None,
                Some(p) if kind != RouteKind::Mutate => {
                    return Err(self.err(p.span(), Problem::EndsSessionsForbidden { kind: kind.as_str() }));
                }
                Some(p) => {
                    let name = p.get_ref();
                    if !path.has_param(name) {
                        return Err(self.err(p.span(), Problem::EndsSessionsNoParam { name: name.clone(), path: path.to_string() }));
                    }
                    Some(name.clone())
                }
            };
            let secret_fields = match (kind, &r.secret_fields) {
                (RouteKind::Mutate, Some(fields)) => {
                    let mut out = Vec::with_capacity(fields.get_ref().len());
                    for field in fields.get_ref() {
                        if let Err(reason) = check_json_pointer(field.get_ref()) {
                            return Err(self.err(field.span(), Problem::BadSecretField { value: field.get_ref().clone(), reason }));
                        }
                        out.push(field.get_ref().clone());
                    }
                    out
                }
                (_, Some(fields)) => return Err(self.err(fields.span(), Problem::SecretFieldsForbidden { kind: kind.as_str() })),
                (_, None) => Vec::new(),
            };
            let ids = self.route_ids(r, method, &path, kind, id_block)?;
            let line = self.line(entry.span());
            if let Some(first_line) = seen.insert((method, path.shape()), line) {
                return Err(
                    self.err(r.path.span(), Problem::DuplicateRoute { method: method.to_string(), path: path.to_string(), first_line })
                );
            }
            let compare_ignores = self.pointers("compare_ignores", &r.compare_ignores)?;
            let fills = self.fills(kind, &r.fills)?;
            let conflicts = self.conflicts(kind, &path, &r.conflicts)?;
            rules.push(RouteRule {
                method,
                path,
                kind,
                id_block,
                ends_sessions_of,
                secret_fields,
                ids,
                compare_ignores,
                fills,
                conflicts,
                line,
            });
        }
        if !rules.iter().any(|r| r.kind == RouteKind::Login) {
            // Point at the end of the file: where the missing rule would go.
            let end = usize::MAX;
            return Err(self.err(end..end, Problem::NoLoginRoute));
        }
        Ok(RouteTable::new(rules, default_block))
    }
}

/// Where IDs live: the keys of a route rule and the `[[event]]` sections.
impl Validator<'_, '_> {
    /// `path_ids`, `body_ids`, `answer_ids`, `creates` and `forgets` of one rule.
    fn route_ids(&self, r: &RawRoute, method: RuleMethod, path: &PathPattern, kind: RouteKind, id_block: Option<u32>) -> Result<RouteIds> {
        for (key, value) in [("path_ids", &r.path_ids), ("body_ids", &r.body_ids), ("answer_ids", &r.answer_ids)] {
            if let Some(value) = value {
                let login_answer = key == "answer_ids" && kind == RouteKind::Login;
                if !matches!(kind, RouteKind::Read | RouteKind::Mutate) && !login_answer {
                    return Err(self.err(value.span(), Problem::IdKeyForbidden { key, kind: kind.as_str() }));
                }
            }
        }
        let mutate_only = [("creates", r.creates.as_ref().map(|c| c.span())), ("forgets", r.forgets.as_ref().map(|f| f.span()))];
        for (key, span) in mutate_only {
            if let Some(span) = span {
                if kind != RouteKind::Mutate {
                    return Err(self.err(span, Problem::IdKeyNeedsMutate { key, kind: kind.as_str() }));
                }
            }
        }

        let mut ids = RouteIds::default();
        if let Some(params) = &r.path_ids {
            for (name, table) in in_file_order(params) {
                if !path.has_param(name.get_ref()) {
                    return Err(self.err(name.span(), Problem::IdParamNotInPath { name: name.get_ref().clone(), path: path.to_string() }));
                }
                ids.path.push((name.get_ref().clone(), self.table(table)?));
            }
        }
        if let Some(places) = &r.body_ids {
            ids.body = self.places("body_ids", places)?;
        }
        if let Some(creates) = &r.creates {
            let list = creates.get_ref();
            if list.is_empty() {
                return Err(self.err(creates.span(), Problem::EmptyCreates));
            }
            if id_block.unwrap_or(0) == 0 {
                return Err(self.err(creates.span(), Problem::CreatesWithoutBlock { method: method.to_string(), path: path.to_string() }));
            }
            for entry in list {
                let c = entry.get_ref();
                let at = self.place("creates", &c.at)?;
                if ids.creates.iter().any(|p| p.at == at) {
                    return Err(self.err(c.at.span(), Problem::IdPlaceTwice { at: at.to_string() }));
                }
                ids.creates.push(IdAt { at, table: self.table(&c.table)? });
            }
        }
        if let Some(places) = &r.answer_ids {
            for (at, table) in in_file_order(places) {
                let place = self.place("answer_ids", at)?;
                if ids.creates.iter().any(|p| p.at == place) {
                    return Err(self.err(at.span(), Problem::IdPlaceTwice { at: place.to_string() }));
                }
                ids.answer.push(IdAt { at: place, table: self.table(table)? });
            }
        }
        if let Some(forgets) = &r.forgets {
            let name = forgets.get_ref();
            if ids.param_table(name).is_none() {
                return Err(self.err(forgets.span(), Problem::ForgetsNotAnIdParam { name: name.clone() }));
            }
            ids.forgets = Some(name.clone());
        }
        Ok(ids)
    }

    /// The `[[event]]` sections, in file order.
    fn events(&self, raw: &[S<RawEvent>]) -> Result<Vec<EventIds>> {
        let mut out: Vec<EventIds> = Vec::with_capacity(raw.len());
        for entry in raw {
            let r = entry.get_ref();
            let event_type = r.event_type.get_ref();
            if event_type.trim().is_empty() {
                return Err(self.err(r.event_type.span(), Problem::EmptyEventType));
            }
            if let Some(first) = out.iter().find(|e| &e.event_type == event_type) {
                let problem = Problem::DuplicateEvent { event_type: event_type.clone(), first_line: first.line };
                return Err(self.err(r.event_type.span(), problem));
            }
            if r.ids.get_ref().is_empty() {
                return Err(self.err(r.ids.span(), Problem::EmptyEventIds { event_type: event_type.clone() }));
            }
            let data = self.places("ids", &r.ids)?;
            out.push(EventIds { event_type: event_type.clone(), data, line: self.line(entry.span()) });
        }
        Ok(out)
    }

    /// A map of places to tables (`body_ids`, `answer_ids`, an event's `ids`).
    fn places(&self, key: &'static str, map: &S<RawIdMap>) -> Result<Vec<IdAt>> {
        in_file_order(map).into_iter().map(|(at, table)| Ok(IdAt { at: self.place(key, at)?, table: self.table(table)? })).collect()
    }

    /// A place that holds IDs: a JSON pointer with `*` for every array element,
    /// not the whole document.
    fn place(&self, key: &'static str, text: &S<String>) -> Result<WildPointer> {
        if text.get_ref().is_empty() {
            return Err(self.err(text.span(), Problem::WholeBodyIdPlace { key }));
        }
        WildPointer::parse(text.get_ref())
            .map_err(|reason| self.err(text.span(), Problem::BadIdPointer { key, value: text.get_ref().clone(), reason }))
    }

    fn table(&self, name: &S<String>) -> Result<Table> {
        if !is_identifier(name.get_ref()) {
            return Err(self.err(name.span(), Problem::BadIdTable { value: name.get_ref().clone() }));
        }
        Ok(Table::from(name.get_ref().as_str()))
    }
}

/// The entries of a map of IDs as the file lists them (the map itself is sorted
/// by key), so that the first bad one is the first one reported.
fn in_file_order(map: &S<RawIdMap>) -> Vec<(&S<String>, &S<String>)> {
    let mut entries: Vec<_> = map.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Whether `text` is a JSON pointer (RFC 6901): empty (the whole document), or
/// `/`-separated reference tokens in which `~` only starts `~0` or `~1`.
fn check_json_pointer(text: &str) -> std::result::Result<(), &'static str> {
    if text.is_empty() {
        return Ok(());
    }
    if !text.starts_with('/') {
        return Err("it must be empty (the whole body) or start with '/'");
    }
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("'~' must be followed by 0 (for '~') or 1 (for '/')");
        }
    }
    Ok(())
}

/// Whether a chassis URL obviously reaches the gateway's own listening socket.
fn points_at(url: &ChassisUrl, listen: SocketAddr) -> bool {
    if url.port() != listen.port() {
        return false;
    }
    let listen_ip = listen.ip();
    match url.ip() {
        Some(ip) => ip == listen_ip || (listen_ip.is_unspecified() && (ip.is_loopback() || ip.is_unspecified())),
        None => url.host() == "localhost" && (listen_ip.is_loopback() || listen_ip.is_unspecified()),
    }
}
