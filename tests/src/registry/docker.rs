//! Registry credentials the way Docker keeps them: `~/.docker/config.json` as `docker login`
//! writes it (`auths["HOST:PORT"].auth` = base64 `user:password`), or a `credsStore` naming a
//! `docker-credential-NAME` helper that answers `get` (the registry's `HOST:PORT` on stdin) with
//! `{"ServerURL":…,"Username":…,"Secret":…}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

/// Writes `HOME/.docker/config.json` with `auths[host_port].auth` as `docker login host_port` does.
pub fn login(home: &Path, host_port: &str, user: &str, password: &str) -> Result<PathBuf> {
    let auth = base64(format!("{user}:{password}").as_bytes());
    write_config(home, &json!({ "auths": { host_port: { "auth": auth } } }))
}

/// A stub credential helper `bin/docker-credential-NAME` that answers `get` for `host_port` with
/// `user`/`password` (anything else: "credentials not found", exit 1, as Docker's helpers do) and
/// appends each server it was asked about to [`helper_calls`]. `bin` must be on kdbg's PATH.
pub struct Helper<'a> {
    pub bin: &'a Path,
    pub name: &'a str,
    pub host_port: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

impl Helper<'_> {
    /// Writes the helper and `HOME/.docker/config.json` with `"credsStore": NAME`.
    pub fn creds_store(&self, home: &Path) -> Result<PathBuf> {
        self.write()?;
        write_config(home, &json!({ "credsStore": self.name }))
    }

    /// Writes the helper and `DIR/config.json` (`DIR` is what `DOCKER_CONFIG` names) with
    /// `"credHelpers": {HOST:PORT: NAME}`: the helper for this registry only.
    pub fn cred_helpers_in(&self, dir: &Path) -> Result<PathBuf> {
        self.write()?;
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("config.json");
        std::fs::write(&path, json!({ "credHelpers": { self.host_port: self.name } }).to_string())?;
        Ok(path)
    }

    fn write(&self) -> Result<()> {
        let calls = helper_calls(self.bin, self.name);
        let answer = json!({ "ServerURL": self.host_port, "Username": self.user, "Secret": self.password });
        let script = format!(
            "#!/bin/sh\n# A stub Docker credential helper for kdbg's tests.\n[ \"$1\" = get ] || exit 1\n\
             read -r server\necho \"$server\" >> '{calls}'\ncase \"$server\" in\n  \
             '{hp}'|'https://{hp}'|'http://{hp}') echo '{answer}' ;;\n  \
             *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
            calls = calls.display(),
            hp = self.host_port,
        );
        let helper = self.bin.join(format!("docker-credential-{}", self.name));
        std::fs::write(&helper, script).with_context(|| format!("write {}", helper.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }
}

/// The file where the helper [`creds_store`] wrote logs the servers it was asked about.
pub fn helper_calls(bin: &Path, name: &str) -> PathBuf {
    bin.join(format!("docker-credential-{name}.calls"))
}

fn write_config(home: &Path, config: &serde_json::Value) -> Result<PathBuf> {
    let dir = home.join(".docker");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(config)?)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Standard base64 with padding (what Docker's `auth` field holds).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
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
    fn base64_matches_docker_login() {
        assert_eq!(super::base64(b"ci:s3cret"), "Y2k6czNjcmV0");
        assert_eq!(super::base64(b"a"), "YQ==");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b""), "");
    }
}
