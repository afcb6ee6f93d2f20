//! The store-independent half of the team cache against an in-memory [`Remote`]: a round trip,
//! and every way a pulled binary is refused without touching the destination.

use std::collections::HashMap;
use std::sync::Mutex;

use camino::Utf8Path;

use super::artifact::{Expect, Facts, LAYER_TYPE};
use super::pull::{pull, Miss};
use super::push::push;
use super::{CacheUrl, Found, Layer, Pushed, Remote, RemoteError};
use crate::ide::fixture;

/// (component, tag) → (layer, its digest when pushed, facts).
type Store = HashMap<(String, String), (Vec<u8>, String, Facts)>;

/// Artifacts in memory.
struct Mem {
    url: CacheUrl,
    store: Mutex<Store>,
}

impl Mem {
    fn new() -> Mem {
        Mem { url: "oci://127.0.0.1:1/kdbg".parse().unwrap(), store: Mutex::default() }
    }

    fn tamper(&self, f: impl Fn(&mut Vec<u8>, &mut Facts)) {
        for (layer, _, facts) in self.store.lock().unwrap().values_mut() {
            f(layer, facts);
        }
    }
}

impl Remote for Mem {
    fn url(&self) -> &CacheUrl {
        &self.url
    }
    fn lookup(&self, component: &str, tag: &str) -> Result<Option<Found>, RemoteError> {
        let store = self.store.lock().unwrap();
        Ok(store.get(&(component.into(), tag.into())).map(|(layer, digest, facts)| Found {
            facts: Ok(facts.clone()),
            layer: Some(Layer { digest: digest.clone(), size: layer.len() as u64, media_type: LAYER_TYPE.into() }),
        }))
    }
    fn download(
        &self,
        component: &str,
        found: &Found,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        progress: &dyn Fn(u64),
    ) -> Result<(), RemoteError> {
        // Sends what it holds now, as a registry's disk would after someone changed it.
        let store = self.store.lock().unwrap();
        let digest = &found.layer.as_ref().unwrap().digest;
        let (layer, ..) = store.iter().find(|((c, _), (_, d, _))| c == component && d == digest).unwrap().1;
        for chunk in layer.chunks(1 << 16) {
            sink(chunk).unwrap();
        }
        progress(layer.len() as u64);
        Ok(())
    }
    fn push(&self, component: &str, tag: &str, layer: Vec<u8>, facts: &Facts) -> Result<Pushed, RemoteError> {
        let mut store = self.store.lock().unwrap();
        let sent = layer.len() as u64;
        let d = super::oci::sha256_digest(&layer);
        match store.insert((component.into(), tag.into()), (layer, d, facts.clone())) {
            Some(_) => Ok(Pushed::Already),
            None => Ok(Pushed::Sent { sent }),
        }
    }
}

fn facts_of(binary: &Utf8Path) -> Facts {
    let needs = crate::binary::needs_of(binary).unwrap();
    let (sha256, size) = crate::digest::sha256_file(binary).unwrap();
    Facts {
        component: "kube-apiserver".into(),
        key: "k".into(),
        key_schema: "1".into(),
        sha256,
        size,
        platform: "linux/amd64".into(),
        go: needs.go_version,
        dwarf: needs.dwarf,
        flags: "DBG=1".into(),
        kube_version: "v1.20.2".into(),
        kube_commit: String::new(),
        kdbg_version: "0".into(),
        built_by: "test".into(),
        created: "2026-12-07T00:00:00Z".into(),
    }
}

fn expect(f: &Facts) -> Expect {
    Expect {
        component: f.component.clone(),
        key: f.key.clone(),
        key_schema: f.key_schema.clone(),
        platform: f.platform.clone(),
        go: f.go.clone(),
        flags: f.flags.clone(),
    }
}

/// A built fixture apiserver pushed to a fresh store; the destination directory is empty.
fn pushed() -> (fixture::Built, Mem, Facts, tempfile::TempDir) {
    let built = fixture::make(&["DBG=1"]);
    let mem = Mem::new();
    let facts = facts_of(&built.binary);
    let report = push(&mem, &built.binary, "t", &facts).unwrap();
    assert!(matches!(report.pushed, Pushed::Sent { sent } if sent > 0 && sent < facts.size));
    (built, mem, facts, tempfile::tempdir().unwrap())
}

fn only_file(dir: &Utf8Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn a_pushed_binary_comes_back_byte_for_byte_and_a_second_push_sends_nothing() {
    let (built, mem, facts, dir) = pushed();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let dest = dir.join("bin/kube-apiserver");
    let pulled = pull(&mem, &expect(&facts), "t", &dest, &|_, _| {}).unwrap().expect("in the store");
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&built.binary).unwrap());
    assert!(pulled.location.ends_with("/kdbg/kube-apiserver:t"), "{}", pulled.location);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o111, 0o111);
    assert!(pull(&mem, &expect(&facts), "other", &dest, &|_, _| {}).unwrap().is_none());
    assert_eq!(push(&mem, &built.binary, "t", &facts).unwrap().pushed, Pushed::Already);
}

#[test]
fn a_binary_that_does_not_fit_the_key_or_its_bytes_is_refused_and_leaves_nothing() {
    let (_built, mem, facts, dir) = pushed();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let dest = dir.join("kube-apiserver");
    std::fs::write(&dest, "the previous build").unwrap();
    let refused = |mem: &Mem, expect: &Expect| match pull(mem, expect, "t", &dest, &|_, _| {}) {
        Err(Miss::Unverified { why, .. }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let arm = Expect { platform: "linux/arm64".into(), ..expect(&facts) };
    assert!(refused(&mem, &arm).contains("platform"));
    let go = Expect { go: "go1.99".into(), ..expect(&facts) };
    assert!(refused(&mem, &go).contains("Go"));
    // Annotations that lie about the bytes.
    mem.tamper(|_, f| f.sha256 = "0".repeat(64));
    assert!(refused(&mem, &expect(&facts)).contains("sha256"));
    mem.tamper(|_, f| f.sha256 = facts.sha256.clone());
    assert_eq!(pull(&mem, &expect(&facts), "t", &dest, &|_, _| {}).unwrap().map(|p| p.compressed > 0), Some(true));
    std::fs::write(&dest, "the previous build").unwrap();
    // A layer changed in the store: its bytes no longer match the manifest's digest.
    mem.tamper(|l, _| {
        let mid = l.len() / 2;
        l[mid] ^= 0xff;
    });
    let why = refused(&mem, &expect(&facts));
    assert!(why.contains("sha256") || why.contains("zstd"), "{why}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "the previous build");
    assert_eq!(only_file(dir), vec!["kube-apiserver".to_string()]);
}
