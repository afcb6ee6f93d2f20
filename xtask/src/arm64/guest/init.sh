#!/bin/busybox sh
# /init of the kdbg arm64 test node (an initramfs): mounts, the virtio network, then busybox
# init, which reaps orphans and keeps sshd and the static-pod runner running (/etc/inittab).
/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd /run/kdbg-pods
# The initramfs root is not a mount busybox df can report on: kdbg's own directory gets a tmpfs
# (its space check reads `df /var/lib/kdbg`), as does /tmp.
mount -t tmpfs -o mode=0755 tmpfs /var/lib/kdbg
mount -t tmpfs -o mode=1777 tmpfs /tmp
# The kernel builds virtio-net as modules without modules.dep: load them in dependency order.
for m in virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
    insmod "$(find /lib/modules -name "$m.ko" | head -n 1)" || echo "init: insmod $m failed"
done
hostname arm64-node
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "init: network up, handing over to busybox init"
exec /bin/busybox init
