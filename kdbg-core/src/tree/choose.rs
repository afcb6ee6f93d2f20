//! Which tree a command builds: the one `--src` and friends find, or a worktree of its clone at
//! `--at`'s ref or at the version the nodes run (`--match-node`).

use camino::Utf8PathBuf;

use super::{SourceTree, TreeError, TreeSearch};
use crate::component::Component;
use crate::node::Node;
use crate::node_version::{self, MatchError};
use crate::report::Reporter;
use crate::worktree::{self, WorktreeError};

/// Which version of the found tree to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VersionChoice {
    /// The tree as it is checked out.
    #[default]
    Checkout,
    /// `--at REF`: a worktree of the tree's clone at that tag, branch or commit.
    At(String),
    /// `--match-node`: a worktree at the version the components run on the nodes.
    MatchNode,
}

/// The flags' values that choose the tree.
#[derive(Debug, Clone, Default)]
pub struct TreeConfig {
    /// Where to look for the tree (and, without a version of its own, which version it is).
    pub search: TreeSearch,
    pub version: VersionChoice,
    /// `--worktrees DIR`: where worktrees go [default: [`worktree::DEFAULT_DIR`] in the clone].
    pub worktrees: Option<Utf8PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("failed to find the kubernetes source tree")]
    Find(#[source] TreeError),
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    #[error(transparent)]
    Match(#[from] MatchError),
    #[error("--match-node needs a node and a component to read the version from")]
    NothingToMatch,
}

impl ChooseError {
    /// The class of the nodes' failure while reading their version; the rest are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            ChooseError::Match(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }
}

/// The tree `config` names, inspected. With `--at` or `--match-node` it is the worktree of the
/// found tree's clone at that ref (made once, reused after); `--match-node` reads the version
/// every one of `components` runs on every one of `nodes` (they must agree) and says which it
/// builds through `reporter`. A kdbg worktree's use is noted (for `kdbg worktrees prune`).
pub fn choose(
    config: &TreeConfig,
    nodes: &[&dyn Node],
    components: &[&'static Component],
    reporter: &dyn Reporter,
) -> Result<SourceTree, ChooseError> {
    let git_ref = match &config.version {
        VersionChoice::Checkout => None,
        VersionChoice::At(git_ref) => Some(git_ref.clone()),
        VersionChoice::MatchNode => Some(node_ref(nodes, components, reporter)?),
    };
    let mut search = config.search.clone();
    if let Some(git_ref) = git_ref {
        let clone = worktree::clone_of(&search.root().map_err(ChooseError::Find)?)?;
        let w = worktree::ensure(&clone, &git_ref, config.worktrees.as_deref(), reporter)?;
        // The worktree's own version (git describe), never the checkout's version file or flag.
        search = TreeSearch { explicit: Some(w.path), version_file: None, kube_version: None, ..search };
    }
    let tree = SourceTree::find(&search).map_err(ChooseError::Find)?;
    worktree::touch(&tree.root);
    Ok(tree)
}

/// The git ref of the one version `components` run on `nodes`, said through `reporter`.
fn node_ref(
    nodes: &[&dyn Node],
    components: &[&'static Component],
    reporter: &dyn Reporter,
) -> Result<String, ChooseError> {
    if nodes.is_empty() || components.is_empty() {
        return Err(ChooseError::NothingToMatch);
    }
    let found = node_version::matching(nodes, components)?;
    if let Some(w) = &found.warning {
        reporter.warn(w.clone());
    }
    let commit = (found.git_ref != found.version.text).then(|| format!(", built from {}", found.git_ref));
    reporter.info(format!("--match-node: {}{}", found.from, commit.unwrap_or_default()));
    Ok(found.git_ref)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Event;

    struct Quiet;
    impl Reporter for Quiet {
        fn report(&self, _: Event) {}
    }

    #[test]
    fn match_node_without_a_node_is_refused_before_looking_for_a_tree() {
        let config = TreeConfig { version: VersionChoice::MatchNode, ..Default::default() };
        let err = choose(&config, &[], &[], &Quiet).unwrap_err();
        assert!(matches!(err, ChooseError::NothingToMatch), "{err}");
    }

    #[test]
    fn a_tree_that_is_not_found_is_said_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = camino::Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let search = TreeSearch { explicit: Some(path), ..Default::default() };
        for version in [VersionChoice::Checkout, VersionChoice::At("v1.20.1".into())] {
            let config = TreeConfig { search: search.clone(), version, worktrees: None };
            let err = choose(&config, &[], &[], &Quiet).unwrap_err();
            let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
            assert_eq!(err.to_string(), "failed to find the kubernetes source tree");
            assert!(source.contains("is not a kubernetes source tree") && source.contains("--src"), "{source}");
        }
    }

    /// A kubernetes-looking git clone with tags v1.20.1 and v1.20.2 (HEAD).
    fn clone() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("kubernetes")).unwrap();
        std::fs::create_dir_all(root.join("hack/lib")).unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"])
                .args(args)
                .current_dir(&root)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        std::fs::write(root.join(".gitignore"), "/_output/\n").unwrap();
        std::fs::write(root.join("Makefile"), "all:\n").unwrap();
        std::fs::write(root.join("hack/lib/golang.sh"), "# v1.20.1\n").unwrap();
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "old"]);
        git(&["tag", "v1.20.1"]);
        std::fs::write(root.join("hack/lib/golang.sh"), "# v1.20.2\n").unwrap();
        git(&["commit", "-qam", "new"]);
        git(&["tag", "v1.20.2"]);
        (dir, root.canonicalize_utf8().unwrap())
    }

    #[test]
    fn at_builds_a_worktree_of_the_clone_at_its_own_version_and_checkout_the_tree_itself() {
        let (_d, root) = clone();
        // The checkout's version flag is the checkout's: never the worktree's.
        let search =
            TreeSearch { explicit: Some(root.clone()), kube_version: Some("v1.20.9".into()), ..Default::default() };
        let at = TreeConfig { search: search.clone(), version: VersionChoice::At("v1.20.1".into()), worktrees: None };
        let tree = choose(&at, &[], &[], &Quiet).unwrap();
        assert_eq!(tree.root, root.join(worktree::DEFAULT_DIR).join("v1.20.1"));
        assert_eq!((tree.version.text.as_str(), tree.at.as_deref()), ("v1.20.1", Some("v1.20.1")));
        assert_eq!(std::fs::read_to_string(tree.root.join("hack/lib/golang.sh")).unwrap(), "# v1.20.1\n");

        let checkout = TreeConfig { search, version: VersionChoice::Checkout, worktrees: None };
        let tree = choose(&checkout, &[], &[], &Quiet).unwrap();
        assert_eq!((tree.root, tree.version.text.as_str(), tree.at), (root, "v1.20.9", None));
    }
}
