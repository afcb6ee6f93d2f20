//! A build platform, `os/arch` as Go and kubernetes' `KUBE_BUILD_PLATFORMS` spell it
//! (`linux/arm64`). Nodes are Linux; the workstation is Linux or macOS.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    pub fn new(os: &str, arch: &str) -> Platform {
        Platform { os: os.to_string(), arch: arch.to_string() }
    }

    /// The platform to build for without a node: the Go toolchain's own, except that a
    /// non-Linux workstation (macOS) builds for `linux/<its arch>`, since nodes are Linux.
    pub fn default_for(host_os: &str, host_arch: &str) -> Platform {
        match host_os {
            "linux" => Platform::new(host_os, host_arch),
            _ => Platform::new("linux", host_arch),
        }
    }

    /// `linux-arm64`: for file and directory names.
    pub fn dashed(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }

    /// `linux_arm64`: where `GOOS=linux GOARCH=arm64 go install` puts a cross build under `bin/`.
    pub fn go_install_dir(&self) -> String {
        format!("{}_{}", self.os, self.arch)
    }

    /// `KDBG_DLV_LINUX_ARM64`: the environment variable naming the Delve for this platform.
    pub fn dlv_env(&self) -> String {
        format!("KDBG_DLV_{}_{}", self.os.to_uppercase(), self.arch.to_uppercase())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Platform, String> {
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        match text.split_once('/') {
            Some((os, arch)) if word(os) && word(arch) => Ok(Platform::new(os, arch)),
            _ => Err(format!("`{text}` is not a platform: expected OS/ARCH, e.g. linux/arm64")),
        }
    }
}

impl TryFrom<String> for Platform {
    type Error = String;
    fn try_from(s: String) -> Result<Platform, String> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_print_and_default_to_linux() {
        let p: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(
            (p.to_string(), p.dashed(), p.go_install_dir()),
            ("linux/arm64".into(), "linux-arm64".into(), "linux_arm64".into())
        );
        assert_eq!(p.dlv_env(), "KDBG_DLV_LINUX_ARM64");
        assert!("linux".parse::<Platform>().is_err() && "linux/".parse::<Platform>().is_err());
        assert_eq!(Platform::default_for("darwin", "arm64"), Platform::new("linux", "arm64"));
        assert_eq!(Platform::default_for("linux", "amd64"), Platform::new("linux", "amd64"));
    }
}
