//! One replica: a service process in its pod's network namespace (or, without one, on
//! its own loopback port), inside its own cgroups.
//!
//! The kubelet's job in miniature: start the container's command with its args and
//! env, cap its CPU, probe its readiness, stop it with SIGTERM and a grace period, and
//! SIGKILL what does not stop. A [`Replica`] kills its process on drop, so a panic or
//! an early return can never leave one running.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::cgroup::{CgroupDriver, CgroupError, CpuResources, ReplicaCgroup};
use super::podnet::PodNet;
use super::program::LocalProgram;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot find a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// How to start a replica: the container's command line, read from the Deployment.
#[derive(Debug, Clone)]
pub struct ReplicaTemplate {
    /// What stands for the container's image: its executable and leading args, and
    /// its working directory (`[backend.local.containers]`).
    pub program: LocalProgram,
    /// The container's args, as written in a pod network namespace; on loopback,
    /// `--host` and `--port` are rewritten per replica.
    pub args: Vec<String>,
    /// The container's first `containerPort`: where it listens in its namespace.
    pub container_port: u16,
    /// The container's env (plus scenario overrides).
    pub env: BTreeMap<String, String>,
    /// The container's CPU limit, enforced by the cgroup.
    pub cpu_limit_millicores: u64,
    /// The container's CPU request (defaulted from the limit by the API server): its
    /// weight under contention (`cpu.shares`, `cpu.weight`).
    pub cpu_request_millicores: u64,
    /// The container's memory limit in bytes, enforced by the cgroup (the kernel
    /// OOM-kills the replica past it); `None`: no limit.
    pub memory_limit_bytes: Option<u64>,
    /// Path of the readiness probe (`httpGet.path`).
    pub readiness_path: String,
    /// Where each replica's stdout and stderr go (`<name>.log`); `None` discards them.
    pub log_dir: Option<PathBuf>,
    /// The kubelet's `oom_score_adj` for the container ([`crate::qos`]); `None`
    /// leaves the process at its parent's.
    pub oom_score_adj: Option<i64>,
}

impl ReplicaTemplate {
    /// The args for a replica listening on `127.0.0.1:port`: loopback only, whatever
    /// the manifest says (a pod binds 0.0.0.0 inside its own network namespace; a
    /// local process shares the host's).
    fn args_for(&self, port: u16) -> Vec<String> {
        let mut out = Vec::with_capacity(self.args.len() + 4);
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--host" | "--port" => {
                    args.next();
                }
                a if a.starts_with("--host=") || a.starts_with("--port=") => {}
                _ => out.push(arg.clone()),
            }
        }
        out.extend([
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
        ]);
        out
    }
}

/// `sh -c` script: `$1` cgroup.procs files follow, then the program and its args. The
/// shell writes its own pid into each (joining the groups), then becomes the program.
/// A group it cannot join is the runtime's failure, reported as exit 126 (the shell's
/// "cannot execute") with the reason in the container's log.
const JOIN_THEN_EXEC: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
  echo $$ > "$1" || { echo "scaleproof: cannot join cgroup $1" >&2; exit 126; }
  shift; n=$((n - 1))
done
exec "$@""#;

/// Ranks the container's process for the OOM killer as the kubelet does. A score
/// below 0 needs `CAP_SYS_RESOURCE`, which a sandbox may not grant: then the process
/// keeps its parent's score and a warning says so (once per process of the harness),
/// because the kernel may then pick another process of the cgroup first.
fn set_oom_score_adj(pid: u32, adj: i64) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()) {
        WARNED.call_once(|| {
            tracing::warn!(
                "cannot give containers the kubelet's oom_score_adj ({adj}): {e}; the \
                 kernel's OOM killer ranks them as plain processes here"
            );
        });
    }
}

/// A running (or exited) replica process.
#[derive(Debug)]
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    cgroup: Option<ReplicaCgroup>,
    pub started_at: Instant,
    /// When the readiness probe first passed (the Ready condition's transition time).
    pub ready_since: Option<Instant>,
    /// Whether the last readiness probe passed.
    pub ready: bool,
    /// Set once SIGTERM was sent: the replica is draining and gets no new traffic.
    pub terminating: bool,
}

impl Replica {
    /// Starts a replica named `name` from `template`, capped by `cgroups`, in the pod
    /// network `net` (args as written, reached at its IP and `containerPort`), or
    /// without one on a free loopback port (`--host`/`--port` rewritten).
    pub fn spawn(
        template: &ReplicaTemplate,
        name: &str,
        cgroups: &CgroupDriver,
        net: Option<&PodNet>,
    ) -> Result<Self, ReplicaError> {
        let (addr, args, prefix) = match net {
            Some(net) => (
                SocketAddr::from((net.ip, template.container_port)),
                template.args.clone(),
                net.exec_prefix().to_vec(),
            ),
            None => {
                let port = free_loopback_port().map_err(ReplicaError::Port)?;
                (
                    SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    template.args_for(port),
                    Vec::new(),
                )
            }
        };
        // Create the group first: if that fails, nothing is running yet.
        let cgroup = cgroups.create(
            name,
            CpuResources {
                limit_millicores: template.cpu_limit_millicores,
                request_millicores: template.cpu_request_millicores,
            },
            template.memory_limit_bytes,
        )?;
        let (stdout, stderr) = match &template.log_dir {
            Some(dir) => {
                let path = dir.join(format!("{name}.log"));
                let file = File::create(&path).map_err(|source| ReplicaError::Log {
                    path: path.clone(),
                    source,
                })?;
                let copy = file
                    .try_clone()
                    .map_err(|source| ReplicaError::Log { path, source })?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        // The shell would report a missing program as its own exit 127; a runtime
        // refuses to start the container instead, and so does this.
        let executable = template.program.executable_path().to_string();
        if executable.is_empty() || (executable.contains('/') && !Path::new(&executable).is_file())
        {
            return Err(ReplicaError::Spawn {
                program: executable,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        // The image's entrypoint words come before the manifest's args.
        let mut words: Vec<String> = template.program.command[1..].to_vec();
        words.extend(args);
        let mut args = words;
        // In a namespace: `ip netns exec NAME PROGRAM ARGS`, which becomes the program.
        let program: std::ffi::OsString = match prefix.split_first() {
            Some((ip, rest)) => {
                let mut all: Vec<String> = rest.to_vec();
                all.push(executable.clone());
                all.append(&mut args);
                args = all;
                ip.into()
            }
            None => executable.clone().into(),
        };
        let mut command = match &cgroup {
            // The runtime's order: the process is in its groups before it executes a
            // single instruction of the program, so everything it touches while
            // starting counts against its limits (a limit too small to start in is an
            // OOM kill at start, as on a node). A shell joins, then `exec`s the
            // program in place: same pid, same groups, nothing else in between.
            Some(group) => {
                let procs = group.procs_files();
                let mut c = Command::new("/bin/sh");
                c.arg("-c")
                    .arg(JOIN_THEN_EXEC)
                    .arg("scaleproof-join")
                    .arg(procs.len().to_string())
                    .args(&procs)
                    .arg(&program)
                    .args(&args);
                c
            }
            None => {
                let mut c = Command::new(&program);
                c.args(&args);
                c
            }
        };
        if let Some(dir) = &template.program.workdir {
            command.current_dir(dir);
        }
        command.env_clear();
        // The image's PATH, which a manifest's own PATH replaces: here, the harness's.
        if !template.env.contains_key("PATH") {
            command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
        let child = command
            .envs(template.env.iter())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| ReplicaError::Spawn {
                program: executable.clone(),
                source,
            })?;
        if let Some(adj) = template.oom_score_adj {
            set_oom_score_adj(child.id(), adj);
        }
        let replica = Replica {
            name: name.to_string(),
            addr,
            child,
            cgroup,
            started_at: Instant::now(),
            ready_since: None,
            ready: false,
            terminating: false,
        };
        Ok(replica)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// CPU time used so far: the cgroup's counter, or the process's own when uncapped.
    pub fn cpu_time(&self) -> Option<Duration> {
        match self.cgroup.as_ref().filter(|g| g.counts_cpu()) {
            Some(group) => group.usage().ok(),
            None => process_cpu_time(self.child.id()),
        }
    }

    /// Memory in use, in bytes: the cgroup's working set as cAdvisor computes it
    /// (usage minus inactive file pages), what metrics-server serves; without a memory
    /// cgroup, the process's resident set, the nearest figure a process has.
    pub fn memory_bytes(&self) -> Option<u64> {
        match self.cgroup.as_ref().and_then(ReplicaCgroup::working_set) {
            Some(read) => read.ok(),
            None => process_rss(self.child.id()),
        }
    }

    /// Whether the memory figure is the cgroup's working set (else the RSS fallback).
    pub fn memory_from_cgroup(&self) -> bool {
        self.cgroup.as_ref().is_some_and(ReplicaCgroup::has_memory)
    }

    /// How many of the replica's processes the kernel OOM-killed (its cgroup's
    /// counter); `None` without a memory cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(ReplicaCgroup::oom_kills)
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM: the service stops being ready and drains in-flight requests.
    pub fn terminate(&mut self) {
        self.terminating = true;
        self.ready = false;
        self.signal(Signal::SIGTERM);
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    fn signal(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // ESRCH (already gone) is fine: the goal is that it does not run.
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            self.kill();
        }
        // The cgroup (a field) is dropped after this, when the process is gone.
    }
}

/// Asks the kernel for a free port on 127.0.0.1. The port is released before the
/// replica binds it; another process could take it in between, in which case the
/// replica fails to start, is seen as exited, and is replaced.
fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// utime + stime of a process from `/proc/<pid>/stat`, for uncapped replicas.
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    const TICKS_PER_S: u64 = 100;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / TICKS_PER_S,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(args: &[&str]) -> ReplicaTemplate {
        ReplicaTemplate {
            program: LocalProgram::executable("/bin/true"),
            args: args.iter().map(|s| s.to_string()).collect(),
            container_port: 8000,
            env: BTreeMap::new(),
            cpu_limit_millicores: 200,
            cpu_request_millicores: 100,
            memory_limit_bytes: None,
            readiness_path: "/ready".into(),
            log_dir: None,
            oom_score_adj: None,
        }
    }

    #[test]
    fn host_and_port_are_rewritten_to_loopback() {
        let t = template(&[
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--verbose",
            "--port=9",
        ]);
        assert_eq!(
            t.args_for(4242),
            vec!["--verbose", "--host", "127.0.0.1", "--port", "4242"]
        );
    }

    // The entry stands for the image: its words first, then the manifest's args, in
    // its workdir, with the manifest's env (PATH included when the manifest sets it).
    #[test]
    fn the_programs_words_come_before_the_manifests_args_in_its_workdir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut t = template(&["--port", "8000", "two words"]);
        t.program = LocalProgram {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                r#"{ pwd; printf '%s|' "$@"; echo; echo "$PATH"; } > seen"#.into(),
                "entry".into(),
            ],
            workdir: Some(dir.path().to_path_buf()),
        };
        t.env.insert("PATH".into(), "/manifest/bin:/bin".into());
        let cgroups = CgroupDriver::uncapped("a unit test");
        let mut replica = Replica::spawn(&t, "words", &cgroups, None).expect("spawns");
        let deadline = Instant::now() + Duration::from_secs(10);
        while replica.exit_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let seen = std::fs::read_to_string(dir.path().join("seen")).expect("the script wrote");
        let lines: Vec<&str> = seen.lines().collect();
        assert_eq!(
            std::path::Path::new(lines[0]).canonicalize().ok(),
            dir.path().canonicalize().ok(),
            "{seen}"
        );
        // On loopback the kubelet rewrites --host/--port (said in the report); the
        // rest of the args arrive as written, after the entry's words.
        let port = replica.addr.port();
        assert_eq!(
            lines[1],
            format!("two words|--host|127.0.0.1|--port|{port}|"),
            "{seen}"
        );
        assert_eq!(
            lines[2], "/manifest/bin:/bin",
            "the manifest's PATH wins: {seen}"
        );
    }

    #[test]
    fn own_cpu_time_is_readable_from_proc() {
        let t = process_cpu_time(std::process::id());
        assert!(t.is_some());
    }
}
