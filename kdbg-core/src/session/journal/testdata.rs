//! Schema-1 journals written by kdbg before schema 2 (see `testdata/`): a real `kdbg debug
//! apiserver` on a test node on TCP (Delve 1.20) and on a socket (Delve 1.27), and a kubeadm
//! kubelet (systemd, socket) and kube-proxy (DaemonSet, `--expose`) serialized by that kdbg's
//! structs; `STATUS_*` are `kdbg status --json` of each, as that kdbg printed it.

pub(crate) const STATIC_POD_SOCKET: &str = include_str!("testdata/static-pod-socket.json");
pub(crate) const STATIC_POD_TCP: &str = include_str!("testdata/static-pod-tcp.json");
pub(crate) const SYSTEMD_KUBELET: &str = include_str!("testdata/systemd-kubelet.json");
pub(crate) const DAEMONSET_KUBE_PROXY: &str = include_str!("testdata/daemonset-kube-proxy.json");

/// Each journal with its `kdbg status --json` (Delve up, program running, a tunnel on 40001).
pub(crate) const ALL: [(&str, &str, &str); 4] = [
    ("static-pod-socket", STATIC_POD_SOCKET, include_str!("testdata/status-static-pod-socket.json")),
    ("static-pod-tcp", STATIC_POD_TCP, include_str!("testdata/status-static-pod-tcp.json")),
    ("systemd-kubelet", SYSTEMD_KUBELET, include_str!("testdata/status-systemd-kubelet.json")),
    ("daemonset-kube-proxy", DAEMONSET_KUBE_PROXY, include_str!("testdata/status-daemonset-kube-proxy.json")),
];
