//! Version switching: a git worktree of the user's clone per tag or commit (`--at REF`), made
//! once and reused, with its own `_output`, cache state and Go; the user's checkout is never
//! touched. Also which worktrees kdbg made, how big and how recently used, and pruning them.
//!
//! [`ensure`] checks a ref out once as `git worktree add --detach` under the clone's
//! `_output/kdbg/worktrees/<ref>` (or `--worktrees DIR`), after [`resolve`] found its commit: a
//! missing ref fails first, naming the `git fetch` that would bring it, and nothing is made. A
//! moved branch is checked out again on reuse; [`clone_of`] maps a worktree back to its clone, so
//! `--at` from inside one never nests. kdbg's record (ref, commit, clone, created, last use) is the
//! worktree's own `_output/kdbg/worktree.json`: only worktrees with one are listed or pruned, and
//! [`prune`] keeps a worktree in use (a recorded session, see `uses`, or a kdbg holding its tree
//! lock) or holding the user's own changes.

mod uses;

use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::host::Cmd;
use crate::report::Reporter;
use crate::tree::STATE_DIR;
pub use uses::{forget, record, Use};

/// kdbg's record inside each worktree it made (under the worktree's own `_output/kdbg`).
const RECORD: &str = "worktree.json";

/// Where worktrees go when the user names no directory: inside the clone's `_output`, which
/// git ignores and Go skips.
pub const DEFAULT_DIR: &str = "_output/kdbg/worktrees";

/// What kdbg knows of a worktree it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The ref as the user gave it (`v1.20.1`, `release-1.34`, a commit).
    pub git_ref: String,
    /// The commit it is checked out at.
    pub commit: String,
    /// The clone it is a worktree of.
    pub clone: Utf8PathBuf,
    /// Unix seconds.
    pub created: u64,
    pub last_used: u64,
}

/// A worktree ready to build in.
#[derive(Debug, Clone)]
pub struct Worktree {
    pub path: Utf8PathBuf,
    pub record: Record,
    /// Made by this call (else reused).
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    #[error("{clone} is not a git clone, so kdbg cannot check out another version of it; --at and --match-node need the kubernetes git repository (git clone https://github.com/kubernetes/kubernetes)")]
    NotGit { clone: Utf8PathBuf },
    #[error("{what} {git_ref} is not in the clone {clone}{why}; fetch it and run again:\n  {fetch}\nkdbg never builds a nearby version instead: breakpoints would not match the code that runs")]
    MissingRef { what: &'static str, git_ref: String, clone: Utf8PathBuf, fetch: String, why: String },
    #[error("{git_ref:?} names no tag, branch or commit of the clone {clone}, and no fetch could bring it: give a tag (v1.34.2), a branch or a commit (`git -C {clone} tag --list 'v1.*'` lists the tags)")]
    BadRef { git_ref: String, clone: Utf8PathBuf },
    #[error("--worktrees {dir} is inside the checkout {clone}, where git does not ignore it: the worktree would show in your `git status`\n  fix: choose a directory outside the clone, or one its .gitignore covers (the default, _output/kdbg/worktrees, is)")]
    InTheCheckout { dir: Utf8PathBuf, clone: Utf8PathBuf },
    #[error("{path} exists and is not a kdbg worktree of {clone}; remove it or choose another --worktrees directory")]
    InTheWay { path: Utf8PathBuf, clone: Utf8PathBuf },
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Git { args: String, dir: Utf8PathBuf, stderr: String },
    #[error("failed to {what} {path}: {source}")]
    Io { what: &'static str, path: Utf8PathBuf, source: std::io::Error },
}

fn git(dir: &Utf8Path, args: &[&str]) -> Result<String, WorktreeError> {
    let out = Cmd::new("git").args(args.iter().copied()).cwd(dir).output().map_err(|e| WorktreeError::Git {
        args: args.join(" "),
        dir: dir.to_owned(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(WorktreeError::Git { args: args.join(" "), dir: dir.to_owned(), stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

fn io<'a>(what: &'static str, path: &'a Utf8Path) -> impl FnOnce(std::io::Error) -> WorktreeError + 'a {
    move |source| WorktreeError::Io { what, path: path.to_owned(), source }
}

/// Unix seconds now.
fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The record of the kdbg worktree at `root`, if it is one.
pub fn record_of(root: &Utf8Path) -> Option<Record> {
    let bytes = std::fs::read(root.join(STATE_DIR).join(RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Notes a use of the tree at `root` when it is a kdbg worktree (for `kdbg worktrees prune`):
/// `--at` does it, and so does a build in the worktree itself (`--src`, its VSCode tasks).
pub fn touch(root: &Utf8Path) {
    if let Some(mut record) = record_of(root) {
        record.last_used = now();
        let _ = save(root, &record);
    }
}

fn save(root: &Utf8Path, record: &Record) -> Result<(), WorktreeError> {
    let dir = root.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let path = dir.join(RECORD);
    std::fs::write(&path, serde_json::to_vec_pretty(record).expect("a record serializes")).map_err(io("write", &path))
}

/// The user's clone behind `root`: `root` itself, or, inside a kdbg worktree (or any linked
/// worktree), the clone it belongs to, so `--at` from inside a worktree never nests another.
pub fn clone_of(root: &Utf8Path) -> Result<Utf8PathBuf, WorktreeError> {
    if let Some(r) = record_of(root) {
        return Ok(r.clone);
    }
    // Never an enclosing repository the tree merely sits in.
    if !crate::tree::is_git_toplevel(root) {
        return Err(WorktreeError::NotGit { clone: root.to_owned() });
    }
    let common = git(root, &["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map_err(|_| WorktreeError::NotGit { clone: root.to_owned() })?;
    let common = Utf8PathBuf::from(common);
    // A normal clone's common dir is `<clone>/.git`; a bare repository has no checkout to use.
    match common.file_name() {
        Some(".git") => {
            let clone = common.parent().unwrap_or(root);
            Ok(clone.canonicalize_utf8().unwrap_or_else(|_| clone.to_owned()))
        }
        _ => Err(WorktreeError::NotGit { clone: root.to_owned() }),
    }
}

/// `path` is outside `clone`'s checkout, or inside it where git ignores it (as kubernetes'
/// `.gitignore` does `_output`).
fn outside_the_checkout(clone: &Utf8Path, path: &Utf8Path) -> bool {
    // Compare real paths: the directory may not exist yet, so resolve its nearest existing parent.
    let real = |p: &Utf8Path| p.canonicalize_utf8().ok();
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    let base = loop {
        if let Some(r) = real(&existing) {
            break rest.iter().rev().fold(r, |acc: Utf8PathBuf, part: &String| acc.join(part));
        }
        match (existing.file_name().map(str::to_owned), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_owned();
            }
            _ => return true,
        }
    };
    let clone = real(clone).unwrap_or_else(|| clone.to_owned());
    match base.strip_prefix(&clone) {
        Err(_) => true,
        Ok(inside) if inside.as_str().is_empty() => false,
        Ok(inside) => git(&clone, &["check-ignore", "-q", "--no-index", "--", inside.as_str()]).is_ok(),
    }
}

/// The directory name for `git_ref`: the ref with `/` and anything unusual as `_`.
pub fn dir_name(git_ref: &str) -> String {
    let name: String =
        git_ref.chars().map(|c| if c.is_ascii_alphanumeric() || "._-+".contains(c) { c } else { '_' }).collect();
    // Never `.`, `..` or a hidden directory.
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// The commit `git_ref` names in `clone`, or an error that names the ref and how to fetch it.
pub fn resolve(clone: &Utf8Path, git_ref: &str) -> Result<String, WorktreeError> {
    let spec = format!("{git_ref}^{{commit}}");
    if let Ok(commit) = git(clone, &["rev-parse", "--verify", "--quiet", "--end-of-options", &spec]) {
        return Ok(commit);
    }
    // A revision expression (`HEAD~5`), a refspec (`a:b`) or no name at all: fetching cannot help,
    // and the fetch command would be wrong (a refspec would even make a branch).
    let fetchable = !git_ref.is_empty()
        && !git_ref.starts_with('-')
        && git(clone, &["check-ref-format", "--allow-onelevel", git_ref]).is_ok();
    if !fetchable {
        return Err(WorktreeError::BadRef { git_ref: git_ref.into(), clone: clone.to_owned() });
    }
    let looks_like_tag = crate::tree::KubeVersion::parse(git_ref).is_some();
    let (what, fetch) = if looks_like_tag {
        ("the tag", format!("git -C {clone} fetch origin tag {git_ref}   # or: git -C {clone} fetch --tags origin"))
    } else {
        ("the ref", format!("git -C {clone} fetch origin {git_ref}"))
    };
    let tags = git(clone, &["tag", "--list", "v*"]).unwrap_or_default();
    let why = match tags.lines().count() {
        0 => " (the clone has no version tags at all: a shallow or --no-tags clone?)".to_string(),
        _ => String::new(),
    };
    Err(WorktreeError::MissingRef { what, git_ref: git_ref.into(), clone: clone.to_owned(), fetch, why })
}

/// The worktree of `clone` at `git_ref` under `dir` (default [`DEFAULT_DIR`] in the clone):
/// made with `git worktree add --detach` the first time, reused (moved to the ref's current
/// commit if a branch moved) afterwards. A missing ref fails before anything is created.
pub fn ensure(
    clone: &Utf8Path,
    git_ref: &str,
    dir: Option<&Utf8Path>,
    reporter: &dyn Reporter,
) -> Result<Worktree, WorktreeError> {
    let commit = resolve(clone, git_ref)?;
    // An empty directory (`KDBG_WORKTREES=`) is no directory.
    let named = dir.filter(|d| !d.as_str().is_empty());
    let base = match named {
        // A relative directory is relative to where kdbg runs (git runs in the clone).
        Some(d) => {
            Utf8PathBuf::try_from(std::path::absolute(d).map_err(io("resolve", d))?).unwrap_or_else(|_| d.to_owned())
        }
        None => clone.join(DEFAULT_DIR),
    };
    let path = base.join(dir_name(git_ref));
    // A worktree inside the checkout that git does not ignore would show in its `git status`.
    if named.is_some() && !outside_the_checkout(clone, &path) {
        return Err(WorktreeError::InTheCheckout { dir: base, clone: clone.to_owned() });
    }
    if let Some(mut record) = record_of(&path) {
        if record.clone != clone {
            return Err(WorktreeError::InTheWay { path, clone: clone.to_owned() });
        }
        if record.commit != commit {
            reporter.info(format!("{git_ref} moved to {}: checking it out in {path}", short(&commit)));
            git(&path, &["checkout", "--quiet", "--detach", &commit])?;
            record.commit = commit;
        }
        record.last_used = now();
        save(&path, &record)?;
        return Ok(Worktree { path, record, created: false });
    }
    if path.exists() {
        return Err(WorktreeError::InTheWay { path, clone: clone.to_owned() });
    }
    std::fs::create_dir_all(&base).map_err(io("create the worktrees directory (--worktrees)", &base))?;
    // A worktree whose directory was deleted (`make clean` in the clone) is still registered.
    let _ = git(clone, &["worktree", "prune"]);
    reporter.info(format!("checking out {git_ref} ({}) as a git worktree in {path} (once)", short(&commit)));
    git(clone, &["worktree", "add", "--quiet", "--detach", path.as_str(), &commit])?;
    let path = path.canonicalize_utf8().map_err(io("resolve", &path))?;
    let record = Record { git_ref: git_ref.into(), commit, clone: clone.to_owned(), created: now(), last_used: now() };
    save(&path, &record)?;
    Ok(Worktree { path, record, created: true })
}

fn short(commit: &str) -> &str {
    &commit[..12.min(commit.len())]
}

/// A kdbg worktree as `kdbg worktrees` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: Utf8PathBuf,
    pub record: Record,
    /// Bytes on disk (checkout and `_output`).
    pub size: u64,
    /// Why it must stay: the debug sessions built from it, a kdbg building in it.
    pub in_use: Vec<String>,
}

/// The worktrees kdbg made of `clone` (wherever they are: git knows them all), with what uses
/// them according to this workstation's `state_dir`.
pub fn list(clone: &Utf8Path, state_dir: Option<&Utf8Path>) -> Result<Vec<Listed>, WorktreeError> {
    let porcelain = git(clone, &["worktree", "list", "--porcelain"])?;
    let uses = state_dir.map(uses::load).unwrap_or_default();
    let mut out = Vec::new();
    for path in porcelain.lines().filter_map(|l| l.strip_prefix("worktree ")).map(Utf8PathBuf::from) {
        let Some(record) = record_of(&path).filter(|r| r.clone == clone) else { continue };
        let mut in_use: Vec<String> =
            uses.iter().filter(|u| u.tree == path).map(|u| format!("{} on {}", u.component, u.node)).collect();
        if crate::lock::TreeLock::held(&path.join(STATE_DIR)) {
            in_use.push("a kdbg is building in it".into());
        }
        out.push(Listed { size: disk_usage(&path), path, record, in_use });
    }
    out.sort_by_key(|w| std::cmp::Reverse(w.record.last_used));
    Ok(out)
}

fn disk_usage(dir: &Utf8Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.as_std_path().to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// What `prune` did with one worktree.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub path: Utf8PathBuf,
    pub git_ref: String,
    /// `None`: removed (or would be, on a dry run); else why it was kept.
    pub kept: Option<String>,
}

/// Removes `clone`'s kdbg worktrees not used for `older_than`, except one in use (see [`list`])
/// or with changes of the user's own (edited or new files other than kdbg's IDE entries).
pub fn prune(
    clone: &Utf8Path,
    state_dir: Option<&Utf8Path>,
    older_than: Duration,
    dry_run: bool,
) -> Result<Vec<Pruned>, WorktreeError> {
    let cutoff = now().saturating_sub(older_than.as_secs());
    let mut out = Vec::new();
    for w in list(clone, state_dir)? {
        if w.record.last_used > cutoff {
            continue;
        }
        let kept = if !w.in_use.is_empty() {
            Some(format!("in use: {}", w.in_use.join(", ")))
        } else {
            own_changes(&w.path)?.map(|files| {
                format!("it has changes of yours ({files}); remove it yourself: git worktree remove --force {}", w.path)
            })
        };
        if kept.is_none() && !dry_run {
            git(clone, &["worktree", "remove", "--force", w.path.as_str()])?;
        }
        out.push(Pruned { path: w.path, git_ref: w.record.git_ref, kept });
    }
    Ok(out)
}

/// Files the user changed in a worktree (`git status`, ignoring kdbg's `.vscode` entries),
/// the first three named.
fn own_changes(path: &Utf8Path) -> Result<Option<String>, WorktreeError> {
    let status = git(path, &["status", "--porcelain", "--untracked-files=all"])?;
    let files: Vec<&str> = status
        .lines()
        .map(|l| l.get(3..).unwrap_or(l))
        .filter(|f| !matches!(*f, ".vscode/launch.json" | ".vscode/tasks.json"))
        .collect();
    Ok(match files.len() {
        0 => None,
        n if n > 3 => Some(format!("{}, and {} more", files[..3].join(", "), n - 3)),
        _ => Some(files.join(", ")),
    })
}

#[cfg(test)]
mod tests;
