//! `kdbg vscode`: writes VSCode's launch/tasks entries for components, with the source mapping
//! read from their built binaries, and prints how other editors attach.

use crate::out::{errln, out, outln};
use anyhow::{bail, Context};
use clap::Args;
use kdbg_core::component::Component;
use kdbg_core::ide::{self, vscode};

use kdbg_core::build;
use kdbg_core::flags::Profile;

use crate::config::{find_tree, SrcArgs};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kdbg vscode apiserver\n  kdbg vscode apiserver scheduler --target kind://dev\n  kdbg vscode apiserver --port 40000"
)]
pub struct VscodeArgs {
    /// Components (built already, by `kdbg build` or `kdbg debug`).
    #[arg(required = true, value_name = "COMPONENT")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub src: SrcArgs,
    /// The port dlv is reachable on at 127.0.0.1 (one component only) [default: the component's
    /// port, see `kdbg components`].
    #[arg(long, value_name = "N", value_parser = crate::config::port())]
    pub port: Option<u16>,
    /// The target the generated tasks pass to kdbg [default: none, so $KDBG_TARGET or minikube].
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
}

pub fn run(args: VscodeArgs, verbose: bool) -> anyhow::Result<()> {
    let comps = Component::resolve(&args.components)?;
    if args.port.is_some() && comps.len() > 1 {
        bail!(
            "--port names one dlv port, but {} components were given; run kdbg vscode once per component",
            comps.len()
        );
    }
    let tree = find_tree(&args.src)?;
    let mut entries = Vec::new();
    let mut others = Vec::new();
    for c in &comps {
        let binary = build::binary_path(&tree, &args.src.build_config(Profile::Debug), c.name)?;
        if !binary.is_file() {
            let alias = c.aliases.first().copied().unwrap_or(c.name);
            bail!("{} is not built in {} ({binary} is missing); run kdbg build {alias} first", c.name, tree.root);
        }
        let port = args.port.unwrap_or(c.default_port);
        let (entry, recorded, mapping) = vscode::entry(c.name, port, &binary, &tree.root)
            .with_context(|| format!("failed to read where {} recorded its sources", c.name))?;
        let root = if recorded.root_prefix.is_empty() { "paths relative to the tree" } else { &recorded.root_prefix };
        outln!("{}: the binary records the tree as {root} ({} substitutePath rules)", c.name, mapping.rules.len());
        if recorded.optimizations_disabled == Some(false) {
            errln!("warning: {} was built with optimizations; variables may show as unavailable (kdbg build builds with -N -l unless --optimized)", c.name);
        }
        if !mapping.unmapped.is_empty() {
            errln!(
                "warning: no path rule fits {} recorded files of {}, e.g. {}; breakpoints there may not bind",
                mapping.unmapped.len(),
                c.name,
                mapping.unmapped[0]
            );
        }
        others.push(ide::other_editors(c.name, port, &tree.root, &entry.substitute_from_to));
        entries.push(entry);
    }
    let target: Vec<String> = args.target.iter().flat_map(|t| ["--target".to_string(), t.clone()]).collect();
    let mut build = Vec::new();
    if let Some(v) = &args.src.kube_version {
        build.extend(["--kube-version".to_string(), v.clone()]);
    }
    let report = vscode::write(&tree.root, &entries, &vscode::TaskArgs { target, build, session: Vec::new() })?;
    for f in [&report.launch, &report.tasks] {
        let how = if report.files_changed.contains(f) { "wrote" } else { "up to date" };
        outln!("{how:<10} {f}");
    }
    let first = &comps[0].name;
    outln!("in VSCode: Run and Debug > \"{}\" (F5) builds, deploys and attaches", vscode::launch_name(first));
    if verbose {
        for text in others {
            out!("{text}");
        }
    } else {
        outln!("other editors and dlv connect: kdbg vscode -v");
    }
    Ok(())
}
