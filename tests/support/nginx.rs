//! Debian's nginx (`nginx-light`, `/usr/sbin/nginx`) as the benchmarks'
//! baseline: an HTTPS reverse proxy on 127.0.0.1 in front of one chassis,
//! optionally mirroring every request to a second one.
//!
//! The harness writes the whole configuration into a temporary folder
//! (`nginx.conf`, the proxy's own certificate, pid file, error log, temp
//! folders) and runs `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g
//! 'daemon off;'` as its child. On drop it is stopped by its PID: SIGTERM to
//! the master (a fast shutdown, its workers end with it), `kill -9` if it has
//! not exited within 5 s, and then `kill -9` of any worker (by the PIDs read
//! before) still alive.
//!
//! The proxy (see [`config`]):
//! - `worker_processes auto`, `access_log off`;
//! - each chassis an `upstream` with `keepalive 64`, reached with
//!   `proxy_http_version 1.1` and `proxy_set_header Connection ""` (pooled
//!   keep-alive connections), over TLS with `proxy_ssl_session_reuse on`;
//! - the upstream certificate **verified**: `proxy_ssl_verify on`,
//!   `proxy_ssl_trusted_certificate` the chassis' own test certificate (each
//!   test chassis is its own CA, see [`crate::certs`]), checked against the
//!   name `localhost` (a name of the certificate: nginx checks DNS names, not
//!   IP addresses);
//! - mirror mode: `mirror /mirror;` on every request; the internal `/mirror`
//!   location sends the same request (method, URI, body) to the second
//!   chassis with *its own* session token (`Authorization: Bearer <token>`,
//!   the chassis API's only way besides the events socket's `?token=`), since
//!   each chassis gives its own tokens. The client's answer is the first
//!   chassis'; the mirror's answer is dropped (nginx orders nothing and
//!   checks nothing). Log in to each chassis directly, never through a
//!   mirroring proxy: a login mirrored to the second chassis would end the
//!   session whose token the configuration carries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::make_cert;
use crate::process::{free_port, still_running, terminate};

/// Where Debian's nginx is.
pub const NGINX: &str = "/usr/sbin/nginx";

/// How long nginx may take to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// One chassis behind the proxy: its port on 127.0.0.1 and its certificate.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub port: u16,
    pub ca: PathBuf,
}

/// The second chassis of mirror mode and the session token it is sent.
#[derive(Clone, Debug)]
pub struct Mirror {
    pub upstream: Upstream,
    pub token: String,
}

/// A running nginx.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The proxy's certificate, the one its clients trust.
    pub cert: PathBuf,
    pub dir: tempfile::TempDir,
}

/// A token goes into the configuration as a quoted string: only the
/// characters of a bearer token (RFC 6750's b64token) are allowed.
fn check_token(token: &str) -> Result<(), String> {
    let ok = !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("the mirror token has characters a bearer token does not".into())
    }
}

fn quoted(p: &Path) -> Result<String, String> {
    let s = p.display().to_string();
    if s.contains(['"', '\\', '$', ';', '\n']) {
        return Err(format!("{s}: a path nginx would have to unquote"));
    }
    Ok(format!("\"{s}\""))
}

/// The upstream TLS settings of a location proxying to `u`.
fn proxy_settings(u: &Upstream) -> Result<String, String> {
    Ok(format!(
        "      proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_ssl_verify on;\n\
         \x20     proxy_ssl_trusted_certificate {};\n\
         \x20     proxy_ssl_name localhost;\n\
         \x20     proxy_ssl_session_reuse on;\n\
         \x20     proxy_read_timeout 30s;\n",
        quoted(&u.ca)?
    ))
}

/// The whole `nginx.conf` for a proxy in `dir` listening on `port` with
/// `cert`/`key`, in front of `a`, mirroring to `mirror` if given.
pub fn config(dir: &Path, port: u16, cert: &Path, key: &Path, a: &Upstream, mirror: Option<&Mirror>) -> Result<String, String> {
    let d = |name: &str| quoted(&dir.join(name));
    let mut upstreams =
        format!("  upstream chassis_a {{\n    server 127.0.0.1:{};\n    keepalive 64;\n    keepalive_requests 1000000;\n  }}\n", a.port);
    let mut mirror_directive = String::new();
    let mut mirror_location = String::new();
    if let Some(m) = mirror {
        check_token(&m.token)?;
        upstreams.push_str(&format!(
            "  upstream chassis_b {{\n    server 127.0.0.1:{};\n    keepalive 64;\n    keepalive_requests 1000000;\n  }}\n",
            m.upstream.port
        ));
        mirror_directive = "      mirror /mirror;\n      mirror_request_body on;\n".into();
        mirror_location = format!(
            "    location = /mirror {{\n      internal;\n      proxy_pass https://chassis_b$request_uri;\n\
             \x20     proxy_set_header Authorization \"Bearer {}\";\n{}    }}\n",
            m.token,
            proxy_settings(&m.upstream)?
        );
    }
    Ok(format!(
        "# Written by the pairgate bench harness (tests/support/nginx.rs).\n\
         worker_processes auto;\n\
         pid {pid};\n\
         error_log {log} warn;\n\
         events {{\n  worker_connections 4096;\n}}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {body};\n\
         \x20 proxy_temp_path {proxy};\n\
         \x20 fastcgi_temp_path {fastcgi};\n\
         \x20 uwsgi_temp_path {uwsgi};\n\
         \x20 scgi_temp_path {scgi};\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 75s;\n\
         {upstreams}\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port} ssl;\n\
         \x20   ssl_certificate {cert};\n\
         \x20   ssl_certificate_key {key};\n\
         \x20   location / {{\n\
         {mirror_directive}\
         \x20     proxy_pass https://chassis_a;\n\
         {a_settings}\
         \x20   }}\n\
         {mirror_location}\
         \x20 }}\n\
         }}\n",
        pid = d("nginx.pid")?,
        log = d("error.log")?,
        body = d("tmp/body")?,
        proxy = d("tmp/proxy")?,
        fastcgi = d("tmp/fastcgi")?,
        uwsgi = d("tmp/uwsgi")?,
        scgi = d("tmp/scgi")?,
        cert = quoted(cert)?,
        key = quoted(key)?,
        a_settings = proxy_settings(a)?,
    ))
}

impl Nginx {
    /// Start nginx in front of `a` (mirroring to `mirror` if given) on a free
    /// port, and wait (bounded) until it accepts connections.
    pub async fn start(a: Upstream, mirror: Option<Mirror>) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        // Workers run as nobody when the master is root: they must be able
        // to enter the folder (the key is read by the master only).
        std::fs::create_dir_all(d.join("tmp")).map_err(|e| format!("{}: {e}", d.display()))?;
        set_mode(d, 0o755)?;
        let (cert, key) = make_cert(d, "nginx")?;
        let port = free_port()?;
        let text = config(d, port, &cert, &key, &a, mirror.as_ref())?;
        let conf = d.join("nginx.conf");
        std::fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {NGINX}: {e}"))?;
        let mut n = Nginx { child: Some(child), port, base: format!("https://127.0.0.1:{port}"), cert, dir };
        n.wait_listening().await?;
        Ok(n)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The error log so far (for a failure's message).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    async fn wait_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        for _ in 0..2000 {
            if !still_running(&mut self.child) {
                return Err(format!("nginx exited while starting: {}", self.error_log()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > START_LIMIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("nginx did not listen on {} within {START_LIMIT:?}: {}", self.port, self.error_log()))
    }

    /// Stop it by its PID (see the module's text); idempotent.
    pub fn stop(&mut self) {
        let Some(master) = self.pid() else { return };
        let workers = children_of(master);
        terminate(&mut self.child, Duration::from_secs(5));
        for w in workers {
            if is_nginx(w) {
                let _ = Command::new("kill").arg("-KILL").arg(w.to_string()).status();
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", p.display()))
}

/// The PIDs whose parent is `pid` (from /proc; bounded).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .take(100_000)
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_field(*p, 1).and_then(|s| s.parse::<u32>().ok()) == Some(pid))
        .collect()
}

/// Field `i` (0 = state) after the command name of /proc/PID/stat.
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(i).map(str::to_string)
}

/// Whether PID `pid` is (still) an nginx process.
fn is_nginx(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "nginx")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_location_carries_the_second_chassis_own_token() {
        let a = Upstream { port: 1001, ca: "/t/a.pem".into() };
        let b = Upstream { port: 1002, ca: "/t/b.pem".into() };
        let m = Mirror { upstream: b, token: "tok-b.123".into() };
        let c = config(Path::new("/t"), 9000, Path::new("/t/n.pem"), Path::new("/t/n.key"), &a, Some(&m)).unwrap_or_default();
        assert!(c.contains("listen 127.0.0.1:9000 ssl;"), "{c}");
        assert!(c.contains("mirror /mirror;"), "{c}");
        assert!(c.contains("proxy_pass https://chassis_b$request_uri;"), "{c}");
        assert!(c.contains("proxy_set_header Authorization \"Bearer tok-b.123\";"), "{c}");
        assert!(c.contains("proxy_ssl_trusted_certificate \"/t/b.pem\";"), "{c}");
        assert_eq!(c.matches("keepalive 64;").count(), 2, "{c}");
        assert_eq!(c.matches("proxy_set_header Connection \"\";").count(), 2, "{c}");
        let plain = config(Path::new("/t"), 9000, Path::new("/t/n.pem"), Path::new("/t/n.key"), &a, None).unwrap_or_default();
        assert!(!plain.contains("mirror"), "{plain}");
        assert!(plain.contains("worker_processes auto;") && plain.contains("access_log off;"), "{plain}");
    }

    #[test]
    fn a_token_cannot_break_out_of_the_configuration() {
        let a = Upstream { port: 1001, ca: "/t/a.pem".into() };
        let m = Mirror { upstream: a.clone(), token: "x\"; return 200;".into() };
        assert!(config(Path::new("/t"), 9000, Path::new("/t/n.pem"), Path::new("/t/n.key"), &a, Some(&m)).is_err());
    }
}
