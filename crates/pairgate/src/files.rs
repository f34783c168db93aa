//! The files a gateway needs before it can start, made by the gateway itself:
//! self-signed certificates with their keys, and random secrets (passwords,
//! tokens, signing keys) in files only their owner may read.
//!
//! `pairgate demo` regenerates what it owns under its state directory
//! ([`ensure_cert`], [`ensure_secret`]); `pairgate init` makes what a
//! configuration names and never replaces a file it finds
//! ([`create_self_signed`], [`create_secret`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating a certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

/// How long a certificate the gateway makes is valid: one year at most (a scanner
/// flags anything longer; browsers refuse more than 398 days).
pub const CERT_VALIDITY_DAYS: i64 = 365;

/// A new certificate is replaced by `pairgate demo` (and flagged by `pairgate
/// init`) when it expires within this many days.
pub const CERT_RENEW_DAYS: i64 = 30;

/// Random bytes (shown as twice as many hex digits) in a chassis password the
/// gateway makes for its own account.
pub const PASSWORD_BYTES: usize = 16;
/// ... in an admin token.
pub const ADMIN_TOKEN_BYTES: usize = 24;
/// ... in a JWT signing key (at least the session store's minimum of 32).
pub const JWT_SECRET_BYTES: usize = 32;

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// Write a file readable by its owner only (keys, passwords, tokens), replacing
/// what it held.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), FilesError> {
    write_private(path, contents, false)
}

/// Create a file readable by its owner only; an existing file is an error
/// (`AlreadyExists`) and is left as it was.
pub fn create_secret(path: &Path, contents: &[u8]) -> Result<(), FilesError> {
    write_private(path, contents, true)
}

fn write_private(path: &Path, contents: &[u8], create_new: bool) -> Result<(), FilesError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut f = options.open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))
}

/// Create the directory that will hold `path`, and any missing parents, 0700
/// (they hold keys and secrets). A directory that exists is left as it is.
pub fn create_parent(path: &Path) -> Result<(), FilesError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir)),
        _ => Ok(()),
    }
}

/// A self-signed certificate and its private key, both PEM: valid for `names`
/// (DNS names or IP addresses), from an hour ago (clocks differ a little) for
/// [`CERT_VALIDITY_DAYS`].
pub fn self_signed(common_name: &str, names: &[String]) -> Result<(String, String), FilesError> {
    let pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    valid_from_now(&mut params);
    let cert = params.self_signed(&pair)?;
    Ok((cert.pem(), pair.serialize_pem()))
}

/// Every certificate the gateway makes: valid from an hour ago (clocks differ a
/// little) for [`CERT_VALIDITY_DAYS`].
fn valid_from_now(params: &mut rcgen::CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = params.not_before + time::Duration::days(CERT_VALIDITY_DAYS);
}

/// A local certificate authority (`pairgate certs init`): a self-signed CA
/// certificate that may sign server certificates only (path length 0), valid
/// like every certificate the gateway makes, and what it signs with.
pub struct LocalCa {
    /// The CA's certificate, PEM: what clients and the gateway trust.
    pub cert_pem: String,
    /// Its private key, PEM: a secret (written 0600, never printed).
    pub key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl LocalCa {
    /// A new CA with its own new key, named `common_name`.
    pub fn generate(common_name: &str) -> Result<LocalCa, FilesError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::DigitalSignature];
        valid_from_now(&mut params);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(LocalCa { cert_pem: cert.pem(), key_pem, issuer: rcgen::Issuer::new(params, key) })
    }

    /// A server certificate for `names` (DNS names or IP addresses) with a new
    /// key, signed by this CA and valid like it: the chain (the certificate,
    /// then the CA's, PEM) and the key (PEM). A client that trusts the CA, or
    /// this file, accepts it.
    pub fn issue(&self, common_name: &str, names: &[String]) -> Result<(String, String), FilesError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        valid_from_now(&mut params);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((format!("{}{}", cert.pem(), self.cert_pem), key.serialize_pem()))
    }
}

/// Create a file anyone may read (a certificate); an existing file is an error
/// (`AlreadyExists`) and is left as it was.
pub fn create_public(path: &Path, contents: &[u8]) -> Result<(), FilesError> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))
}

/// The names a certificate for a service on this machine is made for.
pub fn local_names() -> Vec<String> {
    vec!["localhost".to_string(), "127.0.0.1".to_string()]
}

/// Make a self-signed certificate at `cert` and its key (0600) at `key`, neither
/// of which may exist yet: nothing is replaced. If writing the key fails, the
/// certificate just written is removed again, so no half pair is left behind.
pub fn create_self_signed(cert: &Path, key: &Path, common_name: &str, names: &[String]) -> Result<(), FilesError> {
    let (cert_pem, key_pem) = self_signed(common_name, names)?;
    create_parent(cert)?;
    create_parent(key)?;
    create_public(cert, cert_pem.as_bytes())?;
    if let Err(e) = create_secret(key, key_pem.as_bytes()) {
        let _ = std::fs::remove_file(cert);
        return Err(e);
    }
    Ok(())
}

/// A self-signed certificate for 127.0.0.1/localhost at `dir/name.pem` with its
/// key at `dir/name.key`, generated once and again when the one on disk is
/// unreadable, valid longer than [`CERT_VALIDITY_DAYS`] (made by an older
/// version), or expires within [`CERT_RENEW_DAYS`] (what `pairgate demo` does
/// with the certificates it owns).
pub fn ensure_cert(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), FilesError> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    if !(key.exists() && cert_still_good(&cert)) {
        let (cert_pem, key_pem) = self_signed(&format!("pairgate demo {name}"), &local_names())?;
        std::fs::write(&cert, cert_pem).map_err(io(&cert))?;
        write_secret(&key, key_pem.as_bytes())?;
    }
    Ok((cert, key))
}

/// How long a certificate is valid for, and how long it has left, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub span_days: i64,
    /// 0 once it has expired.
    pub days_left: i64,
}

impl Validity {
    /// Whether a certificate the gateway made can be kept: valid at most
    /// [`CERT_VALIDITY_DAYS`] (+1 for rounding), and not expiring within
    /// [`CERT_RENEW_DAYS`].
    pub fn still_good(&self) -> bool {
        self.span_days <= CERT_VALIDITY_DAYS + 1 && self.days_left > CERT_RENEW_DAYS
    }
}

/// The validity of the first certificate in the PEM file at `path`; None if it
/// cannot be read or parsed.
pub fn cert_validity(path: &Path) -> Option<Validity> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let v = cert.validity();
    let span_days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
    let days_left = v.time_to_expiration().map_or(0, |d| d.whole_days());
    Some(Validity { span_days, days_left })
}

/// Whether the certificate at `path` can be kept (see [`Validity::still_good`]).
pub fn cert_still_good(path: &Path) -> bool {
    cert_validity(path).is_some_and(|v| v.still_good())
}

/// The secret in `path`, trimmed; if the file is missing or empty, `make()`'s
/// value is written there (0600) and returned.
pub fn ensure_secret(path: &Path, make: impl FnOnce() -> String) -> Result<String, FilesError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let s = make();
            write_secret(path, s.as_bytes())?;
            Ok(s)
        }
    }
}

/// `text` as one word for a POSIX shell: as it is if it needs no quoting, else
/// in single quotes.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Days from not_before to not_after of the PEM certificate at `path`, and how
    /// far not_before is from now (seconds; positive = in the past).
    fn validity(path: &Path) -> (i64, i64) {
        let pem = std::fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let v = cert.validity();
        let now = x509_parser::time::ASN1Time::now().timestamp();
        ((v.not_after.timestamp() - v.not_before.timestamp()) / 86_400, now - v.not_before.timestamp())
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_certificate_an_older_version_made_for_2000_years_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        // rcgen's defaults: 1975 to 4096, as the demo once made them.
        let old = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.path().join("gateway.pem"), old.pem()).unwrap();
        std::fs::write(dir.path().join("gateway.key"), key.serialize_pem()).unwrap();
        assert!(validity(&dir.path().join("gateway.pem")).0 > 366, "the test itself");
        assert!(!cert_still_good(&dir.path().join("gateway.pem")));
        let (cert, _key) = ensure_cert(dir.path(), "gateway").unwrap();
        assert!(validity(&cert).0 <= 366, "the old certificate was kept");
        // A good one is kept as it is.
        let before = std::fs::read(&cert).unwrap();
        ensure_cert(dir.path(), "gateway").unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), before);
    }

    #[test]
    fn demo_certificates_are_valid_a_year_at_most_from_a_little_in_the_past() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _key) = ensure_cert(dir.path(), "gateway").unwrap();
        let (days, since) = validity(&cert);
        assert!(days <= 366, "the certificate is valid for {days} days");
        assert!(days >= 300, "the certificate is valid for {days} days only");
        assert!((0..=2 * 86_400).contains(&since), "not_before is {since} s from now, not a little in the past");
        let v = cert_validity(&cert).unwrap();
        assert!(v.still_good() && v.days_left >= 363, "{v:?}");
    }

    #[test]
    fn create_self_signed_makes_a_private_key_and_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("new/certs/c.pem"), dir.path().join("new/certs/c.key"));
        create_self_signed(&cert, &key, "c", &local_names()).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700, "a directory it made holds a key");
        assert!(std::fs::read_to_string(&cert).unwrap().contains("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&key).unwrap().contains("PRIVATE KEY-----"));
        // The certificate is for 127.0.0.1 and localhost.
        let pem = std::fs::read(&cert).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let parsed = pem.parse_x509().unwrap();
        use x509_parser::extensions::GeneralName;
        let san = parsed.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        assert!(san.contains(&GeneralName::DNSName("localhost")), "{san:?}");
        assert!(san.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])), "{san:?}");

        let before = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
        match create_self_signed(&cert, &key, "c", &local_names()) {
            Err(FilesError::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!((std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()), before);

        // A key in the way: no certificate is left behind without its key.
        let (cert2, key2) = (dir.path().join("d.pem"), dir.path().join("d.key"));
        std::fs::write(&key2, "someone's key").unwrap();
        assert!(create_self_signed(&cert2, &key2, "d", &local_names()).is_err());
        assert!(!cert2.exists());
        assert_eq!(std::fs::read_to_string(&key2).unwrap(), "someone's key");
    }

    #[test]
    fn secrets_are_0600_and_create_secret_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        create_secret(&path, b"first").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(create_secret(&path, b"second").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // ensure_secret keeps a non-empty one and fills an empty one.
        assert_eq!(ensure_secret(&path, || "other".into()).unwrap(), "first");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(ensure_secret(&path, || "made".into()).unwrap(), "made");
        // random_hex: two hex digits per byte, different every time.
        let (a, b) = (random_hex(JWT_SECRET_BYTES), random_hex(JWT_SECRET_BYTES));
        assert_eq!(a.len(), 2 * JWT_SECRET_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
