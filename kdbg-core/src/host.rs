//! The local-host seam: every process kdbg starts on the workstation is described as a `Cmd` and run here.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use camino::{Utf8Path, Utf8PathBuf};

/// A process to run, as data: what `kdbg plan` can show and tests can inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub cwd: Option<Utf8PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("`{program}` was not found on PATH{hint}")]
    NotFound { program: String, hint: String },
    #[error("`{cmd}` failed ({status}){}", tail_suffix(.tail))]
    Failed { cmd: String, status: String, tail: String },
    #[error("failed to run `{cmd}`: {source}")]
    Io { cmd: String, source: std::io::Error },
}

/// An I/O error as a message fragment: lowercase, without the `(os error N)` suffix
/// (`too many levels of symbolic links`).
pub(crate) fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd { program: program.into(), ..Cmd::default() }
    }
    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub(crate) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }
    pub(crate) fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Cmd {
        self.env.extend(vars);
        self
    }
    pub(crate) fn env_remove(mut self, key: impl Into<String>) -> Cmd {
        self.env_remove.push(key.into());
        self
    }
    pub(crate) fn cwd(mut self, dir: impl AsRef<Utf8Path>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The command line as a user would type it (for messages, never for a shell).
    pub(crate) fn display(&self) -> String {
        let mut parts = vec![self.program.clone()];
        parts.extend(self.args.iter().map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        }));
        parts.join(" ")
    }

    fn command(&self) -> Result<Command, HostError> {
        let program = which::which(&self.program)
            .map_err(|_| HostError::NotFound { program: self.program.clone(), hint: install_hint(&self.program) })?;
        let mut c = Command::new(program);
        c.args(&self.args);
        for k in &self.env_remove {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        c.stdin(Stdio::null());
        Ok(c)
    }

    /// Runs to completion and returns stdout; a non-zero exit is an error carrying stderr's tail.
    pub fn read(&self) -> Result<String, HostError> {
        let out = self.output()?;
        if !out.status.success() {
            return Err(self.failed(&out.status, &String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs to completion, whatever the exit status.
    pub(crate) fn output(&self) -> Result<std::process::Output, HostError> {
        self.command()?.output().map_err(|source| HostError::Io { cmd: self.display(), source })
    }

    /// Runs to completion with `input` on stdin (written from a thread, so a chatty child cannot
    /// deadlock us), whatever the exit status.
    pub(crate) fn output_with_input(&self, input: &[u8]) -> Result<std::process::Output, HostError> {
        let io = |source| HostError::Io { cmd: self.display(), source };
        let mut child = self.spawn_piped()?;
        let mut stdin = child.stdin.take().expect("piped");
        std::thread::scope(|s| {
            s.spawn(move || {
                use std::io::Write;
                // A child that exits without reading all of its input is not an error here.
                let _ = stdin.write_all(input);
            });
            child.wait_with_output().map_err(io)
        })
    }

    /// Starts the process with stdin, stdout and stderr piped, for callers that stream.
    pub(crate) fn spawn_piped(&self) -> Result<std::process::Child, HostError> {
        let mut c = self.command()?;
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().map_err(|source| HostError::Io { cmd: self.display(), source })
    }

    /// Starts the process with these stdio handles (e.g. a log file), without waiting for it.
    pub(crate) fn spawn_with(
        &self,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<std::process::Child, HostError> {
        let mut c = self.command()?;
        c.stdin(stdin).stdout(stdout).stderr(stderr);
        c.spawn().map_err(|source| HostError::Io { cmd: self.display(), source })
    }

    /// Runs with stdout and stderr merged line by line into `on_line`; returns the last lines on failure.
    pub(crate) fn stream(&self, on_line: &mut dyn FnMut(&str)) -> Result<(), HostError> {
        let io = |source| HostError::Io { cmd: self.display(), source };
        let (reader, writer) = std::io::pipe().map_err(io)?;
        let mut c = self.command()?;
        c.stdout(writer.try_clone().map_err(io)?).stderr(writer);
        let mut child = c.spawn().map_err(io)?;
        drop(c); // close our copies of the pipe's write end
        let mut tail = std::collections::VecDeque::new();
        for line in BufReader::new(reader).split(b'\n') {
            let line = line.map_err(io)?;
            let line = String::from_utf8_lossy(&line);
            on_line(&line);
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line.into_owned());
        }
        let status = child.wait().map_err(io)?;
        if !status.success() {
            let tail: Vec<String> = tail.into();
            return Err(self.failed(&status, &tail.join("\n")));
        }
        Ok(())
    }

    fn failed(&self, status: &std::process::ExitStatus, stderr: &str) -> HostError {
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        HostError::Failed { cmd: self.display(), status: status.to_string(), tail }
    }
}

/// Reads a whole pipe or file into a string, lossy.
pub fn read_lossy(mut r: impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// What to do when a program kdbg needs is missing.
pub(crate) fn install_hint(program: &str) -> String {
    match program {
        "go" => {
            let debian = Utf8Path::new("/usr/lib/go-1.19/bin/go");
            if debian.exists() {
                "; Debian's Go is installed but not on PATH: export PATH=/usr/lib/go-1.19/bin:$PATH".into()
            } else {
                "; install Go (Debian: apt-get install golang-1.19-go, then export PATH=/usr/lib/go-1.19/bin:$PATH)"
                    .into()
            }
        }
        "dlv" => "; install Delve (Debian: apt-get install delve) or pass --dlv PATH".into(),
        "make" => "; install make (Debian: apt-get install make)".into(),
        "ssh" => "; install OpenSSH's client (Debian: apt-get install openssh-client)".into(),
        "git" => "; install git (Debian: apt-get install git)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let c = Cmd::new("make").args(["all", "WHAT=cmd/a cmd/b", "GOLDFLAGS="]);
        assert_eq!(c.display(), "make all 'WHAT=cmd/a cmd/b' GOLDFLAGS=");
    }

    #[test]
    fn missing_program_is_named() {
        let err = Cmd::new("kdbg-no-such-program").read().unwrap_err().to_string();
        assert!(err.contains("`kdbg-no-such-program` was not found on PATH"), "{err}");
    }

    #[test]
    fn stream_reports_failure_with_the_last_lines() {
        let mut seen = Vec::new();
        let err = Cmd::new("sh")
            .args(["-c", "echo one; echo two >&2; exit 3"])
            .stream(&mut |l| seen.push(l.to_string()))
            .unwrap_err()
            .to_string();
        assert_eq!(seen, ["one", "two"]);
        assert!(err.contains("exit status: 3") && err.ends_with("one\ntwo"), "{err}");
    }
}

/// The user's home: `$HOME`, else the user database's entry for this uid (a service or `env -i`
/// leaves `HOME` unset; the state kdbg records there must not silently go missing).
pub fn home_dir() -> Option<Utf8PathBuf> {
    match std::env::var("HOME").ok().filter(|h| !h.is_empty()) {
        Some(h) => Some(Utf8PathBuf::from(h)),
        None => passwd_home(),
    }
}

/// This uid's home directory in the user database (getpwuid_r: Linux and macOS alike).
fn passwd_home() -> Option<Utf8PathBuf> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter; getpwuid_r writes its strings into
    // `buf`, which outlives every read of `pwd` below.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points at a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }.to_str().ok()?;
    (!dir.is_empty()).then(|| Utf8PathBuf::from(dir))
}

#[cfg(test)]
mod home_tests {
    #[test]
    fn without_home_the_user_database_names_the_home() {
        let uid = unsafe { libc::getuid() }.to_string();
        let out = std::process::Command::new("getent").args(["passwd", &uid]).output().unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        let home = line.trim().split(':').nth(5).unwrap().to_string();
        assert_eq!(super::passwd_home().unwrap().as_str(), home);
    }
}
