//! `kdbg debug`, `kdbg status`, `kdbg restore`: their arguments and how their results are printed.

use crate::out::{errln, out, outln};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kdbg_core::component::Component;
use kdbg_core::crash::CrashAt;
use kdbg_core::deploy::DeployConfig;
use kdbg_core::ide::vscode;
use kdbg_core::node::target::Target;
use kdbg_core::node_lock::Locked;
use kdbg_core::session::debug::{self, DebugConfig, DebugOutcome, Timeouts};
use kdbg_core::session::journal::{self, now, since};
use kdbg_core::session::lease::{self, Standing};
use kdbg_core::session::restore::{self, RestoreConfig};
use kdbg_core::session::status;
use serde_json::json;

use crate::config::{
    node_refs, one_or_nodes, port, positive_seconds, seconds, shell_line, state_dir, target_args, LockArgs, MatchArgs,
    Resolved, Selection, TargetArgs,
};
use crate::lease::{parse_lease, LeaseArg};
use crate::render::Terminal;

const DEFAULT_STOP_TIMEOUT: u64 = 90;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg debug apiserver                                   # minikube; attach your IDE to localhost:2345
  kdbg debug scheduler --leader-elect=false --port 40000
  kdbg debug apiserver --target ssh://docker@192.168.49.2 --identity ~/.minikube/machines/minikube/id_rsa
  kdbg debug kubelet --wait-for-debugger --no-ide
  kdbg debug kubelet --target kind://dev --all-nodes     # every node; node i on localhost:PORT+100*i
  kdbg debug apiserver --target ssh://docker@10.0.0.1 --target ssh://docker@10.0.0.2
  kdbg debug apiserver --target kind://dev --match-node  # build the version the node runs
  kdbg debug scheduler --at v1.34.2                      # any tag or commit, from a git worktree
  kdbg debug apiserver --target kind://kind --dlv linux/arm64=~/go/bin/linux_arm64/dlv  # arm64 node
  kdbg debug kubelet --lease 30m                         # the node restores itself 30m unrenewed

Delve listens on a unix socket on the node that only the login user can reach (Delve ≥ 1.22.1;
older Delve: the node's 127.0.0.1), reached through an ssh tunnel from localhost:PORT; `kdbg
restore` puts the cluster back (from any workstation: the journal is on the node). Should this
workstation go away, the node puts itself back once the session's lease passes unrenewed, and
after a restart (systemd nodes).")]
pub struct DebugArgs {
    #[command(flatten)]
    pub sel: Selection,
    #[command(flatten)]
    pub matching: MatchArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Where the IDE attaches on this workstation (and Delve's port on the node when it listens on
    /// TCP); further components count up from it [default: per component, kube-apiserver 2345].
    #[arg(long, value_name = "PORT", value_parser = port())]
    pub port: Option<u16>,
    /// Do not write VSCode entries (.vscode/launch.json, tasks.json) in the tree.
    #[arg(long)]
    pub no_ide: bool,
    /// `--leader-elect=false`: run a controller-manager or scheduler without leader election, so a
    /// breakpoint does not lose its lease.
    #[arg(long = "leader-elect", value_name = "BOOL", require_equals = true)]
    pub leader_elect: Option<bool>,
    /// Start the component halted at its entry, until a debugger continues it.
    #[arg(long)]
    pub wait_for_debugger: bool,
    /// Let Delve listen on every interface of the node. DANGEROUS: Delve's API is unauthenticated
    /// remote code execution as root.
    #[arg(long)]
    pub expose: bool,
    /// Seconds to wait for the original component to stop before putting it back (at least 1:
    /// with 0 it could never be seen stopped).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_STOP_TIMEOUT, value_parser = positive_seconds())]
    pub stop_timeout: u64,
    /// How long the node waits without a word from a workstation before it puts itself back:
    /// e.g. 4h, 90m, 1h30m, or `none` (until `kdbg restore`). Renewed by every kdbg command that
    /// reaches the node (`kdbg renew`), and kept by `kdbg watch` and `kdbg trace` while they run.
    #[arg(long, value_name = "DURATION", default_value_t = LeaseArg::default(), value_parser = parse_lease)]
    pub lease: LeaseArg,
    /// Print the sessions as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kdbg status\n  kdbg status --target kind://dev --json\n  kdbg status --target kind://dev --all-nodes"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg restore                      # everything kdbg holds on the default target
  kdbg restore apiserver --target ssh://docker@192.168.49.2
  kdbg restore --target kind://dev --all-nodes      # each node, even when another fails

Safe to run again, and from another workstation: it reads only the node (its journal, and what
kdbg left there: manifests in /var/lib/kdbg/backup, debug processes), and says what it found.")]
pub struct RestoreArgs {
    /// Only these components [default: all that kdbg holds on the node].
    #[arg(value_name = "COMPONENT")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Seconds to wait for each original to run again.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = seconds())]
    pub timeout: u64,
    /// When the node's journal cannot be read: keep it aside (renamed, never deleted) and put back
    /// what kdbg left on the node, found by looking at it (backups, debug processes).
    #[arg(long)]
    pub from_node_state: bool,
    /// Keep what is in place now (a manifest you put back or edited by hand) instead of kdbg's
    /// copy of the original: stops Delve and the debug build, drops kdbg's copy, ends the session.
    #[arg(long)]
    pub keep_current: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// Every flag of this `kdbg debug` that shapes the session (components and `--port` aside: each
/// task names its own), so the VSCode tasks it writes run exactly this session again.
fn task_args(a: &DebugArgs) -> vscode::TaskArgs {
    let mut target = target_args(&a.target);
    for dlv in &a.target.dlv {
        target.extend(["--dlv".into(), dlv.to_string()]);
    }
    let mut build = Vec::new();
    if let Some(v) = &a.sel.src.kube_version {
        build.extend(["--kube-version".into(), v.clone()]);
    }
    if a.sel.optimized {
        build.push("--optimized".into());
    }
    let cache = &a.sel.cache;
    build.extend(cache.cache.iter().flat_map(|c| ["--cache".to_string(), c.clone()]));
    build.extend(cache.cache_ca.iter().flat_map(|c| ["--cache-ca".to_string(), c.to_string()]));
    build.extend(cache.no_cache.then(|| "--no-cache".to_string()));
    build.extend(cache.insecure.then(|| "--insecure".to_string()));
    let mut session = Vec::new();
    if let Some(b) = a.leader_elect {
        session.push(format!("--leader-elect={b}"));
    }
    for (set, flag) in [(a.wait_for_debugger, "--wait-for-debugger"), (a.expose, "--expose")] {
        if set {
            session.push(flag.into());
        }
    }
    if a.lease != LeaseArg::default() {
        session.extend(["--lease".into(), a.lease.to_string()]);
    }
    if a.stop_timeout != DEFAULT_STOP_TIMEOUT {
        session.extend(["--stop-timeout".into(), a.stop_timeout.to_string()]);
    }
    vscode::TaskArgs { target, build, session }
}

pub fn debug(args: DebugArgs, verbose: bool) -> anyhow::Result<()> {
    let nodes = args.target.nodes()?;
    let term = Terminal::new(verbose);
    let Resolved { tree, comps, build } = args.sel.resolve_on(&nodes, &args.matching, &term)?;
    let config = DebugConfig {
        deploy: DeployConfig { build, dlv: args.target.dlv_paths()? },
        port: args.port,
        leader_elect_false: args.leader_elect == Some(false),
        wait_for_debugger: args.wait_for_debugger,
        expose: args.expose,
        tunnel: !matches!(args.target.target(), Target::Local),
        local_shift: 0,
        timeouts: Timeouts { stop: Duration::from_secs(args.stop_timeout), ..Timeouts::default() },
        state_dir: state_dir(),
        ide: (!args.no_ide).then(|| task_args(&args)),
        crash: CrashAt::from_env(),
        lease: args.lease.0,
    };
    outln!("{}", vscode::START_MARKER);
    let locks = args.lock.acquire_all(&nodes, "debug", &comps, &term)?;
    let (refs, names) = node_refs(&nodes, &locks);
    let outcomes = debug::debug_nodes(&tree, &comps, &refs, &config, &term)
        .with_context(|| format!("failed to start debugging on {names}"))?;
    // The lease as the node holds it now (one round trip per node).
    let standings: Vec<Standing> = refs.iter().map(|(_, n)| lease::renew(n.node()).unwrap_or_default()).collect();
    let docs: Vec<_> = outcomes
        .iter()
        .zip(&refs)
        .zip(&standings)
        .map(|((o, (_, node)), standing)| {
            let ide = o.attach.ide.as_ref().map(|r| json!(r));
            let lease = crate::lease::standing_json(standing);
            json!({ "node": node.node().describe(), "sessions": o.sessions, "ide": ide, "steps": o.steps, "lease": lease })
        })
        .collect();
    if args.json {
        outln!("{}", one_or_nodes(docs));
    } else {
        for ((o, (_, node)), standing) in outcomes.iter().zip(&refs).zip(&standings) {
            let node = node.node().describe();
            out!("{}", render_debug(o, &node, &target_args(&args.target)));
            out!("{}", crate::lease::debug_lines(&node, standing));
        }
    }
    outln!("{}", vscode::READY_MARKER);
    Ok(())
}

fn render_debug(o: &DebugOutcome, node: &str, target: &[String]) -> String {
    let mut s = String::new();
    for x in &o.sessions {
        s += &format!(
            "{} runs under Delve on {node} at {} (arguments from {})\n",
            x.component, x.listen, x.captured_from
        );
        if let Some(why) = &x.tcp_because {
            s += &format!("  Delve listens on TCP: {why}\n");
        }
        s += &format!("  its output: {} on the node\n", x.log);
        match x.local_port {
            Some(p) => s += &format!("  dlv connect localhost:{p}\n"),
            None => s += &format!("  dlv connect {}\n", x.listen),
        }
    }
    s += &o.attach.instructions;
    if let Some(ide) = &o.attach.ide {
        s += &format!("VSCode: run \"kdbg: attach ...\" from {}\n", ide.launch);
    }
    s += &format!("when done: kdbg restore {}\n", shell_line(target));
    s
}

pub fn status(args: StatusArgs, _verbose: bool) -> anyhow::Result<()> {
    let nodes = args.target.nodes()?;
    let mut docs = Vec::new();
    for (_, t, node) in &nodes {
        let states = status::status(&**node, state_dir().as_deref())
            .with_context(|| format!("failed to read the debug sessions on {t}"))?;
        let look = lease::look(&**node).with_context(|| format!("failed to read the session's lease on {t}"))?;
        let ended = match state_dir() {
            Some(dir) => {
                // The journal `status` just read names the sessions that still run.
                let live: Vec<&str> = states.iter().map(|s| s.entry.component.as_str()).collect();
                status::stop_ended_tunnels(&**node, &dir, &live)?
            }
            None => Vec::new(),
        };
        if args.json {
            let lease = crate::lease::standing_json(&look.standing);
            let restored = crate::lease::restored_json(&look.restored);
            docs.push(
                json!({ "node": node.describe(), "components": states, "lease": lease, "restored_by_node": restored }),
            );
        } else {
            print_status(&node.describe(), &states, nodes.len() > 1)?;
            for line in crate::lease::status_lines(&node.describe(), &look) {
                outln!("{line}");
            }
            for (c, port) in ended {
                outln!("stopped this workstation's tunnel localhost:{port} for {c}: its session is over");
            }
            if let Some(holder) = kdbg_core::node_lock::holder(&**node) {
                outln!("{holder} holds {}'s lock: it is changing the node now", node.describe());
            }
        }
    }
    if args.json {
        outln!("{}", one_or_nodes(docs));
    }
    Ok(())
}

fn print_status(node: &str, states: &[status::ComponentStatus], heading: bool) -> anyhow::Result<()> {
    if states.is_empty() {
        outln!("nothing is under debug on {node}");
        return Ok(());
    }
    if heading {
        outln!("== {node}");
    }
    outln!("{:<24} {:<10} {:<18} {:<16} {:<10} PROGRAM", "COMPONENT", "STATE", "DELVE", "TUNNEL", "SINCE");
    for st in states {
        let e = &st.entry;
        let state = serde_json::to_value(e.state)?.as_str().unwrap_or_default().to_string();
        let tunnel = st.tunnel.map(|p| format!("localhost:{p}")).unwrap_or_else(|| "-".into());
        let delve = if st.dlv_up { e.listen.to_string() } else { format!("{} (down)", e.listen) };
        let when = since(e.started_at, now());
        let when = when.trim_start_matches("since ");
        outln!("{:<24} {state:<10} {delve:<18} {tunnel:<16} {when:<10} {}", e.component, st.program);
        outln!("{:<24} by {} (pid {}), arguments from {}", "", e.who.host, e.who.pid, e.captured_from);
        outln!("{:<24} {}", "", listen_line(st));
        if let Some(b) = &e.built_from {
            outln!("{:<24} {}", "", built_line(b));
        }
        if let Some(hint) = halted_hint(&e.component, &st.program) {
            outln!("{:<24} {hint}", "");
        }
    }
    Ok(())
}

/// For a halted program: how to let it run when a `kdbg trace` (`--stop`, or killed) left it so.
pub(crate) fn halted_hint(component: &str, program: &str) -> Option<String> {
    if !program.starts_with("halted") {
        return None;
    }
    let alias = kdbg_core::component::Component::lookup(component)
        .ok()
        .and_then(|c| c.aliases.first().copied())
        .unwrap_or(component);
    Some(format!(
        "halted: if a `kdbg trace` left it so (--stop, or a trace that was killed), `kdbg trace {alias} --clear` removes its breakpoints and lets it run; else continue it from your debugger"
    ))
}

/// `built from v1.20.1 (worktree at --at v1.20.1, commit 0123456789ab) in /src/k/_output/..., for
/// linux/arm64`.
fn built_line(b: &journal::BuiltFrom) -> String {
    let commit = b.commit.as_deref().map(|c| format!("commit {}", &c[..12.min(c.len())]));
    let at = b.at.as_deref().map(|r| format!("worktree at --at {r}"));
    let what: Vec<String> = at.into_iter().chain(commit).collect();
    let what = if what.is_empty() { String::new() } else { format!(" ({})", what.join(", ")) };
    let platform = b.platform.as_deref().map(|p| format!(", for {p}")).unwrap_or_default();
    format!("built from {}{what} in {}{platform}", b.version, b.tree)
}

/// `Delve listens on unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock (socket: only the login user
/// reaches it)` or `Delve listens on 127.0.0.1:2345 (TCP: Delve 1.20.2 has no unix sockets ...)`.
fn listen_line(st: &status::ComponentStatus) -> String {
    let e = &st.entry;
    match (&st.socket, &e.tcp_because) {
        (Some(_), _) => format!("Delve listens on {} (a socket only the login user can reach)", e.listen),
        (None, Some(why)) => format!("Delve listens on {} (TCP: {why})", e.listen),
        (None, None) => format!("Delve listens on {} (TCP)", e.listen),
    }
}

/// Restores every node given, each regardless of another's failure; fails if any failed.
pub fn restore(args: RestoreArgs, verbose: bool) -> anyhow::Result<()> {
    let comps = Component::resolve(&args.components)?;
    let nodes = args.target.nodes()?;
    let config = RestoreConfig {
        components: comps,
        back_timeout: Duration::from_secs(args.timeout),
        state_dir: state_dir(),
        crash: CrashAt::from_env(),
        owner: None,
        from_node_state: args.from_node_state,
        keep_current: args.keep_current,
    };
    let term = Terminal::new(verbose);
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for (_, t, node) in &nodes {
        let restored = args
            .lock
            .acquire(&**node, "restore", &config.components, &term)
            .and_then(|lock| Ok(restore::restore(Locked::new(&**node, &lock), &config, &term)?))
            .with_context(|| format!("failed to restore {t}"));
        let restored = match restored {
            Ok(r) => r,
            Err(e) if nodes.len() > 1 => {
                errln!("error: {e:#}");
                failed.push(t.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        if args.json {
            let list: Vec<_> = restored.iter().map(|r| json!({ "component": r.component, "done": r.done })).collect();
            docs.push(json!({ "node": node.describe(), "restored": list }));
        } else if restored.iter().all(|r| r.done.is_empty()) {
            outln!("nothing to restore on {}", node.describe());
        } else {
            for r in restored.iter().filter(|r| !r.done.is_empty()) {
                let on = if nodes.len() > 1 { format!(" on {}", node.describe()) } else { String::new() };
                outln!("{}{on}: {}", r.component, r.done.join("; "));
            }
        }
    }
    if args.json {
        outln!("{}", one_or_nodes(docs));
    }
    anyhow::ensure!(failed.is_empty(), "failed to restore {} (the other nodes are restored)", failed.join(", "));
    Ok(())
}
