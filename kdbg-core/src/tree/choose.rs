//! Which tree a command builds: the one `--src` and friends find, or a worktree of its clone at
//! `--at`'s ref or at the version the nodes run (`--match-node`).

use camino::Utf8PathBuf;

use super::{SourceTree, TreeError, TreeSearch};
use crate::component::Component;
use crate::node::Node;
use crate::report::Reporter;
use crate::session::version::{self, MatchError};
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
    let found = version::matching(nodes, components)?;
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
}
