//! The files that turn the Debian rootfs into a kubeadm node: the kubelet's systemd unit and
//! kubeadm's drop-in, containerd's CRI settings for this machine, a bridge CNI, the entrypoint, and
//! the kubeadm configuration.

/// The kubelet unit as kubeadm's packages install it (the Debian source package lacks
/// `build/debs`, so these two files are written here with the same semantics).
pub const KUBELET_UNIT: &str = "\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

/// kubeadm's drop-in: the kubeconfigs, the config file, and the flags kubeadm writes at init.
pub const KUBEADM_DROPIN: &str = "\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

/// containerd 1.6: this machine grants no CAP_SYS_RESOURCE, so runc may not lower
/// `oom_score_adj` (restrict it); the sandbox image is the locally built pause; Debian's CNI
/// plugins live in /usr/lib/cni.
pub fn containerd_config(pause: &str) -> String {
    format!(
        "version = 2\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{pause}\"\n  restrict_oom_score_adj = true\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"/etc/cni/net.d\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n"
    )
}

pub const CNI_BRIDGE: &str = r#"{
  "cniVersion": "0.4.0",
  "name": "kdbg-bridge",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.244.0.0/24" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
"#;

/// Imports the image tars into containerd's `k8s.io` namespace once containerd is up.
pub const IMAGES_UNIT: &str = "\
[Unit]
Description=kdbg e2e: import the locally built images into containerd
Requires=containerd.service
After=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for f in /kdbg/images/*.tar; do ctr -n k8s.io images import \"$f\" || exit 1; done'

[Install]
WantedBy=multi-user.target
";

/// The container runs without `--privileged` (this machine cannot grant every capability), so
/// the entrypoint does what privilege would: cgroup v1 controllers writable inside the container's
/// cgroup namespace, `/dev/kmsg` for the kubelet. Then systemd boots as PID 1.
pub const ENTRYPOINT: &str = r#"#!/bin/sh
set -eu
mount -o remount,rw /sys 2>/dev/null || true
mount -o remount,rw /sys/fs/cgroup
awk '$3 == "cgroup" { print $2, $4 }' /proc/mounts | while read -r dir opts; do
  ctrl=$(echo "$opts" | tr ',' '\n' | grep -vxE 'ro|rw|nosuid|nodev|noexec|relatime' | paste -sd, -)
  umount "$dir" && mount -t cgroup -o "$ctrl" cgroup "$dir"
done
[ -e /dev/kmsg ] || mknod /dev/kmsg c 1 11
exec /sbin/init "$@"
"#;

/// `kubeadm init`'s configuration (kubeadm v1beta2, as v1.20 reads it): containerd's socket,
/// the local images, no swap or disk-pressure checks that a container node would fail.
pub fn kubeadm_config(cluster: &str, version: &str, etcd_tag: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
clusterName: {cluster}
kubernetesVersion: {version}
imageRepository: k8s.gcr.io
etcd:
  local:
    imageTag: \"{etcd_tag}\"
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard:
  nodefs.available: \"0%\"
  nodefs.inodesFree: \"0%\"
  imagefs.available: \"0%\"
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack:
  maxPerCore: 0
"
    )
}
