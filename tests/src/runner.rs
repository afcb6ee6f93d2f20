//! The static-pod runner: a stand-in for the kubelet's static pods, run inside
//! the node (`kdbg-testnode runner --manifests DIR --log DIR`).
//!
//! Every `poll` it reads every non-hidden regular file of the manifests
//! directory (a `kube-apiserver.yaml.bak` left there *is* run, as by the kubelet;
//! only dotfiles are skipped). For each valid manifest it runs the first
//! container's `command` + `args` in its own process group, output appended to
//! `<log>/<pod-name>.log`; restarts it `backoff` after it exits; and stops it
//! (SIGTERM to the group, SIGKILL after `grace`) when the file disappears or
//! changes — a changed manifest is started again once the old process is gone.
//! A malformed manifest is logged and skipped. State goes to `--state`
//! ([`PodsFile`] as JSON). On SIGTERM every pod is stopped before the runner exits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::hash::{Hash, Hasher};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::manifest::{parse, PodSpec, PodState, PodStatus, PodsFile};
use crate::sys::{now_ms, write_atomic};

/// PATH of a pod's process (plus the manifest's `env`).
const POD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runner settings.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    pub manifests: PathBuf,
    pub log_dir: PathBuf,
    pub state: Option<PathBuf>,
    pub poll: Duration,
    pub backoff: Duration,
    pub grace: Duration,
}

impl RunnerOptions {
    /// Defaults: poll 200 ms, backoff 1 s, grace 5 s, no state file.
    pub fn new(manifests: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            manifests,
            log_dir,
            state: None,
            poll: Duration::from_millis(200),
            backoff: Duration::from_secs(1),
            grace: Duration::from_secs(5),
        }
    }
}

struct Pod {
    digest: u64,
    spec: PodSpec,
    child: Option<Child>,
    started_ms: Option<u64>,
    starts: u32,
    next_start: Instant,
    last_exit: Option<String>,
}

struct Stopping {
    name: String,
    file: PathBuf,
    argv: Vec<String>,
    child: Child,
    deadline: Instant,
}

struct Runner {
    opts: RunnerOptions,
    parsed: HashMap<PathBuf, (u64, Result<PodSpec, String>)>,
    pods: BTreeMap<PathBuf, Pod>,
    stopping: Vec<Stopping>,
    invalid: Vec<PodStatus>,
    written: Option<String>,
}

fn say(msg: &str) {
    println!("[runner {}ms] {msg}", now_ms() % 1_000_000);
}

fn killpg(pgid: u32, signal: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: signals one process group (pgid > 1), no memory involved.
            unsafe { libc::kill(-pgid, signal) };
        }
    }
}

/// Runs until SIGTERM/SIGINT.
pub fn run(opts: RunnerOptions) -> Result<()> {
    crate::init::install_stop_handler();
    say(&format!("watching {}", opts.manifests.display()));
    let mut runner = Runner {
        opts,
        parsed: HashMap::new(),
        pods: BTreeMap::new(),
        stopping: Vec::new(),
        invalid: Vec::new(),
        written: None,
    };
    while !crate::init::stop_requested() {
        runner.tick();
        std::thread::sleep(runner.opts.poll);
    }
    say("stopping all pods");
    let files: Vec<PathBuf> = runner.pods.keys().cloned().collect();
    for file in files {
        runner.stop(&file);
    }
    runner.invalid.clear();
    while !runner.stopping.is_empty() {
        runner.reap_stopping();
        runner.write_state();
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.write_state();
    Ok(())
}

/// Non-hidden regular files of `dir`, in name order, with their contents.
fn read_manifests(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    files.into_iter().filter_map(|p| fs::read(&p).ok().map(|bytes| (p, bytes))).collect()
}

impl Runner {
    fn tick(&mut self) {
        let files = read_manifests(&self.opts.manifests);
        let mut desired: BTreeMap<PathBuf, (u64, PodSpec)> = BTreeMap::new();
        let mut invalid = Vec::new();
        let mut names = HashSet::new();
        for (file, bytes) in &files {
            let mut hasher = std::hash::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let digest = hasher.finish();
            let cached = self.parsed.get(file).filter(|(d, _)| *d == digest);
            let result = match cached {
                Some((_, result)) => result.clone(),
                None => {
                    let result = parse(bytes);
                    if let Err(e) = &result {
                        say(&format!("invalid manifest {}: {e}", file.display()));
                    }
                    self.parsed.insert(file.clone(), (digest, result.clone()));
                    result
                }
            };
            let error = match result {
                Ok(spec) if names.insert((spec.name.clone(), spec.namespace.clone())) => {
                    desired.insert(file.clone(), (digest, spec));
                    continue;
                }
                Ok(spec) => format!("duplicate pod name {:?}: an earlier manifest has it", spec.name),
                Err(e) => e,
            };
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            invalid.push(status_invalid(name.into_owned(), file, error));
        }
        self.parsed.retain(|file, _| files.iter().any(|(f, _)| f == file));
        self.invalid = invalid;

        let gone: Vec<PathBuf> = self
            .pods
            .iter()
            .filter(|(file, pod)| desired.get(*file).map(|d| d.0) != Some(pod.digest))
            .map(|(file, _)| file.clone())
            .collect();
        for file in gone {
            self.stop(&file);
        }
        let now = Instant::now();
        for (file, (digest, spec)) in desired {
            self.pods.entry(file).or_insert_with(|| Pod {
                digest,
                spec,
                child: None,
                started_ms: None,
                starts: 0,
                next_start: now,
                last_exit: None,
            });
        }
        self.supervise();
        self.reap_stopping();
        self.write_state();
    }

    fn supervise(&mut self) {
        let now = Instant::now();
        let stopping: HashSet<String> = self.stopping.iter().map(|s| s.name.clone()).collect();
        for (file, pod) in &mut self.pods {
            if let Some(child) = &mut pod.child {
                if let Ok(Some(status)) = child.try_wait() {
                    killpg(child.id(), libc::SIGKILL); // whatever it left behind
                    say(&format!("pod {} (pid {}) exited: {status}", pod.spec.name, child.id()));
                    pod.last_exit = Some(status.to_string());
                    pod.child = None;
                    pod.started_ms = None;
                    pod.next_start = now + self.opts.backoff;
                }
            }
            if pod.child.is_none() && now >= pod.next_start && !stopping.contains(&pod.spec.name) {
                start(&self.opts.log_dir, file, pod, now + self.opts.backoff);
            }
        }
    }

    fn stop(&mut self, file: &Path) {
        let Some(pod) = self.pods.remove(file) else {
            return;
        };
        if let Some(child) = pod.child {
            say(&format!("stopping pod {} (pid {})", pod.spec.name, child.id()));
            killpg(child.id(), libc::SIGTERM);
            self.stopping.push(Stopping {
                name: pod.spec.name,
                file: file.to_path_buf(),
                argv: pod.spec.argv,
                child,
                deadline: Instant::now() + self.opts.grace,
            });
        }
    }

    fn reap_stopping(&mut self) {
        let now = Instant::now();
        self.stopping.retain_mut(|s| match s.child.try_wait() {
            Ok(None) => {
                if now >= s.deadline {
                    say(&format!("pod {} ignores SIGTERM: SIGKILL", s.name));
                    killpg(s.child.id(), libc::SIGKILL);
                }
                true
            }
            Ok(Some(status)) => {
                killpg(s.child.id(), libc::SIGKILL);
                say(&format!("pod {} stopped: {status}", s.name));
                false
            }
            Err(_) => false,
        });
    }

    fn write_state(&mut self) {
        let Some(path) = &self.opts.state else {
            return;
        };
        let mut pods: Vec<PodStatus> = self.pods.iter().map(|(f, p)| status_of(f, p)).collect();
        pods.extend(self.stopping.iter().map(|s| PodStatus {
            name: s.name.clone(),
            manifest: s.file.display().to_string(),
            state: PodState::Terminating,
            pid: Some(s.child.id()),
            restarts: 0,
            argv: s.argv.clone(),
            last_exit: None,
            error: None,
            started_ms: None,
        }));
        pods.extend(self.invalid.iter().cloned());
        let key = serde_json::to_string(&pods).unwrap_or_default();
        if self.written.as_ref() == Some(&key) {
            return;
        }
        let file = PodsFile { runner_pid: std::process::id(), updated_ms: now_ms(), pods };
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        match serde_json::to_vec_pretty(&file).map_err(anyhow::Error::from) {
            Ok(bytes) => match write_atomic(path, &bytes) {
                Ok(()) => self.written = Some(key),
                Err(e) => say(&format!("cannot write state: {e:#}")),
            },
            Err(e) => say(&format!("cannot write state: {e:#}")),
        }
    }
}

fn start(log_dir: &Path, file: &Path, pod: &mut Pod, retry_at: Instant) {
    pod.starts += 1;
    let spec = &pod.spec;
    let _ = fs::create_dir_all(log_dir);
    let log_path = log_dir.join(format!("{}.log", spec.name));
    let spawned = OpenOptions::new().create(true).append(true).open(&log_path).and_then(|log| {
        Command::new(&spec.argv[0])
            .args(&spec.argv[1..])
            .env_clear()
            .env("PATH", POD_PATH)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.working_dir.as_deref().unwrap_or("/"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
    });
    match spawned {
        Ok(child) => {
            say(&format!("started pod {} from {} (pid {}): {:?}", spec.name, file.display(), child.id(), spec.argv));
            pod.started_ms = Some(now_ms());
            pod.child = Some(child);
        }
        Err(e) => {
            say(&format!("cannot start pod {}: {e}", spec.name));
            pod.last_exit = Some(format!("cannot start: {e}"));
            pod.next_start = retry_at;
        }
    }
}

fn status_of(file: &Path, pod: &Pod) -> PodStatus {
    PodStatus {
        name: pod.spec.name.clone(),
        manifest: file.display().to_string(),
        state: if pod.child.is_some() { PodState::Running } else { PodState::Waiting },
        pid: pod.child.as_ref().map(Child::id),
        restarts: pod.starts.saturating_sub(1),
        argv: pod.spec.argv.clone(),
        last_exit: pod.last_exit.clone(),
        error: None,
        started_ms: pod.started_ms,
    }
}

fn status_invalid(name: String, file: &Path, error: String) -> PodStatus {
    PodStatus {
        name,
        manifest: file.display().to_string(),
        state: PodState::Invalid,
        pid: None,
        restarts: 0,
        argv: Vec::new(),
        last_exit: None,
        error: Some(error),
        started_ms: None,
    }
}
