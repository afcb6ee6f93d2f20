//! The deploy plan's data flow on a fake node: each step is handed the typed outputs of the steps
//! it depends on (copy:dlv the Delve that choose-dlv chose), and a failed build is reported by
//! its build step and stops every step after it.

use std::sync::Mutex;

use camino::{Utf8Path, Utf8PathBuf};

use super::steps::{self, Deploying, Destination, Given, Output};
use super::DeployConfig;
use crate::build::{self, Building};
use crate::component::Component;
use crate::ide::fixture;
use crate::node::copy::Method;
use crate::node::{CopyStats, Endpoint, Node, NodeError, NodeOutput, Privilege, Tunnel};
use crate::plan::exec::{Exec, Fresh, Inputs, Ran, Runner};
use crate::plan::{Plan, Step, StepId, StepKind};
use crate::report::{Event, Reporter, StepStatus};
use crate::tree::{SourceTree, TreeSearch};

/// A linux/amd64 node that holds nothing and keeps what it was sent (remote path, local path).
#[derive(Default)]
struct FakeNode {
    copies: Mutex<Vec<(String, Utf8PathBuf)>>,
}

impl Node for FakeNode {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn exec(&self, argv: &[&str], _: Privilege, _: &[u8]) -> Result<NodeOutput, NodeError> {
        // The only command a deploy runs: the copied Delve's `version`.
        assert_eq!(argv.get(1), Some(&"version"), "{argv:?}");
        Ok(NodeOutput { status: 0, stdout: b"Delve Debugger\nVersion: 1.20.2\n".to_vec(), stderr: Vec::new() })
    }
    fn spawn(&self, argv: &[&str], _: Privilege) -> Result<std::process::Child, NodeError> {
        unreachable!("a deploy spawns nothing: {argv:?}")
    }
    fn copy_to(&self, local: &Utf8Path, remote: &str, _: u32) -> Result<CopyStats, NodeError> {
        self.copies.lock().unwrap().push((remote.to_string(), local.to_owned()));
        let size = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        Ok(CopyStats { file_bytes: size, wire_bytes: size, method: Method::Zstd })
    }
    fn read_file(&self, _: &str, _: Privilege) -> Result<Option<Vec<u8>>, NodeError> {
        Ok(None)
    }
    fn write_file(&self, _: &str, _: &[u8], _: u32, _: Privilege) -> Result<(), NodeError> {
        Ok(())
    }
    fn sha256s(&self, paths: &[&str]) -> Result<Vec<Option<String>>, NodeError> {
        Ok(vec![None; paths.len()])
    }
    fn platform(&self) -> Result<(String, String), NodeError> {
        Ok(("linux".into(), "amd64".into()))
    }
    fn forward(&self, _: u16, _: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        unreachable!("a deploy forwards nothing")
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
    fn round_trips(&self) -> u64 {
        0
    }
}

/// The step events of a run.
#[derive(Default)]
struct Events(Mutex<Vec<(String, StepStatus)>>);

impl Reporter for Events {
    fn report(&self, e: Event) {
        if let Event::Step { id, status } = e {
            self.0.lock().unwrap().push((id.to_string(), status));
        }
    }
}

/// Per step that ran alone: its id, and the ids and outputs it was handed.
type Handed = Vec<(StepId, Vec<(StepId, Output)>)>;

/// Runs a runner's steps and keeps, per step, the ids and outputs it was handed.
struct Spy<'a> {
    inner: Deploying<'a>,
    given: Mutex<Handed>,
}

impl Spy<'_> {
    fn keep(&self, step: &Step, inputs: &Inputs<'_, Output>) {
        let given = inputs.iter().map(|(id, o)| (id.clone(), o.clone())).collect();
        self.given.lock().unwrap().push((step.id.clone(), given));
    }
}

impl Runner for Spy<'_> {
    type Error = super::DeployError;
    type Output = Output;
    fn up_to_date(&self, step: &Step, inputs: &Inputs<'_, Output>) -> Result<Option<Fresh<Output>>, Self::Error> {
        self.inner.up_to_date(step, inputs)
    }
    fn run(&self, step: &Step, inputs: &Inputs<'_, Output>) -> Result<Ran<Output>, Self::Error> {
        self.keep(step, inputs);
        self.inner.run(step, inputs)
    }
    fn batched(&self, step: &Step) -> bool {
        self.inner.batched(step)
    }
    fn run_batch(&self, steps: &[(&Step, Inputs<'_, Output>)]) -> Vec<Result<Ran<Output>, Self::Error>> {
        self.inner.run_batch(steps)
    }
}

fn tree(root: &Utf8Path) -> SourceTree {
    let kube_version = Some("v1.20.2".to_string());
    let search = TreeSearch { explicit: Some(root.to_owned()), kube_version, ..TreeSearch::default() };
    SourceTree::find(&search).expect("the fixture is a kubernetes tree")
}

/// Runs the deploy plan of the apiserver on a fake node; the runner's record and the events.
fn deploy(root: &Utf8Path, node: &FakeNode) -> (Result<(), super::DeployError>, Handed, Events) {
    let tree = tree(root);
    let apiserver = Component::resolve(&["apiserver"]).unwrap();
    let config = DeployConfig {
        dlv: super::DlvPaths {
            any: which::which("dlv").ok().and_then(|p| Utf8PathBuf::from_path_buf(p).ok()),
            ..Default::default()
        },
        ..DeployConfig::default()
    };
    let events = Events::default();
    let dest = Destination::check(&tree, node, &config).unwrap();
    let keyed = build::keyed(&tree, &apiserver, &dest.prepared, &events).unwrap();
    let plan = steps::plan(Plan::for_build(&keyed.keys.components), &apiserver);
    let building = Building::new(&tree, keyed, &dest.prepared, &events);
    let inner = Deploying {
        tree: &tree,
        node,
        dest: &dest,
        dlv_flag: config.dlv.any.as_deref(),
        building: &building,
        reporter: &events,
    };
    let spy = Spy { inner, given: Mutex::default() };
    let ran = Exec::default().run(&plan, &spy, &events).map(|_| ()).map_err(|f| f.errors.into_iter().next().unwrap().1);
    (ran, spy.given.into_inner().unwrap(), events)
}

#[test]
fn copy_dlv_is_handed_the_delve_that_choose_dlv_chose() {
    let (_dir, root) = fixture::copy();
    let node = FakeNode::default();
    let (ran, given, _) = deploy(&root, &node);
    ran.unwrap();
    let inputs_of = |id: StepId| given.iter().find(|(s, _)| *s == id).map(|(_, g)| g.clone()).expect("it ran");
    let copy_dlv = inputs_of(StepKind::Copy.delve());
    let ids: Vec<String> = copy_dlv.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, ["choose-dlv", "hash-node"]);
    let outputs: Vec<&Output> = copy_dlv.iter().map(|(_, o)| o).collect();
    let chosen = Given(outputs).delve().expect("choose-dlv's output").clone();
    // What reached the node as /var/lib/kdbg/bin/dlv is exactly the Delve that was chosen.
    let copies = node.copies.lock().unwrap();
    let sent = copies.iter().find(|(remote, _)| remote.ends_with("/dlv")).expect("dlv copied");
    assert_eq!(sent.1, chosen.dlv.path);
    // And the binary copied is the one its build step yielded.
    let copy_api = inputs_of(StepKind::Copy.on("kube-apiserver"));
    let built = Given(copy_api.iter().map(|(_, o)| o).collect()).built();
    let api = copies.iter().find(|(remote, _)| remote.ends_with("/kube-apiserver")).expect("binary copied");
    assert_eq!(api.1, built[0].binary);
    assert_eq!(built[0].via, build::Via::Made);
    assert!(built[0].needs.as_ref().is_some_and(|n| n.go_version.starts_with("go1.")), "{:?}", built[0].needs);
}

#[test]
fn a_failed_build_is_reported_by_its_step_and_stops_its_dependents() {
    let (_dir, root) = fixture::copy();
    let main = root.join("cmd/kube-apiserver/apiserver.go");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}\nthis is not go\n")).unwrap();
    let node = FakeNode::default();
    let (ran, given, events) = deploy(&root, &node);
    let err = ran.unwrap_err();
    assert!(matches!(err, super::DeployError::Build(build::BuildError::Make { .. })), "{err}");
    let events = events.0.into_inner().unwrap();
    let build = events.iter().find(|(id, s)| id == "build:kube-apiserver" && matches!(s, StepStatus::Failed { .. }));
    assert!(build.is_some(), "the build step reports the failure: {events:?}");
    assert!(events.iter().all(|(id, _)| id == "build:kube-apiserver"), "nothing after it ran: {events:?}");
    assert!(given.is_empty() && node.copies.lock().unwrap().is_empty());
}
