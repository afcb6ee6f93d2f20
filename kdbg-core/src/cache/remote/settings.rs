//! Which remote cache to use: `--cache oci://…` (or `KDBG_CACHE`), else the user's configuration
//! file, unless `--no-cache`; and the transport options that go with it.

use std::fmt;
use std::str::FromStr;

use camino::Utf8PathBuf;
use serde::Deserialize;

/// `oci://HOST[:PORT]/REPO[/MORE]`: a registry and the repository prefix kdbg's artifacts live under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUrl {
    /// `HOST[:PORT]`, as Docker's credential store names it.
    pub registry: String,
    /// `REPO[/MORE]`, lowercase, without slashes at either end.
    pub prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{url:?} is not a cache URL: {why}\n  expected oci://HOST[:PORT]/REPO[/PREFIX], e.g. oci://localhost:5001/kdbg or oci://ghcr.io/ORG/kdbg")]
    BadUrl { url: String, why: String },
    #[error("cannot read kdbg's configuration {path}: {detail}\n  fix: correct it (see README, \"Team cache\"), or point KDBG_CONFIG at another file")]
    BadConfig { path: Utf8PathBuf, detail: String },
}

impl FromStr for CacheUrl {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<CacheUrl, SettingsError> {
        let bad = |why: &str| SettingsError::BadUrl { url: s.to_string(), why: why.to_string() };
        let rest = s.strip_prefix("oci://").ok_or_else(|| bad("it does not start with oci://"))?;
        let (registry, prefix) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        let prefix = prefix.trim_end_matches('/');
        if registry.is_empty() || registry.contains(['@', '?', '#']) {
            return Err(bad("no registry host"));
        }
        if prefix.is_empty() {
            return Err(bad("it names no repository"));
        }
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !prefix.split('/').all(part_ok) {
            return Err(bad("a repository name is lowercase letters, digits and . _ - between slashes"));
        }
        Ok(CacheUrl { registry: registry.to_string(), prefix: prefix.to_string() })
    }
}

impl fmt::Display for CacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.prefix)
    }
}

impl CacheUrl {
    /// The registry's host, without port or brackets.
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(v6) = r.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        r.rsplit_once(':').map_or(r, |(h, _)| h)
    }

    /// `localhost`, 127.0.0.0/8 or ::1: plain HTTP is allowed there without `--insecure` (kind's
    /// local registry is `localhost:5001`, plain HTTP).
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The repository of a component's artifacts: `<prefix>/<component>`.
    pub fn repository(&self, component: &str) -> String {
        format!("{}/{component}", self.prefix)
    }

    /// `oci://HOST/PREFIX/COMPONENT:TAG`, as messages name an artifact.
    pub fn artifact(&self, component: &str, tag: &str) -> String {
        format!("oci://{}/{}:{tag}", self.registry, self.repository(component))
    }
}

/// The remote cache a command uses, and how it talks to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    pub url: CacheUrl,
    /// Push what this run builds locally (`--push`, or `push = true` in the configuration).
    pub push: bool,
    /// `--insecure`: plain HTTP (or unverified TLS) to a registry that is not on loopback.
    pub insecure: bool,
    /// `--cache-ca`: a CA (PEM) to trust besides the system's.
    pub ca_file: Option<Utf8PathBuf>,
}

/// The command line's say (clap fills `url` from `--cache` or `KDBG_CACHE`).
#[derive(Debug, Clone, Default)]
pub struct CacheFlags {
    pub url: Option<String>,
    pub no_cache: bool,
    pub push: bool,
    pub insecure: bool,
    pub ca_file: Option<Utf8PathBuf>,
}

/// The configuration file's `[cache]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    cache: Option<CacheTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CacheTable {
    url: Option<String>,
    #[serde(default)]
    push: bool,
    #[serde(default)]
    insecure: bool,
    ca_file: Option<Utf8PathBuf>,
}

/// Where kdbg's configuration file is: `$KDBG_CONFIG`, else `$XDG_CONFIG_HOME/kdbg/config.toml`,
/// else `~/.config/kdbg/config.toml`; on macOS `~/Library/Application Support/kdbg/config.toml`
/// when that one exists.
pub fn config_path() -> Option<Utf8PathBuf> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
    if let Some(p) = var("KDBG_CONFIG") {
        return Some(p);
    }
    if let Some(x) = var("XDG_CONFIG_HOME") {
        return Some(x.join("kdbg/config.toml"));
    }
    let home = crate::host::home_dir()?;
    let mac = home.join("Library/Application Support/kdbg/config.toml");
    if cfg!(target_os = "macos") && mac.is_file() {
        return Some(mac);
    }
    Some(home.join(".config/kdbg/config.toml"))
}

/// Where the user's own tours are: `tours/` beside the configuration file ([`config_path`]:
/// `$KDBG_CONFIG`'s directory, `$XDG_CONFIG_HOME/kdbg/tours`, `~/.config/kdbg/tours`); on macOS
/// `~/Library/Application Support/kdbg/tours` when that directory exists and neither variable is set.
pub fn tours_dir() -> Option<Utf8PathBuf> {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    if cfg!(target_os = "macos") && !set("KDBG_CONFIG") && !set("XDG_CONFIG_HOME") {
        let mac = crate::host::home_dir()?.join("Library/Application Support/kdbg/tours");
        if mac.is_dir() {
            return Some(mac);
        }
    }
    Some(config_path()?.parent()?.join("tours"))
}

/// The remote cache of this run: `--no-cache` → none; `--cache`/`KDBG_CACHE` → that URL with the
/// flags' options (the file's push setting still applies); else the configuration file's.
pub fn resolve(flags: &CacheFlags) -> Result<Option<RemoteSettings>, SettingsError> {
    if flags.no_cache {
        return Ok(None);
    }
    let file = read_config()?;
    let table = file.and_then(|f| f.cache).unwrap_or_default();
    let Some(url) = flags.url.clone().filter(|u| !u.is_empty()).or(table.url) else {
        return Ok(None);
    };
    Ok(Some(RemoteSettings {
        url: url.parse()?,
        push: flags.push || table.push,
        insecure: flags.insecure || table.insecure,
        ca_file: flags.ca_file.clone().or(table.ca_file),
    }))
}

fn read_config() -> Result<Option<ConfigFile>, SettingsError> {
    let Some(path) = config_path() else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SettingsError::BadConfig { path, detail: e.to_string() }),
    };
    let parsed = toml::from_str(&text).map_err(|e| SettingsError::BadConfig { path, detail: e.to_string() })?;
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print() {
        let u: CacheUrl = "oci://localhost:5001/kdbg".parse().unwrap();
        assert_eq!((u.registry.as_str(), u.prefix.as_str(), u.host()), ("localhost:5001", "kdbg", "localhost"));
        assert!(u.is_loopback());
        assert_eq!(u.artifact("kube-apiserver", "t"), "oci://localhost:5001/kdbg/kube-apiserver:t");
        let g: CacheUrl = "oci://ghcr.io/org/kdbg/".parse().unwrap();
        assert_eq!((g.prefix.as_str(), g.to_string().as_str()), ("org/kdbg", "oci://ghcr.io/org/kdbg"));
        assert!(!g.is_loopback());
        let v6: CacheUrl = "oci://[::1]:5000/k".parse().unwrap();
        assert!(v6.is_loopback());
        assert!("oci://127.0.0.2:80/k".parse::<CacheUrl>().unwrap().is_loopback());
        for bad in ["https://ghcr.io/x", "oci://ghcr.io", "oci://ghcr.io/", "oci:///x", "oci://h/Upper", "oci://h/a//b"]
        {
            assert!(bad.parse::<CacheUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_config_table_reads_kebab_case() {
        let f: ConfigFile =
            toml::from_str("[cache]\nurl = \"oci://h/k\"\npush = true\nca-file = \"/ca.pem\"\n").unwrap();
        let t = f.cache.unwrap();
        assert_eq!((t.url.as_deref(), t.push, t.ca_file.as_deref()), (Some("oci://h/k"), true, Some("/ca.pem".into())));
        assert!(toml::from_str::<ConfigFile>("[cache]\nurl = 1\n").is_err());
        assert!(toml::from_str::<ConfigFile>("[cache]\nurll = \"x\"\n").is_err());
    }
}
