//! Self-signed certificates for 127.0.0.1, one per process, so that each
//! chassis is trusted by the gateway through its own anchor (docs/design.md, TLS).
//! The fault proxies forward TCP untouched, so a certificate made for
//! 127.0.0.1 still matches when the gateway reaches a chassis through one.

use std::path::{Path, PathBuf};

/// Write `dir/name.pem` and `dir/name.key`; returns both paths.
pub fn make_cert(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key for {name}: {e}"))?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(|e| format!("certificate parameters for {name}: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("certificate for {name}: {e}"))?;
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).map_err(|e| format!("writing {}: {e}", c.display()))?;
    std::fs::write(&k, key.serialize_pem()).map_err(|e| format!("writing {}: {e}", k.display()))?;
    Ok((c, k))
}
