//! What every subcommand shares: the flags naming the tree, components and target (flattened
//! into each subcommand's arguments), and their one-time conversion into kdbg-core's config.
//! Subcommand modules import from here, never from each other.

use anyhow::Context;
use camino::Utf8PathBuf;
use clap::Args;
use kdbg_core::build::BuildConfig;
use kdbg_core::component::Component;
use kdbg_core::node::target::{ConnectOptions, Target};
use kdbg_core::node::Node;
use kdbg_core::node_lock::{Locked, NodeLock};
use kdbg_core::tree::{self, SourceTree, TreeConfig, TreeSearch, VersionChoice};

use crate::render::Terminal;

/// Which components of which tree, built how.
#[derive(Debug, Args)]
pub struct Selection {
    /// Components: kube-apiserver (apiserver), kube-controller-manager (controller-manager, cm),
    /// kube-scheduler (scheduler), kubelet, kube-proxy (proxy).
    #[arg(required = true, value_name = "COMPONENT")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub src: SrcArgs,
    /// Keep compiler optimisations (only keep DWARF); default is -N -l, every variable visible.
    #[arg(long)]
    pub optimized: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl Selection {
    pub fn profile(&self) -> kdbg_core::flags::Profile {
        if self.optimized {
            kdbg_core::flags::Profile::Optimized
        } else {
            kdbg_core::flags::Profile::Debug
        }
    }
}

#[derive(Debug, Args)]
pub struct SrcArgs {
    /// The kubernetes source tree [default: $KDBG_SRC, the current directory, $GOPATH/src/k8s.io/kubernetes].
    #[arg(long, value_name = "DIR")]
    pub src: Option<Utf8PathBuf>,
    /// The tree's version when it has no git history and no KUBE_GIT_VERSION_FILE (e.g. v1.20.2).
    #[arg(long, value_name = "vX.Y.Z")]
    pub kube_version: Option<String>,
    /// The Go to build with: a go binary, its bin directory or a GOROOT [default: the tree's
    /// .go-version matched against the go on PATH, $GOROOT, ~/sdk/go*, the module cache's toolchains].
    #[arg(long, env = "KDBG_GO", value_name = "PATH")]
    pub go: Option<Utf8PathBuf>,
    /// Always build through make, never by replaying make's captured `go` calls.
    #[arg(long)]
    pub via_make: bool,
    /// Build another version of the tree: a tag, branch or commit of its git clone, checked out
    /// once as a git worktree (see `kdbg worktrees`) with its own _output, cache and Go; your
    /// checkout is never touched.
    #[arg(long, value_name = "REF")]
    pub at: Option<String>,
    /// Where `--at` puts its worktrees [default: the clone's _output/kdbg/worktrees].
    #[arg(long, env = "KDBG_WORKTREES", value_name = "DIR")]
    pub worktrees: Option<Utf8PathBuf>,
    /// The platform to build for when no node decides (build, cache-key, plan), e.g. linux/arm64
    /// [default: the Go toolchain's own; linux/<arch> on a macOS workstation]. On a node, its
    /// platform decides.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<kdbg_core::platform::Platform>,
    /// Build the components this tree links with cgo (the kubelet of older trees) static, through
    /// its KUBE_STATIC_OVERRIDES: for another platform without its C cross compiler.
    #[arg(long = "static")]
    pub static_cgo: bool,
}

/// The team cache: where to pull debug builds from before building them here.
#[derive(Debug, Default, Args)]
pub struct CacheArgs {
    /// A team cache on an OCI registry: on a miss, pull the component's debug build by its key
    /// before building it here [default: $KDBG_CACHE, else `url` under [cache] in
    /// ~/.config/kdbg/config.toml; none].
    #[arg(long, env = "KDBG_CACHE", value_name = "oci://HOST[:PORT]/REPO")]
    pub cache: Option<String>,
    /// Use no team cache, whatever the environment or configuration names.
    #[arg(long)]
    pub no_cache: bool,
    /// Allow plain HTTP (and unverified TLS) to a team cache that is not on loopback.
    #[arg(long)]
    pub insecure: bool,
    /// A CA certificate (PEM) to trust for the team cache, besides the system's (and $SSL_CERT_FILE).
    #[arg(long, value_name = "FILE")]
    pub cache_ca: Option<Utf8PathBuf>,
}

impl CacheArgs {
    /// The team cache these flags, the environment and the configuration file name (`--push`
    /// is the build command's, set on the result).
    pub fn settings(&self) -> anyhow::Result<Option<kdbg_core::cache::remote::RemoteSettings>> {
        let flags = kdbg_core::cache::remote::CacheFlags {
            url: self.cache.clone(),
            no_cache: self.no_cache,
            push: false,
            insecure: self.insecure,
            ca_file: self.cache_ca.clone(),
        };
        Ok(kdbg_core::cache::remote::settings::resolve(&flags)?)
    }
}

impl SrcArgs {
    /// The build these flags ask for, without the team cache (see [`CacheArgs::settings`]).
    pub fn build_config(&self, profile: kdbg_core::flags::Profile) -> kdbg_core::build::BuildConfig {
        kdbg_core::build::BuildConfig {
            profile,
            go: self.go.clone(),
            via_make: self.via_make,
            platform: self.platform.clone(),
            static_cgo: self.static_cgo,
            cache: None,
        }
    }
}

/// Which node, and how to log in to it.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The node: minikube | minikube://PROFILE | kind://CLUSTER[/NODE] | ssh://USER@HOST[:PORT] | local.
    /// deploy, debug, status and restore take it several times, one node each.
    #[arg(long = "target", env = "KDBG_TARGET", default_value = "minikube", value_name = "TARGET")]
    pub targets: Vec<Target>,
    /// Every node of a kind://CLUSTER target (each node container of the cluster), for deploy,
    /// debug, status and restore; ssh:// targets are the nodes given with --target.
    #[arg(long)]
    pub all_nodes: bool,
    /// Private key for ssh:// (and minikube) targets [default: ssh's own choice, ~/.ssh/config].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<Utf8PathBuf>,
    /// An option for ssh, passed as `-o OPT` before kdbg's own (repeatable).
    #[arg(long = "ssh-option", value_name = "OPT")]
    pub ssh_options: Vec<String>,
    /// The dlv to install on the node, for every node (PATH) or for nodes of one platform
    /// (linux/arm64=PATH; repeatable) [default: the closest release that can read the binaries,
    /// of $KDBG_DLV_<OS>_<ARCH>, ~/go/bin/<os>_<arch>/dlv, and for this machine's platform dlv
    /// on PATH, $GOPATH/bin/dlv, ~/go/bin/dlv].
    #[arg(long, env = "KDBG_DLV", value_name = "[OS/ARCH=]PATH")]
    pub dlv: Vec<String>,
}

impl TargetArgs {
    /// The Delves `--dlv` named.
    pub fn dlv_paths(&self) -> anyhow::Result<kdbg_core::deploy::DlvPaths> {
        let mut paths = kdbg_core::deploy::DlvPaths::default();
        for d in &self.dlv {
            paths.add(d).map_err(|e| anyhow::anyhow!("--dlv {d}: {e}"))?;
        }
        Ok(paths)
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions { identity: self.identity.clone(), ssh_options: self.ssh_options.clone() }
    }

    /// The first (for commands of one node, the only) `--target`.
    pub fn target(&self) -> &Target {
        &self.targets[0]
    }

    /// The one node of a command that works on one node at a time.
    pub fn connect(&self) -> anyhow::Result<Box<dyn Node>> {
        if self.targets.len() > 1 || self.all_nodes {
            anyhow::bail!(
                "this command works on one node at a time; name it with one --target (e.g. kind://CLUSTER/NODE)"
            );
        }
        Ok(self.target().connect(&self.connect_options())?)
    }

    /// The nodes of `--target`s (with `--all-nodes`, a kind cluster's every node): `(name in step
    /// ids, target, node)`. A node named twice, in any spelling, is an error.
    pub fn nodes(&self) -> anyhow::Result<Vec<NamedNode>> {
        let mut out: Vec<NamedNode> = Vec::new();
        for t in &self.targets {
            for t in t.expand(self.all_nodes)? {
                let name = t.node_name();
                if let Some((_, first, _)) = out.iter().find(|(_, o, _)| o.identity() == t.identity()) {
                    anyhow::bail!("the node {name} is named twice (--target {first} and --target {t} are one node)");
                }
                let node = t.connect(&self.connect_options())?;
                out.push((name, t, node));
            }
        }
        Ok(out)
    }
}

/// A node of a command on several: its name in step ids, its target, the node.
pub type NamedNode = (String, Target, Box<dyn Node>);

/// `(name in step ids, node)` of each node, and their targets for messages (`a, b`).
pub fn node_refs<'a>(nodes: &'a [NamedNode], locks: &'a [NodeLock]) -> (Vec<(String, Locked<'a>)>, String) {
    let refs = nodes.iter().zip(locks).map(|((n, _, node), lock)| (n.clone(), Locked::new(&**node, lock))).collect();
    let names = nodes.iter().map(|(_, t, _)| t.to_string()).collect::<Vec<_>>().join(", ");
    (refs, names)
}

/// One node's `--json` document with `schema` added, or `{"schema", "nodes": [...]}` for several.
pub fn one_or_nodes(mut docs: Vec<serde_json::Value>) -> serde_json::Value {
    if docs.len() == 1 {
        let mut doc = docs.remove(0);
        doc["schema"] = serde_json::json!(JSON_SCHEMA);
        return doc;
    }
    serde_json::json!({ "schema": JSON_SCHEMA, "nodes": docs })
}

/// How to meet another kdbg that is changing the same node.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Fail at once, naming it, when another kdbg is changing the node [default: wait for it].
    #[arg(long)]
    pub no_wait: bool,
}

impl LockArgs {
    /// Takes the node's lock for `verb components...` (`kdbg status` never does).
    pub fn acquire(
        &self,
        node: &dyn Node,
        verb: &str,
        comps: &[&Component],
        term: &Terminal,
    ) -> anyhow::Result<NodeLock> {
        let names: Vec<&str> = comps.iter().map(|c| c.name).collect();
        let command = [verb].into_iter().chain(names).collect::<Vec<_>>().join(" ");
        Ok(NodeLock::acquire(node, &command, !self.no_wait, term)?)
    }

    /// [`LockArgs::acquire`] on every node, in order.
    pub fn acquire_all(
        &self,
        nodes: &[NamedNode],
        verb: &str,
        comps: &[&Component],
        term: &Terminal,
    ) -> anyhow::Result<Vec<NodeLock>> {
        nodes.iter().map(|(_, _, node)| self.acquire(&**node, verb, comps, term)).collect()
    }
}

/// The workstation's state directory: `$KDBG_STATE_DIR`, `$XDG_STATE_HOME/kdbg`, `~/.local/state/kdbg`.
pub fn state_dir() -> Option<Utf8PathBuf> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
    var("KDBG_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("kdbg")))
        .or_else(|| kdbg_core::host::home_dir().map(|h| h.join(".local/state/kdbg")))
}

/// `--target T [--identity F] [--ssh-option O]...`, to repeat in messages and VSCode tasks.
pub fn target_args(t: &TargetArgs) -> Vec<String> {
    let mut out: Vec<String> = t.targets.iter().flat_map(|x| ["--target".to_string(), x.to_string()]).collect();
    if t.all_nodes {
        out.push("--all-nodes".into());
    }
    if let Some(id) = &t.identity {
        out.extend(["--identity".into(), id.to_string()]);
    }
    for o in &t.ssh_options {
        out.extend(["--ssh-option".into(), o.clone()]);
    }
    out
}

/// Version of every `--json` document kdbg prints; 2 added `build --json`'s per-component `via`;
/// 3 numbers `trace --json`'s waypoints from 1 (`hits[].waypoint`, `resolved`, `unresolved`).
pub const JSON_SCHEMA: u32 = 3;

/// Arguments as one line a shell reads back as the same words (a path with a space, a quote).
pub fn shell_line(args: &[String]) -> String {
    args.iter().map(|a| kdbg_core::node::sh_quote(a)).collect::<Vec<_>>().join(" ")
}

/// A TCP port to listen on: 0 would let the system pick one nobody is told about.
pub fn port() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..)
}

/// A wait in seconds that must pass at all: 1 to a day.
pub fn positive_seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=86_400)
}

/// A wait in seconds, at most a day (a larger one overflowed the deadline).
pub fn seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(..=86_400)
}

/// The components, tree and build config of a [`Selection`], resolved once per command.
pub struct Resolved {
    pub tree: SourceTree,
    pub comps: Vec<&'static Component>,
    pub build: BuildConfig,
}

impl Selection {
    /// Resolves components first (a typo should not wait for tree inspection), then the tree
    /// (with `--at`, the worktree at that ref).
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        self.resolve_with(self.src.tree_config(), &[], &Terminal::new(false))
    }

    /// [`Selection::resolve`] for a command on `nodes`: with `--match-node`, the tree is a
    /// worktree at the version the nodes run.
    pub fn resolve_on(&self, nodes: &[NamedNode], m: &MatchArgs, term: &Terminal) -> anyhow::Result<Resolved> {
        let mut config = self.src.tree_config();
        if m.match_node {
            config.version = VersionChoice::MatchNode;
        }
        let refs: Vec<&dyn Node> = nodes.iter().map(|(_, _, n)| &**n).collect();
        self.resolve_with(config, &refs, term)
    }

    fn resolve_with(&self, config: TreeConfig, nodes: &[&dyn Node], term: &Terminal) -> anyhow::Result<Resolved> {
        let comps = Component::resolve(&self.components)?;
        let tree = tree::choose(&config, nodes, &comps, term)?;
        let mut build = self.src.build_config(self.profile());
        build.cache = self.cache.settings()?;
        Ok(Resolved { tree, comps, build })
    }
}

/// `--match-node` of the commands that change nodes.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Build the version the node runs (its binary's --version, else its image tag, else the
    /// kubelet's version) from a git worktree of your clone, as `--at v<version>` would.
    #[arg(long, conflicts_with = "at")]
    pub match_node: bool,
}

/// The tree of `--src` and friends; with `--at`, the worktree of its clone at that ref.
pub fn find_tree(src: &SrcArgs) -> anyhow::Result<SourceTree> {
    Ok(tree::choose(&src.tree_config(), &[], &[], &Terminal::new(false))?)
}

/// Where the tree of `--src` and friends is, without inspecting it.
pub fn tree_root(src: &SrcArgs) -> anyhow::Result<Utf8PathBuf> {
    src.search().root().context("failed to find the kubernetes source tree")
}

impl SrcArgs {
    /// The flags' values (and the environment they default to) that choose the tree.
    fn tree_config(&self) -> TreeConfig {
        let version = self.at.clone().map_or(VersionChoice::Checkout, VersionChoice::At);
        TreeConfig { search: self.search(), version, worktrees: self.worktrees.clone() }
    }

    fn search(&self) -> TreeSearch {
        let env_path = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
        let cwd = std::env::current_dir().ok().and_then(|d| Utf8PathBuf::from_path_buf(d).ok());
        let gopath = env_path("GOPATH").or_else(|| kdbg_core::host::home_dir().map(|h| h.join("go")));
        TreeSearch {
            explicit: self.src.clone(),
            env_src: env_path("KDBG_SRC"),
            cwd,
            gopath,
            kube_version: self.kube_version.clone(),
            version_file: env_path("KUBE_GIT_VERSION_FILE"),
        }
    }
}
