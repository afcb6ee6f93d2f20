//! Container images for `kubeadm init`, made locally (no registry can be reached): each is one
//! layer built from the tree's release binaries (Debian's etcd for etcd, a static pause), written
//! as a docker-archive tar that the node's containerd imports under kubeadm's image names.

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use super::rootfs::add_with_libs;

pub const KUBE_VERSION: &str = "v1.20.2";
pub const PAUSE: &str = "k8s.gcr.io/pause:3.2";

/// Fills an image's root directory.
type Fill = Box<dyn Fn(&Utf8Path) -> Result<()>>;

/// One image: its name and how its layer is filled.
struct Spec {
    name: String,
    entrypoint: Option<&'static str>,
    fill: Fill,
}

/// Builds (or reuses) every image tar into `out`; returns the tars and the etcd image tag used.
pub fn ensure(sh: &Shell, tree: &Utf8Path, release: &Utf8Path, rootfs: &Utf8Path, out: &Utf8Path) -> Result<Images> {
    std::fs::create_dir_all(out)?;
    let format = "${Version}";
    let etcd_version = cmd!(sh, "dpkg-query -W -f={format} etcd-server").read()?;
    let etcd_tag = etcd_version.split(['-', '+', '~']).next().unwrap_or("3.4").to_string();
    let mut specs = vec![pause(sh, tree)];
    for c in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let bin = release.join(c);
        specs.push(Spec {
            name: format!("k8s.gcr.io/{c}:{KUBE_VERSION}"),
            entrypoint: None,
            fill: Box::new(move |dir| copy_exe(&bin, &dir.join("usr/local/bin").join(bin.file_name().unwrap()))),
        });
    }
    specs.push(proxy(release, rootfs));
    specs.push(Spec {
        name: format!("k8s.gcr.io/etcd:{etcd_tag}"),
        entrypoint: None,
        fill: Box::new(|dir| {
            let sh = Shell::new()?;
            add_with_libs(&sh, Utf8Path::new("/"), "/usr/bin/etcd", dir)?;
            std::fs::create_dir_all(dir.join("usr/local/bin"))?;
            std::os::unix::fs::symlink("/usr/bin/etcd", dir.join("usr/local/bin/etcd"))?;
            Ok(())
        }),
    });
    let mut tars = Vec::new();
    for spec in &specs {
        tars.push(build(sh, spec, out)?);
    }
    Ok(Images { tars, etcd_tag })
}

pub struct Images {
    pub tars: Vec<Utf8PathBuf>,
    pub etcd_tag: String,
}

fn pause(sh: &Shell, tree: &Utf8Path) -> Spec {
    let src = tree.join("build/pause/linux/pause.c");
    let sh = sh.clone();
    Spec {
        name: PAUSE.into(),
        entrypoint: Some("/pause"),
        fill: Box::new(move |dir| {
            let out = dir.join("pause");
            cmd!(sh, "gcc -Os -static -o {out} {src} -DVERSION=3.2-kdbg").run()?;
            Ok(())
        }),
    }
}

/// kube-proxy with what it runs: iptables (nft backend, as the node has), conntrack.
fn proxy(release: &Utf8Path, rootfs: &Utf8Path) -> Spec {
    let bin = release.join("kube-proxy");
    let rootfs = rootfs.to_owned();
    Spec {
        name: format!("k8s.gcr.io/kube-proxy:{KUBE_VERSION}"),
        entrypoint: None,
        fill: Box::new(move |dir| {
            let sh = Shell::new()?;
            copy_exe(&bin, &dir.join("usr/local/bin/kube-proxy"))?;
            add_with_libs(&sh, &rootfs, "/usr/sbin/xtables-nft-multi", dir)?;
            add_with_libs(&sh, &rootfs, "/usr/sbin/conntrack", dir)?;
            let plugins = rootfs.join("usr/lib/x86_64-linux-gnu/xtables");
            for e in plugins.read_dir_utf8()? {
                add_with_libs(&sh, &rootfs, &format!("/usr/lib/x86_64-linux-gnu/xtables/{}", e?.file_name()), dir)?;
            }
            for tool in
                ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"]
            {
                std::os::unix::fs::symlink("xtables-nft-multi", dir.join("usr/sbin").join(tool))?;
            }
            for f in ["etc/protocols", "etc/services", "etc/ethertypes"] {
                if rootfs.join(f).exists() {
                    std::fs::copy(rootfs.join(f), dir.join(f)).with_context(|| format!("copying {f}"))?;
                }
            }
            Ok(())
        }),
    }
}

fn copy_exe(from: &Utf8Path, to: &Utf8Path) -> Result<()> {
    std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
    std::fs::copy(from, to).with_context(|| format!("copying {from}"))?;
    Ok(())
}

/// Writes `<out>/<name>.tar` in docker-archive format unless it exists for the same inputs.
fn build(sh: &Shell, spec: &Spec, out: &Utf8Path) -> Result<Utf8PathBuf> {
    let file = spec.name.replace(['/', ':'], "_");
    let tar = out.join(format!("{file}.tar"));
    let stage = tempfile::Builder::new().prefix("kdbg-image-").tempdir_in(out)?;
    let stage = Utf8PathBuf::try_from(stage.path().to_owned())?;
    let root = stage.join("root");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(root.join("tmp"))?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    (spec.fill)(&root).with_context(|| format!("filling the image {}", spec.name))?;
    let layer = stage.join("layer.tar");
    cmd!(sh, "tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C {root} -cf {layer} .").run()?;
    let diff_id = hex::encode(Sha256::digest(std::fs::read(&layer)?));
    let stamp = out.join(format!("{file}.sha256"));
    if tar.exists() && std::fs::read_to_string(&stamp).unwrap_or_default() == diff_id {
        return Ok(tar);
    }
    let mut config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
    });
    if let Some(e) = spec.entrypoint {
        config["config"]["Entrypoint"] = serde_json::json!([e]);
    }
    let config = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config)));
    let archive = stage.join("archive");
    std::fs::create_dir_all(archive.join(&diff_id))?;
    std::fs::rename(&layer, archive.join(&diff_id).join("layer.tar"))?;
    std::fs::write(archive.join(&config_name), &config)?;
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [spec.name],
        "Layers": [format!("{diff_id}/layer.tar")],
    }]);
    std::fs::write(archive.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    let tmp = out.join(format!(".{file}.tar.tmp"));
    cmd!(sh, "tar --numeric-owner --owner=0 --group=0 -C {archive} -cf {tmp} .").run()?;
    std::fs::rename(&tmp, &tar)?;
    std::fs::write(&stamp, &diff_id)?;
    eprintln!("e2e: image {} ({} MB)", spec.name, std::fs::metadata(&tar)?.len() / 1_000_000);
    Ok(tar)
}
