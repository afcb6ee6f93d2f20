//! Which binaries a tree builds with cgo, as kubernetes' `hack/lib/golang.sh` decides: the ones
//! in its `KUBE_STATIC_LIBRARIES` are static (`CGO_ENABLED=0`), the others use cgo (the kubelet,
//! until kubernetes#135870 made it static); `KUBE_STATIC_OVERRIDES` makes a binary static,
//! `KUBE_CGO_OVERRIDES` forces cgo. A cgo binary built for another platform than the Go
//! toolchain's needs that platform's C cross compiler (`CC`; golang.sh's
//! `KUBE_LINUX_<ARCH>_CC`, default `<triple>-gcc`): kdbg checks it before anything runs.

use camino::Utf8Path;

use crate::component::Component;
use crate::platform::Platform;

/// The tree's rule and the overrides in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgo {
    /// `KUBE_STATIC_LIBRARIES` of the tree's golang.sh; `None`: not found (the catalogue decides).
    statics: Option<Vec<String>>,
    /// `KUBE_STATIC_OVERRIDES` (the environment's, plus kdbg's `--static`).
    pub static_overrides: Vec<String>,
    /// `KUBE_CGO_OVERRIDES` (the environment's).
    pub cgo_overrides: Vec<String>,
    /// `--static`: every binary static (through `KUBE_STATIC_OVERRIDES`) unless forced to cgo.
    pub force_static: bool,
}

impl Cgo {
    /// The rule of the tree at `root`, with the environment's overrides.
    pub(crate) fn of_tree(root: &Utf8Path) -> Cgo {
        let golang_sh = std::fs::read_to_string(root.join("hack/lib/golang.sh")).unwrap_or_default();
        let env = |k: &str| std::env::var(k).unwrap_or_default().split_whitespace().map(String::from).collect();
        Cgo {
            statics: static_libraries(&golang_sh),
            static_overrides: env("KUBE_STATIC_OVERRIDES"),
            cgo_overrides: env("KUBE_CGO_OVERRIDES"),
            force_static: false,
        }
    }

    /// The tree's own answer for `c`, without `--static`.
    pub(crate) fn by_tree(&self, c: &Component) -> bool {
        Cgo { force_static: false, ..self.clone() }.enabled(c)
    }

    /// Whether this tree builds `c` with cgo.
    pub fn enabled(&self, c: &Component) -> bool {
        let named = |list: &[String]| list.iter().any(|n| n == c.name);
        if named(&self.cgo_overrides) {
            return true;
        }
        if self.force_static || named(&self.static_overrides) {
            return false;
        }
        match &self.statics {
            Some(statics) => !named(statics),
            None => !c.static_binary,
        }
    }

    /// `CGO_ENABLED` for `c` (a key input).
    pub(crate) fn cgo_enabled(&self, c: &Component) -> &'static str {
        if self.enabled(c) {
            "1"
        } else {
            "0"
        }
    }
}

/// `readonly KUBE_STATIC_LIBRARIES=( a b … )` (possibly over several lines).
fn static_libraries(golang_sh: &str) -> Option<Vec<String>> {
    let start = golang_sh.find("KUBE_STATIC_LIBRARIES=(")? + "KUBE_STATIC_LIBRARIES=(".len();
    let body = &golang_sh[start..start + golang_sh[start..].find(')')?];
    let words = body.lines().map(|l| l.split('#').next().unwrap_or_default()).flat_map(str::split_whitespace);
    Some(words.map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string()).collect())
}

/// The C cross compiler golang.sh uses for `platform`: `KUBE_<OS>_<ARCH>_CC`, else its default,
/// and the Debian package that provides the default.
pub(crate) fn cross_cc(platform: &Platform) -> (String, Option<&'static str>) {
    let var = format!("KUBE_{}_{}_CC", platform.os.to_uppercase(), platform.arch.to_uppercase());
    let (default, package) = match platform.arch.as_str() {
        "arm64" => ("aarch64-linux-gnu-gcc", Some("gcc-aarch64-linux-gnu")),
        "amd64" => ("x86_64-linux-gnu-gcc", Some("gcc-x86-64-linux-gnu")),
        "arm" => ("arm-linux-gnueabihf-gcc", Some("gcc-arm-linux-gnueabihf")),
        "ppc64le" => ("powerpc64le-linux-gnu-gcc", Some("gcc-powerpc64le-linux-gnu")),
        "s390x" => ("s390x-linux-gnu-gcc", Some("gcc-s390x-linux-gnu")),
        _ => ("gcc", None),
    };
    match std::env::var(&var).ok().filter(|v| !v.is_empty()) {
        Some(cc) => (cc, None),
        None => (default.to_string(), package),
    }
}

/// Whether `cc` runs here (an absolute path that exists, or a name on PATH).
pub(crate) fn cc_found(cc: &str) -> bool {
    match cc.contains('/') {
        true => Utf8Path::new(cc).is_file(),
        false => which::which(cc).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trees_static_list_decides_and_overrides_win() {
        let sh = "readonly KUBE_STATIC_LIBRARIES=(\n  kube-apiserver # the API\n  \"kube-proxy\"\n)\n";
        let mut cgo = Cgo { statics: static_libraries(sh), ..Cgo::default() };
        assert_eq!(cgo.statics.as_deref().unwrap(), ["kube-apiserver", "kube-proxy"]);
        let (api, kubelet) = (Component::lookup("apiserver").unwrap(), Component::lookup("kubelet").unwrap());
        assert!(!cgo.enabled(api) && cgo.enabled(kubelet));
        cgo.static_overrides = vec!["kubelet".into()];
        assert!(!cgo.enabled(kubelet));
        cgo.cgo_overrides = vec!["kube-apiserver".into()];
        assert_eq!(cgo.cgo_enabled(api), "1");
        // A tree whose list names the kubelet (kubernetes#135870) builds it static.
        let modern =
            Cgo { statics: static_libraries("KUBE_STATIC_LIBRARIES=(kubelet kube-apiserver)"), ..Cgo::default() };
        assert!(!modern.enabled(kubelet));
        // No list: the catalogue.
        assert!(Cgo::default().enabled(kubelet) && !Cgo::default().enabled(api));
    }

    #[test]
    fn cross_compilers_follow_golang_sh() {
        let (cc, package) = cross_cc(&Platform::new("linux", "arm64"));
        if std::env::var("KUBE_LINUX_ARM64_CC").is_err() {
            assert_eq!((cc.as_str(), package), ("aarch64-linux-gnu-gcc", Some("gcc-aarch64-linux-gnu")));
        }
        assert!(!cc_found("/nonexistent/gcc"));
    }
}
