//! `kdbg-testnode`: bring a test node up or down by hand, run commands in it, and
//! (inside a node) its init process and static-pod runner.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kdbg_tests::layout::Layout;
use kdbg_tests::runner::{self, RunnerOptions};
use kdbg_tests::{init, node, sys, teardown, NodeInfo, TestNode, TestNodeConfig};

#[derive(Parser)]
#[command(name = "kdbg-testnode", about = "A minikube-like test node in a network namespace (needs root)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring a node up and leave it running (until `down`).
    Up {
        #[arg(long, default_value = "node")]
        name: String,
        /// Hostname inside the node (default: the name).
        #[arg(long)]
        hostname: Option<String>,
        /// Print the node's details as JSON.
        #[arg(long)]
        json: bool,
        /// Stay in the foreground; tear the node down on SIGTERM or Ctrl-C (if
        /// killed outright, the node's processes end and the next `up` or
        /// `down` removes the rest).
        #[arg(long)]
        foreground: bool,
    },
    /// Tear a node down (idempotent).
    Down {
        #[arg(long, default_value = "node", conflicts_with = "all")]
        name: String,
        /// Tear down every node of this host, also those of running tests.
        #[arg(long)]
        all: bool,
    },
    /// List the nodes of this host.
    List,
    /// Run a command inside a node (as root, in its namespaces).
    Exec {
        #[arg(long, default_value = "node")]
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The static-pod runner (a kubelet stand-in); runs inside a node.
    Runner {
        #[arg(long)]
        manifests: PathBuf,
        /// Directory of the pods' logs (`<pod-name>.log`).
        #[arg(long)]
        log: PathBuf,
        /// Where to write the pods' state as JSON.
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        #[arg(long, default_value_t = 1000)]
        backoff_ms: u64,
        #[arg(long, default_value_t = 5000)]
        grace_ms: u64,
    },
    /// The node's init process (started by `up`).
    #[command(hide = true)]
    NodeInit {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        watch_stdin: bool,
    },
    /// Accept TCP connections on ADDR, greeting each with a line (a test helper).
    #[command(hide = true)]
    Listen {
        #[arg(long)]
        addr: String,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse().command) {
        eprintln!("kdbg-testnode: {e:#}");
        std::process::exit(1);
    }
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Up { name, hostname, json, foreground } => up(name, hostname, json, foreground),
        Cmd::Down { name, all } => {
            sys::require_root()?;
            let names = if all { teardown::list_nodes() } else { vec![name] };
            for name in names {
                teardown::by_name(&name)?;
            }
            Ok(())
        }
        Cmd::List => {
            for name in teardown::list_nodes() {
                match NodeInfo::load(&Layout::for_name(&name)) {
                    Ok(info) => {
                        let state = if teardown::is_stale(&info) { "stale" } else { "up" };
                        println!("{name}\t{}\t{state}", info.ssh_target);
                    }
                    Err(_) => println!("{name}\t-\tincomplete"),
                }
            }
            Ok(())
        }
        Cmd::Exec { name, command } => {
            sys::require_root()?;
            let info = NodeInfo::load(&Layout::for_name(&name))?;
            let pid = info.init_pid.filter(|&p| sys::same_process(p, info.init_start));
            let Some(pid) = pid else {
                bail!("node {name} is not running");
            };
            let err = node::nsenter(pid, &command[0]).args(&command[1..]).exec();
            Err(err).context("exec nsenter")
        }
        Cmd::Runner { manifests, log, state, poll_ms, backoff_ms, grace_ms } => {
            let mut opts = RunnerOptions::new(manifests, log);
            opts.state = state;
            opts.poll = Duration::from_millis(poll_ms);
            opts.backoff = Duration::from_millis(backoff_ms);
            opts.grace = Duration::from_millis(grace_ms);
            runner::run(opts)
        }
        Cmd::NodeInit { state, watch_stdin } => init::run(&state, watch_stdin),
        Cmd::Listen { addr } => {
            let listener = TcpListener::bind(&addr).with_context(|| format!("bind {addr}"))?;
            // The pid is the one inside the node, for `kill PID` there.
            println!("listening on {} pid {}", listener.local_addr()?, std::process::id());
            std::io::stdout().flush()?;
            for stream in listener.incoming() {
                let _ = stream.and_then(|mut s| s.write_all(b"kdbg-testnode\n"));
            }
            Ok(())
        }
    }
}

fn up(name: String, hostname: Option<String>, json: bool, foreground: bool) -> Result<()> {
    let mut config = TestNodeConfig::new(name).bin(std::env::current_exe()?);
    config.detached = !foreground;
    config.hostname = hostname;
    if foreground {
        init::install_stop_handler();
    }
    let node = TestNode::up(config)?;
    let ssh_args = node.ssh_args();
    let info = node.info().clone();
    print_info(&info, &ssh_args, json)?;
    if foreground {
        while !init::stop_requested() {
            std::thread::sleep(Duration::from_millis(100));
        }
        return node.down();
    }
    node.detach();
    Ok(())
}

fn print_info(info: &NodeInfo, ssh_args: &[String], json: bool) -> Result<()> {
    if json {
        let mut value = serde_json::to_value(info)?;
        value["ssh_args"] = serde_json::to_value(ssh_args)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("node {} is up: {}", info.name, info.ssh_target);
        println!("  ssh {} {}@{}", ssh_args.join(" "), info.user, info.ip);
        println!("  node files: {}", info.root.display());
        println!("  inside: kdbg-testnode exec --name {} -- sh", info.name);
        println!("  remove: kdbg-testnode down --name {}", info.name);
    }
    std::io::stdout().flush()?;
    Ok(())
}
