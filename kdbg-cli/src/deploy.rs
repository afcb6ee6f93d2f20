//! `kdbg deploy` and `kdbg doctor`: their arguments (with the target flags every node command
//! shares) and how their results are printed.

use crate::out::{out, outln};
use anyhow::Context;
use clap::Args;
use kdbg_core::deploy::{self, DeployConfig, DeployOutcome};
use kdbg_core::doctor::{self, DoctorConfig, Status};
use kdbg_core::node::target::Target;
use serde_json::json;

use crate::config::{
    find_tree, node_refs, one_or_nodes, LockArgs, MatchArgs, Resolved, Selection, SrcArgs, TargetArgs, JSON_SCHEMA,
};
use crate::render::Terminal;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg deploy apiserver                                  # the default target, minikube
  kdbg deploy apiserver scheduler --target kind://dev
  kdbg deploy kubelet --target ssh://root@10.0.0.5:2222 --identity ~/.ssh/lab
  KDBG_TARGET=minikube://dev kdbg deploy cm --json
  kdbg deploy apiserver --target kind://dev --match-node  # the version the node runs, from a worktree

Binaries and dlv go to /var/lib/kdbg/bin on the node; only files whose sha256 differs are sent.")]
pub struct DeployArgs {
    #[command(flatten)]
    pub sel: Selection,
    #[command(flatten)]
    pub matching: MatchArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the outcome (each file's sha256, copied, bytes, seconds) as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg doctor                          # this machine and the default target, minikube
  kdbg doctor --target kind://dev
  kdbg doctor --target ssh://docker@192.168.49.2 --identity ~/.minikube/machines/minikube/id_rsa

Exits non-zero when any check fails; each failure names its fix.")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub src: SrcArgs,
    /// Print the checks as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn deploy(args: DeployArgs, verbose: bool) -> anyhow::Result<()> {
    let nodes = args.target.nodes()?;
    let term = Terminal::new(verbose);
    let Resolved { tree, comps, build } = args.sel.resolve_on(&nodes, &args.matching, &term)?;
    let config = DeployConfig { build, dlv: args.target.dlv_paths()? };
    let locks = args.lock.acquire_all(&nodes, "deploy", &comps, &term)?;
    let (refs, names) = node_refs(&nodes, &locks);
    let outcomes = deploy::deploy_nodes(&tree, &comps, &refs, &config, &term)
        .with_context(|| format!("failed to deploy to {names}"))?;
    if args.json {
        let docs = outcomes.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?;
        outln!("{}", one_or_nodes(docs));
    } else {
        outcomes.iter().for_each(|o| out!("{}", render(o)));
    }
    Ok(())
}

fn render(o: &DeployOutcome) -> String {
    let mut s = String::new();
    for f in &o.files {
        let sha = &f.sha256[..16.min(f.sha256.len())];
        let how = if f.copied {
            let pct = f.wire_bytes as f64 * 100.0 / f.file_bytes.max(1) as f64;
            let method = f.method.map(|m| serde_json::to_value(m).unwrap_or_default());
            let method = method.as_ref().and_then(|m| m.as_str()).unwrap_or("?");
            format!(
                "copied {} -> {} sent ({pct:.0}%, {method}) in {:.1}s",
                mb(f.file_bytes),
                mb(f.wire_bytes),
                f.seconds
            )
        } else {
            "already on the node".to_string()
        };
        s += &format!("{:<24} {how:<52} sha256:{sha}\n", f.name);
    }
    s += &format!(
        "{} ({}): {} in /var/lib/kdbg/bin; {} round trips ({} to decide), {} sent in {:.1}s\n",
        o.node,
        o.platform,
        o.files.len(),
        o.round_trips,
        o.decide_round_trips,
        mb(o.bytes_sent),
        o.seconds
    );
    s
}

fn mb(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}

pub fn doctor(args: DoctorArgs, _verbose: bool) -> anyhow::Result<()> {
    let t = &args.target;
    let config = DoctorConfig {
        dlv: t.dlv_paths()?,
        needs_ssh: matches!(t.target(), Target::Ssh { .. } | Target::Minikube { .. }),
        // Outside a tree the Go on PATH is checked; inside one, the Go its .go-version asks for.
        tree_root: find_tree(&args.src).ok().map(|t| t.root),
        go: args.src.go.clone(),
    };
    let mut checks = doctor::workstation(&config);
    let node = t.target().connect(&t.connect_options());
    checks.extend(doctor::node(&t.target().to_string(), node.as_ref().map(|n| &**n), &config));
    if args.json {
        outln!("{}", json!({ "schema": JSON_SCHEMA, "ok": doctor::all_ok(&checks), "checks": checks }));
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "✓",
                Status::Warn => "!",
                Status::Fail => "✗",
                Status::Skipped => "-",
            };
            outln!("{mark} {:<9} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                outln!("  {:<9} fix: {fix}", "");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    anyhow::ensure!(failed == 0, "{failed} check(s) failed; see the fixes above");
    Ok(())
}
