//! Exit classes: what kind of failure a core error is, so the CLI picks its documented process
//! exit code (`kdbg --help`) from the library's own word, never by knowing the error types.
//!
//! Each core error type whose failures are not all plain failures says its class with an
//! `exit_class()` method beside it; an error that wraps another asks the wrapped one.
//! [`ExitClass::of`] walks an error and its sources and takes the first class that is not
//! [`ExitClass::Failure`].

use std::error::Error;

/// What kind of failure ended a command; the CLI maps each to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// Anything else: the message says what went wrong and what to do.
    Failure,
    /// Bad usage: an unknown component.
    BadUsage,
    /// The build failed (make, or its output missing).
    BuildFailed,
    /// The target node could not be reached or refused an action.
    NodeFailed,
}

impl ExitClass {
    /// The class of `error`: the first of it and its sources that has one other than
    /// [`ExitClass::Failure`].
    pub fn of(error: &(dyn Error + 'static)) -> ExitClass {
        let mut cause = Some(error);
        while let Some(e) = cause {
            match class_of(e) {
                ExitClass::Failure => cause = e.source(),
                class => return class,
            }
        }
        ExitClass::Failure
    }
}

/// The class one error says of itself (not looking at its sources).
fn class_of(e: &(dyn Error + 'static)) -> ExitClass {
    macro_rules! ask {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = e.downcast_ref::<$t>() {
                return e.exit_class();
            })*
        };
    }
    ask!(
        crate::component::UnknownComponent,
        crate::node::NodeError,
        crate::build::BuildError,
        crate::deploy::DeployError,
        crate::session::SessionError,
        crate::session::debug::DebugError,
        crate::node_version::MatchError,
        crate::watch::WatchError,
        crate::trace::TraceError,
        crate::tree::ChooseError,
    );
    ExitClass::Failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildError;
    use crate::deploy::DeployError;
    use crate::node::NodeError;
    use crate::session::debug::DebugError;
    use crate::session::SessionError;

    fn unreachable() -> NodeError {
        NodeError::Unreachable { node: "n1".into(), detail: "no route".into(), fix: "check it".into() }
    }

    fn make_failed() -> BuildError {
        BuildError::Make { root: "/k".into(), tail: "boom".into() }
    }

    /// An error of another library around a core error, as the CLI's context adds one.
    #[derive(Debug, thiserror::Error)]
    #[error("failed to debug")]
    struct Context(#[source] Box<dyn Error + Send + Sync>);

    #[test]
    fn each_documented_class_comes_from_the_error_that_says_it() {
        let unknown = crate::component::UnknownComponent { name: "etcd".into() };
        assert_eq!(ExitClass::of(&unknown), ExitClass::BadUsage);
        assert_eq!(ExitClass::of(&make_failed()), ExitClass::BuildFailed);
        assert_eq!(
            ExitClass::of(&BuildError::NoOutput { path: "/k/x".into(), what: "cmd/x".into() }),
            ExitClass::BuildFailed
        );
        assert_eq!(ExitClass::of(&unreachable()), ExitClass::NodeFailed);
        assert_eq!(ExitClass::of(&DeployError::Node(unreachable())), ExitClass::NodeFailed);
        assert_eq!(ExitClass::of(&DeployError::Build(make_failed())), ExitClass::BuildFailed);
        assert_eq!(ExitClass::of(&SessionError::Node(unreachable())), ExitClass::NodeFailed);
    }

    #[test]
    fn a_replay_that_failed_and_other_errors_are_plain_failures() {
        let replay = BuildError::Replay { root: "/k".into(), tail: "boom".into() };
        assert_eq!(ExitClass::of(&replay), ExitClass::Failure);
        assert_eq!(ExitClass::of(&DeployError::Build(replay)), ExitClass::Failure);
        let earlier = DeployError::DlvOnNode { node: "n1".into(), detail: "exec format error".into() };
        assert_eq!(ExitClass::of(&earlier), ExitClass::Failure);
        let tunnel = SessionError::Tunnel { component: "kube-apiserver".into(), detail: "refused".into() };
        assert_eq!(ExitClass::of(&DebugError::Session(tunnel)), ExitClass::Failure);
    }

    #[test]
    fn a_wrapper_says_the_class_of_what_it_wraps_through_sources_and_transparent_variants() {
        let debug = DebugError::Session(SessionError::Node(unreachable()));
        assert_eq!(ExitClass::of(&Context(Box::new(debug))), ExitClass::NodeFailed);
        // Transparent variants forward `source()` past the wrapped error; its class still counts.
        let built = DebugError::Deploy(DeployError::Build(make_failed()));
        assert_eq!(ExitClass::of(&built), ExitClass::BuildFailed);
        let traced = crate::trace::TraceError::Node(unreachable());
        assert_eq!(ExitClass::of(&Context(Box::new(traced))), ExitClass::NodeFailed);
    }
}
