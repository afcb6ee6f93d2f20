//! The kubeadm v1.20-shaped control plane on the test node: static-pod manifests for etcd, kube-apiserver, kube-scheduler and kube-controller-manager, as minikube lays them out.

use std::net::Ipv4Addr;

use super::pki::CERTS;

/// Where minikube keeps Kubernetes binaries on the node.
pub const BINARIES: &str = "/var/lib/minikube/binaries/v1.20.2";
/// minikube's apiserver port.
pub const APISERVER_PORT: u16 = 8443;

fn pod(name: &str, command: &[String]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\n  labels:\n    component: {name}\n    tier: control-plane\nspec:\n  hostNetwork: true\n  priorityClassName: system-node-critical\n  containers:\n  - name: {name}\n    image: k8s.gcr.io/{name}:v1.20.2\n    command:\n"
    );
    for arg in command {
        y.push_str(&format!("    - {arg}\n"));
    }
    y
}

fn flags(bin: &str, list: &[(&str, String)]) -> Vec<String> {
    std::iter::once(bin.to_string()).chain(list.iter().map(|(k, v)| format!("--{k}={v}"))).collect()
}

pub fn etcd() -> String {
    let c = |f: &str| format!("{CERTS}/etcd/{f}");
    pod(
        "etcd",
        &flags(
            "/usr/bin/etcd",
            &[
                ("advertise-client-urls", "https://127.0.0.1:2379".into()),
                ("cert-file", c("server.crt")),
                ("client-cert-auth", "true".into()),
                ("data-dir", "/var/lib/minikube/etcd".into()),
                ("key-file", c("server.key")),
                ("listen-client-urls", "https://127.0.0.1:2379".into()),
                ("listen-peer-urls", "http://127.0.0.1:2380".into()),
                ("initial-advertise-peer-urls", "http://127.0.0.1:2380".into()),
                ("initial-cluster", "minikube=http://127.0.0.1:2380".into()),
                ("name", "minikube".into()),
                ("trusted-ca-file", c("ca.crt")),
            ],
        ),
    )
}

pub fn apiserver(ip: Ipv4Addr) -> String {
    let c = |f: &str| format!("{CERTS}/{f}");
    pod(
        "kube-apiserver",
        &flags(
            &format!("{BINARIES}/kube-apiserver"),
            &[
                ("advertise-address", ip.to_string()),
                ("allow-privileged", "true".into()),
                ("authorization-mode", "Node,RBAC".into()),
                ("client-ca-file", c("ca.crt")),
                ("enable-admission-plugins", "NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota".into()),
                ("enable-bootstrap-token-auth", "true".into()),
                ("etcd-cafile", c("etcd/ca.crt")),
                ("etcd-certfile", c("apiserver-etcd-client.crt")),
                ("etcd-keyfile", c("apiserver-etcd-client.key")),
                ("etcd-servers", "https://127.0.0.1:2379".into()),
                ("insecure-port", "0".into()),
                ("kubelet-client-certificate", c("apiserver-kubelet-client.crt")),
                ("kubelet-client-key", c("apiserver-kubelet-client.key")),
                ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname".into()),
                ("proxy-client-cert-file", c("front-proxy-client.crt")),
                ("proxy-client-key-file", c("front-proxy-client.key")),
                ("requestheader-allowed-names", "front-proxy-client".into()),
                ("requestheader-client-ca-file", c("front-proxy-ca.crt")),
                ("requestheader-extra-headers-prefix", "X-Remote-Extra-".into()),
                ("requestheader-group-headers", "X-Remote-Group".into()),
                ("requestheader-username-headers", "X-Remote-User".into()),
                ("secure-port", APISERVER_PORT.to_string()),
                ("service-account-issuer", "https://kubernetes.default.svc.cluster.local".into()),
                ("service-account-key-file", c("sa.pub")),
                ("service-account-signing-key-file", c("sa.key")),
                ("service-cluster-ip-range", "10.96.0.0/12".into()),
                ("tls-cert-file", c("apiserver.crt")),
                ("tls-private-key-file", c("apiserver.key")),
            ],
        ),
    )
}

pub fn scheduler() -> String {
    let conf = "/etc/kubernetes/scheduler.conf".to_string();
    pod(
        "kube-scheduler",
        &flags(
            &format!("{BINARIES}/kube-scheduler"),
            &[
                ("authentication-kubeconfig", conf.clone()),
                ("authorization-kubeconfig", conf.clone()),
                ("bind-address", "127.0.0.1".into()),
                ("kubeconfig", conf),
                ("leader-elect", "true".into()),
                ("port", "0".into()),
            ],
        ),
    )
}

pub fn controller_manager() -> String {
    let conf = "/etc/kubernetes/controller-manager.conf".to_string();
    let c = |f: &str| format!("{CERTS}/{f}");
    pod(
        "kube-controller-manager",
        &flags(
            &format!("{BINARIES}/kube-controller-manager"),
            &[
                ("allocate-node-cidrs", "true".into()),
                ("authentication-kubeconfig", conf.clone()),
                ("authorization-kubeconfig", conf.clone()),
                ("bind-address", "127.0.0.1".into()),
                ("client-ca-file", c("ca.crt")),
                ("cluster-cidr", "10.244.0.0/16".into()),
                ("cluster-name", "mk".into()),
                ("cluster-signing-cert-file", c("ca.crt")),
                ("cluster-signing-key-file", c("ca.key")),
                ("controllers", "*,bootstrapsigner,tokencleaner".into()),
                ("kubeconfig", conf),
                ("leader-elect", "true".into()),
                ("port", "0".into()),
                ("requestheader-client-ca-file", c("front-proxy-ca.crt")),
                ("root-ca-file", c("ca.crt")),
                ("service-account-private-key-file", c("sa.key")),
                ("service-cluster-ip-range", "10.96.0.0/12".into()),
                ("use-service-account-credentials", "true".into()),
            ],
        ),
    )
}
