//! One canonical spelling of a request path, decided once, before the request
//! is classified — and then the only spelling that is classified, checked
//! against the reserved prefixes and forwarded (invariant 2: the path that is
//! classified is the path that is forwarded).
//!
//! A chassis (or anything between it and us) may resolve `.`/`..` segments,
//! decode `%2e`/`%2f`/`%5c`, treat `\` as `/` or collapse `//`; the gateway's
//! route rules do none of that. Rather than guess how the far side reads such a
//! path, those spellings are refused (400 `bad_path`). What is left is
//! normalised as RFC 3986 §6.2.2 allows without changing meaning: a
//! percent-encoded unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded and
//! any other percent-encoding is written with upper-case hex.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path has an empty segment ('//' or a trailing '/')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment (written as such or percent-encoded)")]
    DotSegment,
    #[error("the path holds a backslash (written as such or percent-encoded)")]
    Backslash,
    #[error("the path holds a percent-encoded '/'")]
    EncodedSlash,
    #[error("the path holds a control character")]
    Control,
    #[error("the path holds a '%' that is not followed by two hex digits")]
    BadPercent,
}

/// The dashboard's address: the one path with a trailing `/` that is taken
/// as it is (the gateway's own, never classified by a route rule nor forwarded).
pub const DASHBOARD: &str = "/_pairgate/";

/// The canonical form of `raw` (a request's path, without the query).
pub fn canonical(raw: &str) -> Result<String, PathError> {
    if raw == DASHBOARD {
        return Ok(DASHBOARD.to_string());
    }
    let body = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if body.is_empty() {
        return Ok("/".to_string());
    }
    let mut out = String::with_capacity(raw.len());
    for segment in body.split('/') {
        if segment.is_empty() {
            return Err(PathError::EmptySegment);
        }
        let segment = segment_canonical(segment)?;
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        out.push('/');
        out.push_str(&segment);
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn segment_canonical(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) else {
                return Err(PathError::BadPercent);
            };
            let decoded = h * 16 + l;
            match decoded {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::Backslash),
                0..=0x1f | 0x7f => return Err(PathError::Control),
                c if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => out.push(c as char),
                c => out.push_str(&format!("%{c:02X}")),
            }
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            _ => {}
        }
        // Multi-byte UTF-8 is copied whole (hyper only hands us valid URIs,
        // which are ASCII; this keeps the function total anyway).
        let len = utf8_len(b);
        out.push_str(segment.get(i..i + len).unwrap_or(""));
        i += len;
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// What a canonical path's first segment reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// `/_pairgate/…`, exactly: the gateway's own endpoints.
    Gateway,
    /// `/_sim` in any case (the simulator's test hooks), or `/_pairgate` in
    /// another case: never forwarded, no such endpoint.
    Refused,
}

/// Whether `canonical` is under a reserved prefix, and which.
pub fn reserved(canonical: &str) -> Option<Reserved> {
    let first = first_segment(canonical);
    if first == "_pairgate" {
        Some(Reserved::Gateway)
    } else if first.eq_ignore_ascii_case("_sim") || first.eq_ignore_ascii_case("_pairgate") {
        Some(Reserved::Refused)
    } else {
        None
    }
}

fn first_segment(canonical: &str) -> &str {
    canonical.trim_start_matches('/').split('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_is_the_one_trailing_slash() {
        assert_eq!(canonical("/_pairgate/"), Ok("/_pairgate/".to_string()));
        assert_eq!(reserved("/_pairgate/"), Some(Reserved::Gateway));
        for refused in ["/_pairgate//", "/api/v1/walls/", "/_Pairgate/", "/_pairgate/status/"] {
            assert_eq!(canonical(refused), Err(PathError::EmptySegment), "{refused}");
        }
    }

    #[test]
    fn plain_paths_stay_as_they_are() {
        for p in ["/", "/api/v1/walls", "/api/v1/walls/3/windows", "/app.js", "/api/v1/sources/a%20b"] {
            assert_eq!(canonical(p).as_deref(), Ok(p));
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(canonical("/api/v1/%77alls").as_deref(), Ok("/api/v1/walls"));
        assert_eq!(canonical("/a/%7e%2D%5f").as_deref(), Ok("/a/~-_"));
        assert_eq!(canonical("/a/b%3fc").as_deref(), Ok("/a/b%3Fc"));
    }

    #[test]
    fn every_spelling_of_a_traversal_is_refused() {
        let cases = [
            ("/api/../_sim/faults", PathError::DotSegment),
            ("/api/v1/./login", PathError::DotSegment),
            ("/api/%2e%2e/_sim", PathError::DotSegment),
            ("/api/%2E%2e/_sim", PathError::DotSegment),
            ("/api/.%2E/_sim", PathError::DotSegment),
            ("/api/%2e/_sim", PathError::DotSegment),
            ("/api/v1/..%2f_sim", PathError::EncodedSlash),
            ("/api/v1/%2F_sim", PathError::EncodedSlash),
            ("/api\\..\\_sim", PathError::Backslash),
            ("/api/%5c_sim", PathError::Backslash),
            ("//_sim/faults", PathError::EmptySegment),
            ("/api/v1/walls/", PathError::EmptySegment),
            ("/api/%00", PathError::Control),
            ("/api/%zz", PathError::BadPercent),
            ("/api/%4", PathError::BadPercent),
            ("api/v1", PathError::NotAbsolute),
        ];
        for (p, want) in cases {
            assert_eq!(canonical(p), Err(want.clone()), "{p}");
        }
    }

    #[test]
    fn reserved_prefixes_in_any_case() {
        for p in ["/_sim", "/_sim/faults", "/_SIM/faults", "/_Sim", "/_PAIRGATE/status"] {
            assert_eq!(reserved(&canonical(p).unwrap()), Some(Reserved::Refused), "{p}");
        }
        assert_eq!(reserved(&canonical("/%5fsim/faults").unwrap()), Some(Reserved::Refused));
        assert_eq!(reserved("/api/_sim"), None);
        assert_eq!(reserved("/_pairgate/status"), Some(Reserved::Gateway));
    }
}
