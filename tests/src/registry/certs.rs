//! A test CA and a server certificate for one IP address, made with the openssl CLI.
//!
//! Both keys are P-256; the CA is `CA:TRUE` with `keyCertSign`, the server certificate a v3 leaf
//! with `subjectAltName=IP:<addr>` (and `DNS:localhost` on loopback) and `serverAuth`, which is
//! what rustls/webpki and curl accept. They are valid for two days.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::sys::{cmd, run};

/// The files [`make`] wrote into a directory.
pub struct Certs {
    /// The CA's certificate (PEM): what a client is told to trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `ca.pem`, `ca.key`, `server.pem` and `server.key` into `dir`, for a server at `addr`.
pub fn make(dir: &Path, addr: IpAddr) -> Result<Certs> {
    let p = |name: &str| dir.join(name);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(cmd("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem"))
        .args(["-days", "2", "-subj", "/CN=kdbg test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]))
    .context("make the test CA (apt-get install openssl)")?;
    run(cmd("openssl")
        .arg("req")
        .args(ec)
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))
        .args(["-subj", &format!("/CN={addr}")]))
    .context("make the registry's certificate request")?;
    let mut san = format!("IP:{addr}");
    if addr.is_loopback() {
        san.push_str(",DNS:localhost");
    }
    let ext = format!(
        "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n"
    );
    std::fs::write(p("server.ext"), ext)?;
    run(cmd("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("server.ext"))
        .arg("-out")
        .arg(p("server.pem")))
    .context("sign the registry's certificate with the test CA")?;
    Ok(Certs { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key") })
}
