//! A minikube-shaped PKI made with openssl: cluster CA, etcd CA, front-proxy CA, serving and client certificates, service-account keys, kubeconfigs.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

/// Where minikube keeps certificates on the node.
pub const CERTS: &str = "/var/lib/minikube/certs";

/// A client certificate (and its kubeconfig) for one identity.
struct Client {
    file: &'static str,
    cn: &'static str,
    org: Option<&'static str>,
}

const CLIENTS: &[Client] = &[
    Client { file: "admin", cn: "kubernetes-admin", org: Some("system:masters") },
    Client { file: "scheduler", cn: "system:kube-scheduler", org: None },
    Client { file: "controller-manager", cn: "system:kube-controller-manager", org: None },
];

/// Writes the whole PKI into `dir` (laid out as `CERTS`), plus kubeconfigs into `kubeconfigs/`:
/// `admin.conf` (for the host, server `https://<ip>:<port>`), `scheduler.conf` and
/// `controller-manager.conf` (for the node).
pub fn generate(sh: &Shell, dir: &Utf8Path, node_ip: Ipv4Addr, port: u16) -> Result<Utf8PathBuf> {
    std::fs::create_dir_all(dir.join("etcd"))?;
    let kubeconfigs = dir.join("kubeconfigs");
    std::fs::create_dir_all(&kubeconfigs)?;
    let _d = sh.push_dir(dir);
    ca(sh, "ca", "minikubeCA")?;
    ca(sh, "etcd/ca", "etcd-ca")?;
    ca(sh, "front-proxy-ca", "front-proxy-ca")?;
    let sans = format!(
        "IP:{node_ip},IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:control-plane.minikube.internal"
    );
    leaf(sh, "apiserver", "ca", "/CN=minikube", "serverAuth", Some(&sans))?;
    leaf(
        sh,
        "apiserver-kubelet-client",
        "ca",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "clientAuth",
        None,
    )?;
    leaf(sh, "front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client", "clientAuth", None)?;
    leaf(sh, "etcd/server", "etcd/ca", "/CN=etcd-server", "serverAuth,clientAuth", Some("IP:127.0.0.1,DNS:localhost"))?;
    leaf(
        sh,
        "apiserver-etcd-client",
        "etcd/ca",
        "/O=system:masters/CN=kube-apiserver-etcd-client",
        "clientAuth",
        None,
    )?;
    cmd!(sh, "openssl genrsa -out sa.key 2048").quiet().ignore_stderr().run()?;
    cmd!(sh, "openssl rsa -in sa.key -pubout -out sa.pub").quiet().ignore_stderr().run()?;
    for c in CLIENTS {
        let subject = match c.org {
            Some(o) => format!("/O={o}/CN={}", c.cn),
            None => format!("/CN={}", c.cn),
        };
        let name = format!("kubeconfigs/{}", c.file);
        leaf(sh, &name, "ca", &subject, "clientAuth", None)?;
        let server = format!("https://{node_ip}:{port}");
        let conf = kubeconfig(dir, &name, &server)?;
        std::fs::write(kubeconfigs.join(format!("{}.conf", c.file)), conf)?;
        std::fs::remove_file(dir.join(format!("{name}.key")))?;
        std::fs::remove_file(dir.join(format!("{name}.crt")))?;
    }
    for f in ["ca.srl", "etcd/ca.srl", "front-proxy-ca.srl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(kubeconfigs)
}

fn ca(sh: &Shell, name: &str, cn: &str) -> Result<()> {
    let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={cn}"));
    cmd!(sh, "openssl req -x509 -new -nodes -newkey rsa:2048 -keyout {key} -out {crt} -days 30 -subj {subj}")
        .quiet()
        .ignore_stderr()
        .run()
        .with_context(|| format!("creating CA {name}"))?;
    Ok(())
}

fn leaf(sh: &Shell, name: &str, ca: &str, subject: &str, usage: &str, sans: Option<&str>) -> Result<()> {
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    let ext = format!("{name}.ext");
    let mut text = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
    );
    if let Some(sans) = sans {
        text.push_str(&format!("subjectAltName={sans}\n"));
    }
    sh.write_file(&ext, text)?;
    cmd!(sh, "openssl req -new -nodes -newkey rsa:2048 -keyout {key} -out {csr} -subj {subject}")
        .quiet()
        .ignore_stderr()
        .run()?;
    cmd!(
        sh,
        "openssl x509 -req -in {csr} -CA {ca_crt} -CAkey {ca_key} -CAcreateserial -out {crt} -days 30 -extfile {ext}"
    )
    .quiet()
    .ignore_stderr()
    .run()
    .with_context(|| format!("signing {name}"))?;
    sh.remove_path(&csr)?;
    sh.remove_path(&ext)?;
    Ok(())
}

fn kubeconfig(dir: &Utf8Path, name: &str, server: &str) -> Result<String> {
    let b64 =
        |p: Utf8PathBuf| -> Result<String> { Ok(base64(&std::fs::read(&p).with_context(|| format!("reading {p}"))?)) };
    let (ca, crt, key) =
        (b64(dir.join("ca.crt"))?, b64(dir.join(format!("{name}.crt")))?, b64(dir.join(format!("{name}.key")))?);
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: minikube\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: minikube\n  context:\n    cluster: minikube\n    user: user\ncurrent-context: minikube\nusers:\n- name: user\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n"
    ))
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
    }
}
