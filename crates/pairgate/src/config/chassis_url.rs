//! A chassis' base address.
//!
//! Deliberately a strict subset of URLs: `http(s)://HOST:PORT` with an optional
//! trailing `/` and nothing else. The gateway appends the contract's paths
//! (`/api/v1/…`) itself, so a path would be a mistake; a user or password in the
//! URL would be a secret in the repository; a missing port would silently mean 443
//! or 80, which is rarely what a chassis on a lab network listens on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How the gateway talks to a chassis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// `scheme://host:port` of one chassis, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChassisUrl {
    scheme: Scheme,
    /// Lower-cased DNS name or IP literal (IPv6 without brackets).
    host: String,
    port: u16,
}

impl ChassisUrl {
    /// Parses a chassis base address; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ChassisUrl, String> {
        let lower = text.to_ascii_lowercase();
        let (scheme, rest_start) = if lower.starts_with("https://") {
            (Scheme::Https, "https://".len())
        } else if lower.starts_with("http://") {
            (Scheme::Http, "http://".len())
        } else {
            return Err("it must start with https:// or http://".to_string());
        };
        let rest = &text[rest_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if !tail.is_empty() && tail != "/" {
            return Err(format!("it has {tail:?} after the port; only the base address is written (the gateway adds /api/v1/…)"));
        }
        if authority.contains('@') {
            return Err("it contains a user name or password; credentials go in `username` and `password_file`".to_string());
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((ip, after)) = bracketed.split_once(']') else {
                return Err("an IPv6 address must be closed with ']'".to_string());
            };
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err(format!("[{ip}] is not an IPv6 address"));
            }
            let Some(port) = after.strip_prefix(':') else {
                return Err("it has no port: write [ADDRESS]:PORT".to_string());
            };
            (ip.to_ascii_lowercase(), port)
        } else {
            let Some((host, port)) = authority.rsplit_once(':') else {
                return Err("it has no port: write HOST:PORT, e.g. https://10.0.0.11:443".to_string());
            };
            check_host(host)?;
            (host.to_ascii_lowercase(), port)
        };
        let port = parse_port(port)?;
        Ok(ChassisUrl { scheme, host, port })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, when it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Whether two URLs reach the same box (same host and port, whatever the scheme).
    pub fn same_endpoint(&self, other: &ChassisUrl) -> bool {
        self.host == other.host && self.port == other.port
    }
}

/// `https://host:port`, no trailing slash: append `/api/v1/…` to it.
impl fmt::Display for ChassisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("it has no host".to_string());
    }
    if host.contains(':') {
        return Err("an IPv6 address must be written in brackets: [ADDRESS]:PORT".to_string());
    }
    if let Some(bad) = host.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-')) {
        return Err(format!("the host contains {bad:?}; a host is a DNS name or an IP address"));
    }
    if host.split('.').any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-')) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    let looks_numeric = host.chars().all(|c| c.is_ascii_digit() || c == '.');
    if looks_numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("{host:?} is not an IPv4 address"));
    }
    Ok(())
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Err("the port is empty".to_string());
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("the port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("the port {port} is not in 1..65535")),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_base_addresses() {
        let u = ChassisUrl::parse("https://127.0.0.1:8444").map_err(|e| e.to_string());
        assert_eq!(u.as_ref().map(|u| u.to_string()), Ok("https://127.0.0.1:8444".to_string()));
        let u = ChassisUrl::parse("HTTP://Chassis-A.lab:80/");
        assert_eq!(u.map(|u| (u.scheme(), u.to_string())), Ok((Scheme::Http, "http://chassis-a.lab:80".to_string())));
        let u = ChassisUrl::parse("https://[::1]:9000");
        assert_eq!(u.map(|u| u.to_string()), Ok("https://[::1]:9000".to_string()));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "ftp://a:1",
            "127.0.0.1:8444",
            "https://127.0.0.1",
            "https://127.0.0.1:0",
            "https://127.0.0.1:70000",
            "https://127.0.0.1:84x4",
            "https://:8444",
            "https://admin:pw@host:1",
            "https://host:1/api/v1",
            "https://host:1?x=1",
            "https://::1:9000",
            "https://[::g]:9000",
            "https://[::1]",
            "https://300.1.1.1:1",
            "https://a..b:1",
            "https://a_b:1",
        ] {
            assert!(ChassisUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
