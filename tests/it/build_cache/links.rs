//! Odd names and symlinks in a closure package: never "up to date" unless the build's inputs are
//! byte-identical, with a seeded random walk of edits, renames, odd names and links as the property test.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::support::Tree;

/// The closure package the tests change (the apiserver imports it).
const PKG: &str = "pkg/healthz";

fn pkg_file(t: &Tree, name: &[u8]) -> PathBuf {
    t.path(PKG).join(OsStr::from_bytes(name))
}

fn build_hit(t: &Tree) -> Result<bool, (i32, String)> {
    let out = t.kdbg(["build", "apiserver", "--json"]).output();
    if out.code != 0 {
        return Err((out.code, out.stderr));
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    Ok(v["components"][0]["hit"].as_bool().unwrap())
}

#[test]
fn a_non_utf8_source_name_is_refused_naming_the_file() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    std::fs::write(pkg_file(&t, b"\xff.go"), "package healthz\n\nvar _ = 1\n").unwrap();
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    assert!(out.stderr.contains(r"pkg/healthz/\xff.go has a name that is not UTF-8"), "{}", out.stderr);
    assert!(out.stderr.contains("fix: rename it"), "{}", out.stderr);
    // Also in a tree kdbg never built (the name then comes from `go list`, as U+FFFD).
    let fresh = Tree::fixture();
    std::fs::write(pkg_file(&fresh, b"\xff.go"), "package healthz\n\nvar _ = 1\n").unwrap();
    let out = fresh.kdbg(["build", "apiserver"]).failure(1);
    assert!(out.stderr.contains(r"pkg/healthz/\xff.go has a name that is not UTF-8"), "{}", out.stderr);
    assert!(fresh.make_runs().is_empty());
    // Renamed to UTF-8: a change, so a build.
    std::fs::rename(pkg_file(&t, b"\xff.go"), pkg_file(&t, b"odd.go")).unwrap();
    assert_eq!(build_hit(&t), Ok(false));
}

#[test]
fn broken_symlinks_are_errors_and_links_are_followed() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    std::os::unix::fs::symlink("b.go", pkg_file(&t, b"a.go")).unwrap();
    std::os::unix::fs::symlink("a.go", pkg_file(&t, b"b.go")).unwrap();
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    assert!(out.stderr.contains("pkg/healthz/a.go is a symlink to b.go that cannot be followed"), "{}", out.stderr);
    assert!(out.stderr.contains("too many levels of symbolic links"), "{}", out.stderr);
    std::fs::remove_file(pkg_file(&t, b"b.go")).unwrap();
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    assert!(out.stderr.contains("pkg/healthz/a.go is a symlink to b.go that cannot be followed"), "{}", out.stderr);
    assert!(out.stderr.contains("(no such file or directory)"), "{}", out.stderr);
    assert_eq!(t.make_runs().len(), 1, "no make for a tree kdbg refuses");

    // A link to a file outside the package: its target's content is the input.
    let outside = t.scratch().join("linked.go");
    std::fs::write(&outside, "package healthz\n\nvar _ = 1\n").unwrap();
    std::fs::remove_file(pkg_file(&t, b"a.go")).unwrap();
    std::os::unix::fs::symlink(&outside, pkg_file(&t, b"a.go")).unwrap();
    assert_eq!(build_hit(&t), Ok(false));
    assert_eq!(build_hit(&t), Ok(true));
    std::fs::write(&outside, "package healthz\n\nvar _ = 2\n").unwrap();
    assert_eq!(build_hit(&t), Ok(false), "the link's target changed");
    // The target vanishes: a broken link, not "up to date".
    std::fs::remove_file(&outside).unwrap();
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    assert!(out.stderr.contains("pkg/healthz/a.go is a symlink to"), "{}", out.stderr);
}

/// xorshift64*: a fixed seed gives the same walk on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// Names the walk uses in the package, odd ones included.
const NAMES: &[&[u8]] =
    &[b"extra.go", b"with space.go", "\u{fc}n\u{ef}.go".as_bytes(), b"\xff.go", b"caf\xe9.go", b"l.go"];

/// What `go build` reads from the package: every non-test `.go` entry (by name bytes) and its
/// content through links, or why it cannot be read.
type Seen = BTreeMap<Vec<u8>, Result<Vec<u8>, String>>;

fn seen(t: &Tree) -> Seen {
    std::fs::read_dir(t.path(PKG))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().as_bytes().to_vec())
        .filter(|n| n.ends_with(b".go") && !n.ends_with(b"_test.go") && !n.starts_with(b".") && !n.starts_with(b"_"))
        .map(|n| {
            let content = std::fs::read(pkg_file(t, &n)).map_err(|e| e.to_string());
            (n, content)
        })
        .collect()
}

fn cases() -> usize {
    std::env::var("KDBG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

/// One random change in the package; returns what it did, for the failure message.
fn step(t: &Tree, rng: &mut Rng, n: usize) -> String {
    let dir = t.path(PKG);
    let present: Vec<&[u8]> = NAMES.iter().copied().filter(|n| pkg_file(t, n).symlink_metadata().is_ok()).collect();
    let absent: Vec<&[u8]> = NAMES.iter().copied().filter(|n| pkg_file(t, n).symlink_metadata().is_err()).collect();
    let shown = |n: &[u8]| std::str::from_utf8(n).map_or_else(|_| n.escape_ascii().to_string(), String::from);
    let broken: Vec<&[u8]> = present
        .iter()
        .copied()
        .filter(|n| std::str::from_utf8(n).is_err() || std::fs::metadata(pkg_file(t, n)).is_err())
        .collect();
    let outside = |i: usize| t.scratch().join(format!("outside-{i}.go"));
    let body = format!("package healthz\n\nvar _ = {n}\n");
    match rng.below(11) {
        9 | 10 => match rng.pick(&broken).or(rng.pick(&present)) {
            Some(name) => {
                std::fs::remove_file(pkg_file(t, name)).unwrap();
                let _ = std::fs::remove_file(pkg_file(t, b"loop.go"));
                format!("repair: remove {}", shown(name))
            }
            None => "nothing to repair".into(),
        },
        0 => {
            let f = dir.join("healthz.go");
            let mut text = std::fs::read(&f).unwrap();
            text.extend_from_slice(format!("\n// edit {n}\n").as_bytes());
            std::fs::write(f, text).unwrap();
            "edit healthz.go".into()
        }
        1 => {
            let f = dir.join("healthz.go");
            std::fs::write(&f, std::fs::read(&f).unwrap()).unwrap();
            "rewrite healthz.go with the same bytes".into()
        }
        2 | 3 => match rng.pick(&absent) {
            Some(name) => {
                std::fs::write(pkg_file(t, name), &body).unwrap();
                format!("add {}", shown(name))
            }
            None => "nothing to add".into(),
        },
        4 => match (rng.pick(&present), rng.pick(&absent)) {
            (Some(from), Some(to)) => {
                std::fs::rename(pkg_file(t, from), pkg_file(t, to)).unwrap();
                format!("rename {} to {}", shown(from), shown(to))
            }
            _ => "nothing to rename".into(),
        },
        5 => match rng.pick(&present) {
            Some(name) => {
                std::fs::remove_file(pkg_file(t, name)).unwrap();
                format!("remove {}", shown(name))
            }
            None => "nothing to remove".into(),
        },
        6 => match rng.pick(&absent) {
            Some(name) => {
                let target = outside(rng.below(2));
                if !target.exists() {
                    std::fs::write(&target, &body).unwrap();
                }
                std::os::unix::fs::symlink(&target, pkg_file(t, name)).unwrap();
                format!("link {} to {}", shown(name), target.display())
            }
            None => "nothing to link".into(),
        },
        7 => {
            let target = outside(rng.below(2));
            match rng.below(2) {
                0 => {
                    std::fs::write(&target, &body).unwrap();
                    format!("write {}", target.display())
                }
                _ => {
                    let _ = std::fs::remove_file(&target);
                    format!("remove {}", target.display())
                }
            }
        }
        _ => match (rng.pick(&absent), rng.below(2)) {
            (Some(name), 0) => {
                std::os::unix::fs::symlink(format!("nowhere-{n}.go"), pkg_file(t, name)).unwrap();
                format!("dangling link {}", shown(name))
            }
            (Some(name), _) => {
                std::os::unix::fs::symlink(OsStr::from_bytes(name), pkg_file(t, b"loop.go")).ok();
                std::os::unix::fs::symlink("loop.go", pkg_file(t, name)).unwrap();
                format!("link loop loop.go <-> {}", shown(name))
            }
            (None, _) => {
                let _ = std::fs::remove_file(pkg_file(t, b"loop.go"));
                "remove loop.go".into()
            }
        },
    }
}

/// Refused or failing trees are allowed; a hit is allowed only when what `go build` reads from
/// the package is byte-identical to what it read at the last successful build.
#[test]
fn random_changes_never_give_a_false_hit() {
    let t = Tree::fixture();
    let seed = std::env::var("KDBG_PROPTEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x6b64_6267_u64);
    let mut rng = Rng(seed);
    t.build(&["apiserver"]);
    let mut built = seen(&t);
    let mut log = Vec::new();
    let mut hits = 0;
    for n in 0..cases() {
        for _ in 0..=rng.below(2) {
            log.push(step(&t, &mut rng, n));
        }
        let now = seen(&t);
        let broken = now.iter().any(|(name, c)| c.is_err() || std::str::from_utf8(name).is_err());
        match build_hit(&t) {
            Ok(true) => {
                hits += 1;
                assert_eq!(now, built, "seed {seed}, case {n}: a hit, but the inputs differ; steps:\n{log:#?}");
            }
            Ok(false) => {
                built = now;
                if rng.below(3) == 0 {
                    assert_eq!(build_hit(&t), Ok(true), "seed {seed}, case {n}: nothing changed; steps:\n{log:#?}");
                    hits += 1;
                }
            }
            Err((1, stderr)) => {
                assert!(broken, "seed {seed}, case {n}: refused a buildable package:\n{stderr}\nsteps:\n{log:#?}");
                assert!(stderr.contains("pkg/healthz/") && stderr.contains("fix:"), "{stderr}");
            }
            Err((3, _)) => {}
            Err((code, stderr)) => panic!("seed {seed}, case {n}: exit {code}:\n{stderr}\nsteps:\n{log:#?}"),
        }
    }
    eprintln!("seed {seed}: {} cases, {hits} hits, {} make runs; steps: {log:?}", cases(), t.make_runs().len());
}
