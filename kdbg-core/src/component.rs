//! The catalogue of Kubernetes components kdbg can build and debug, and how each runs on a node.

use serde::Serialize;

/// How a component is started on a kubeadm-shaped node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Launch {
    /// A static pod: the kubelet runs every file in the manifests directory.
    StaticPod { manifest: &'static str },
    /// A systemd unit (the kubelet itself).
    Systemd { unit: &'static str },
    /// A DaemonSet pod managed through the API server.
    DaemonSet { namespace: &'static str, name: &'static str },
}

/// One buildable, debuggable Kubernetes component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Component {
    /// Binary name, as `make` writes it to `_output/bin/`.
    pub name: &'static str,
    /// Short names accepted on the command line.
    pub aliases: &'static [&'static str],
    /// The `WHAT` path for `make all`.
    pub what: &'static str,
    pub launch: Launch,
    /// The Delve port kdbg uses for this component unless told otherwise.
    pub default_port: u16,
    /// Kubernetes links this one statically (`CGO_ENABLED=0`), see
    /// `kube::golang::is_statically_linked_library` in `hack/lib/golang.sh`.
    pub static_binary: bool,
    /// Takes `--leader-elect`, so pausing it in a debugger can lose the lease.
    pub leader_elect: bool,
}

pub(crate) const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

pub static COMPONENTS: &[Component] = &[
    Component {
        name: "kube-apiserver",
        aliases: &["apiserver"],
        what: "cmd/kube-apiserver",
        launch: Launch::StaticPod { manifest: "kube-apiserver.yaml" },
        default_port: 2345,
        static_binary: true,
        leader_elect: false,
    },
    Component {
        name: "kube-controller-manager",
        aliases: &["controller-manager", "cm"],
        what: "cmd/kube-controller-manager",
        launch: Launch::StaticPod { manifest: "kube-controller-manager.yaml" },
        default_port: 2346,
        static_binary: true,
        leader_elect: true,
    },
    Component {
        name: "kube-scheduler",
        aliases: &["scheduler"],
        what: "cmd/kube-scheduler",
        launch: Launch::StaticPod { manifest: "kube-scheduler.yaml" },
        default_port: 2347,
        static_binary: true,
        leader_elect: true,
    },
    Component {
        name: "kubelet",
        aliases: &[],
        what: "cmd/kubelet",
        launch: Launch::Systemd { unit: "kubelet.service" },
        default_port: 2348,
        static_binary: false,
        leader_elect: false,
    },
    Component {
        name: "kube-proxy",
        aliases: &["proxy"],
        what: "cmd/kube-proxy",
        launch: Launch::DaemonSet { namespace: "kube-system", name: "kube-proxy" },
        default_port: 2349,
        static_binary: true,
        leader_elect: false,
    },
];

#[derive(Debug, thiserror::Error)]
#[error("unknown component `{name}`; known components: {}", known_list())]
pub struct UnknownComponent {
    pub name: String,
}

impl UnknownComponent {
    /// Naming no component is bad usage.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::BadUsage
    }
}

fn known_list() -> String {
    COMPONENTS
        .iter()
        .map(
            |c| {
                if c.aliases.is_empty() {
                    c.name.to_string()
                } else {
                    format!("{} ({})", c.name, c.aliases.join(", "))
                }
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

impl Component {
    /// Finds a component by its name or one of its aliases.
    pub fn lookup(name: &str) -> Result<&'static Component, UnknownComponent> {
        COMPONENTS
            .iter()
            .find(|c| c.name == name || c.aliases.contains(&name))
            .ok_or_else(|| UnknownComponent { name: name.to_string() })
    }

    /// Resolves command-line names to components, in catalogue order, without duplicates.
    pub fn resolve<S: AsRef<str>>(names: &[S]) -> Result<Vec<&'static Component>, UnknownComponent> {
        let mut picked = Vec::new();
        for name in names {
            let c = Component::lookup(name.as_ref())?;
            if !picked.contains(&c) {
                picked.push(c);
            }
        }
        picked.sort_by_key(|c| COMPONENTS.iter().position(|k| k == *c));
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_in_catalogue_order_without_duplicates() {
        let got = Component::resolve(&["scheduler", "apiserver", "kube-apiserver", "cm"]).unwrap();
        let names: Vec<_> = got.iter().map(|c| c.name).collect();
        assert_eq!(names, ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]);
    }

    #[test]
    fn unknown_component_lists_the_known_ones() {
        let err = Component::lookup("etcd").unwrap_err().to_string();
        assert!(err.contains("unknown component `etcd`"), "{err}");
        assert!(err.contains("kube-apiserver (apiserver)"), "{err}");
        assert!(err.contains("kube-controller-manager (controller-manager, cm)"), "{err}");
    }

    #[test]
    fn ports_are_distinct() {
        let mut ports: Vec<_> = COMPONENTS.iter().map(|c| c.default_port).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), COMPONENTS.len());
    }
}
