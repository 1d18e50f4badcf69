//! Preflight: everything the kind backend needs, checked before anything starts, with
//! each failure saying how to fix it. All checks run (they take well under a second
//! when things are missing), so one run lists every problem.

use std::fmt;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::versions::KIND_VERSION;

/// How long `docker info` may take: a reachable daemon answers in milliseconds, an
/// absent one fails at once; only an unreachable remote DOCKER_HOST would hang.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a `--version`-style query may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing that must hold before a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The Docker daemon answers `docker info`.
    DockerDaemon,
    /// A tool is on PATH; its version command is run and printed.
    Tool {
        name: &'static str,
        version_args: &'static [&'static str],
    },
    /// Nothing listens on 127.0.0.1:PORT (kind maps the NodePort there).
    PortFree(u16),
    /// A file the run reads exists (relative to the repository root).
    File(PathBuf),
    /// No kind cluster of this name exists yet (scaleproof deletes the cluster it
    /// creates, so it must never adopt one it did not create).
    NoKindCluster(String),
    /// An image exists in the local Docker (`--image-prebuilt`).
    LocalImage(String),
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::DockerDaemon => write!(f, "Docker daemon reachable (`docker info`)"),
            Check::Tool { name, version_args } => {
                write!(f, "{name} on PATH (`{name} {}`)", version_args.join(" "))
            }
            Check::PortFree(port) => write!(f, "127.0.0.1:{port} free"),
            Check::File(path) => write!(f, "{} exists", path.display()),
            Check::NoKindCluster(name) => write!(f, "no kind cluster named {name} yet"),
            Check::LocalImage(image) => write!(f, "image {image} in the local Docker"),
        }
    }
}

/// The outcome of one check.
#[derive(Debug)]
pub struct Outcome {
    pub check: Check,
    /// What was found (a version) or what is wrong, and how to fix it.
    pub result: Result<String, Problem>,
}

/// A failed check: what is wrong, and what to do.
#[derive(Debug)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

/// All checks failed or passed, in order.
#[derive(Debug)]
pub struct Report(pub Vec<Outcome>);

impl Report {
    pub fn passed(&self) -> bool {
        self.0.iter().all(|o| o.result.is_ok())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for outcome in &self.0 {
            match &outcome.result {
                Ok(found) => writeln!(f, "  ok      {}: {found}", outcome.check)?,
                Err(problem) => {
                    writeln!(f, "  MISSING {}: {}", outcome.check, problem.what)?;
                    writeln!(f, "          fix: {}", problem.fix)?;
                }
            }
        }
        Ok(())
    }
}

/// Runs every check (relative paths against `root`).
pub fn run(checks: &[Check], root: &std::path::Path) -> Report {
    Report(
        checks
            .iter()
            .map(|check| Outcome {
                check: check.clone(),
                result: run_one(check, root),
            })
            .collect(),
    )
}

fn run_one(check: &Check, root: &std::path::Path) -> Result<String, Problem> {
    match check {
        Check::DockerDaemon => docker_daemon(&[]),
        Check::Tool { name, version_args } => tool(name, version_args),
        Check::PortFree(port) => port_free(*port),
        Check::NoKindCluster(name) => no_kind_cluster(name),
        Check::LocalImage(image) => local_image(image),
        Check::File(path) => {
            if root.join(path).is_file() {
                Ok("found".to_string())
            } else {
                Err(Problem {
                    what: "not found".to_string(),
                    fix: format!(
                        "run from a complete checkout (scaleproof reads {})",
                        path.display()
                    ),
                })
            }
        }
    }
}

/// `docker [global_args] info`; the global args let a test aim at a daemon that
/// cannot exist.
fn docker_daemon(global_args: &[&str]) -> Result<String, Problem> {
    let alternative = "or run without Docker: `cargo xtask stress --backend local` \
                       (replicas as local processes under CPU limits)";
    let args: Vec<&str> = global_args
        .iter()
        .copied()
        .chain(["info", "--format", "{{.ServerVersion}}"])
        .collect();
    match run_with_timeout("docker", &args, DOCKER_TIMEOUT) {
        Ok(out) if out.success => Ok(format!("server {}", out.stdout.trim())),
        Ok(out) => Err(Problem {
            what: first_line(&out.stderr)
                .unwrap_or("`docker info` failed")
                .to_string(),
            fix: format!(
                "start the Docker daemon (`sudo systemctl start docker`, or Docker Desktop) \
                 and check `docker info` works for this user; {alternative}"
            ),
        }),
        Err(RunError::NotFound) => Err(Problem {
            what: "the docker CLI is not on PATH".to_string(),
            fix: format!("install Docker (https://docs.docker.com/engine/install/); {alternative}"),
        }),
        Err(RunError::TimedOut) => Err(Problem {
            what: format!(
                "`docker info` did not answer within {}s",
                DOCKER_TIMEOUT.as_secs()
            ),
            fix: format!(
                "check DOCKER_HOST / the Docker context points at a running daemon; {alternative}"
            ),
        }),
        Err(RunError::Other(e)) => Err(Problem {
            what: format!("cannot run docker: {e}"),
            fix: alternative.to_string(),
        }),
    }
}

fn tool(name: &str, version_args: &[&str]) -> Result<String, Problem> {
    let install = match name {
        "kind" => format!(
            "install kind {KIND_VERSION} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), \
             or run without a cluster: `cargo xtask stress --backend local`"
        ),
        "kubectl" => "install kubectl (https://kubernetes.io/docs/tasks/tools/)".to_string(),
        other => format!("install {other}"),
    };
    match run_with_timeout(name, version_args, TOOL_TIMEOUT) {
        Ok(out) if out.success => {
            let version = first_line(&out.stdout).unwrap_or("?").to_string();
            if name == "kind" && !version.contains(KIND_VERSION) {
                // Another kind may not support the pinned node image: say so, but let
                // the user try (they may know better).
                tracing::warn!("found {version}; scaleproof pins kind {KIND_VERSION}");
            }
            Ok(version)
        }
        Ok(out) => Err(Problem {
            what: format!(
                "`{name} {}` failed: {}",
                version_args.join(" "),
                first_line(&out.stderr).unwrap_or("")
            ),
            fix: install,
        }),
        Err(RunError::NotFound) => Err(Problem {
            what: "not found on PATH".to_string(),
            fix: install,
        }),
        Err(RunError::TimedOut) => Err(Problem {
            what: format!("`{name} {}` did not answer", version_args.join(" ")),
            fix: install,
        }),
        Err(RunError::Other(e)) => Err(Problem {
            what: format!("cannot run {name}: {e}"),
            fix: install,
        }),
    }
}

fn no_kind_cluster(name: &str) -> Result<String, Problem> {
    match run_with_timeout("kind", &["get", "clusters"], TOOL_TIMEOUT) {
        Ok(out) if out.success && out.stdout.lines().any(|l| l.trim() == name) => Err(Problem {
            what: format!("kind cluster {name} already exists"),
            fix: format!(
                "delete it (`cargo xtask cluster down --cluster-name {name}`) or pick another --cluster-name"
            ),
        }),
        Ok(out) if out.success => Ok("none".to_string()),
        // kind missing or failing: the kind check above already says so.
        _ => Ok("not checked (kind unavailable)".to_string()),
    }
}

fn local_image(image: &str) -> Result<String, Problem> {
    match run_with_timeout(
        "docker",
        &["image", "inspect", "--format", "{{.Id}}", image],
        TOOL_TIMEOUT,
    ) {
        Ok(out) if out.success => Ok(first_line(&out.stdout).unwrap_or("found").to_string()),
        _ => Err(Problem {
            what: format!("`docker image inspect {image}` found no such image"),
            fix: "build it first (CI: the image build step), or drop --image-prebuilt to let \
                  scaleproof run `docker build`"
                .to_string(),
        }),
    }
}

fn port_free(port: u16) -> Result<String, Problem> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => {
            drop(listener);
            Ok("free".to_string())
        }
        Err(e) => Err(Problem {
            what: format!("cannot bind it: {e}"),
            fix: format!(
                "free the port: a previous cluster may still run (`kind get clusters`, then \
                 `cargo xtask cluster down`), or find the process with `ss -ltnp 'sport = :{port}'`"
            ),
        }),
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

enum RunError {
    NotFound,
    TimedOut,
    Other(std::io::Error),
}

/// Runs `program args` with stdin closed, killing it after `limit`. Output is read
/// after exit; these commands print a few lines, well within a pipe's buffer.
fn run_with_timeout(program: &str, args: &[&str], limit: Duration) -> Result<Output, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Other(e),
        })?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(RunError::Other(e)),
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Ok(Output {
        success: status.success(),
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_docker_daemon_names_the_local_backend() {
        // Whether the docker CLI is installed or not, the answer must say what is
        // wrong and offer the backend that needs no Docker.
        let problem = docker_daemon(&["-H", "unix:///nonexistent/scaleproof-test.sock"])
            .expect_err("no daemon can listen there");
        assert!(!problem.what.is_empty());
        assert!(problem.fix.contains("--backend local"), "{}", problem.fix);
    }

    #[test]
    fn a_missing_tool_is_reported_with_how_to_install_it() {
        let report = run(
            &[Check::Tool {
                name: "scaleproof-no-such-tool",
                version_args: &["--version"],
            }],
            std::path::Path::new("."),
        );
        assert!(!report.passed());
        let text = report.to_string();
        assert!(
            text.contains("MISSING scaleproof-no-such-tool on PATH"),
            "{text}"
        );
        assert!(text.contains("not found on PATH"), "{text}");
        assert!(
            text.contains("fix: install scaleproof-no-such-tool"),
            "{text}"
        );
    }

    #[test]
    fn a_taken_port_is_reported_with_how_to_free_it() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind an ephemeral port");
        let taken = listener.local_addr().expect("addr").port();
        let report = run(&[Check::PortFree(taken)], std::path::Path::new("."));
        assert!(!report.passed());
        let text = report.to_string();
        assert!(
            text.contains(&format!("MISSING 127.0.0.1:{taken} free")),
            "{text}"
        );
        assert!(text.contains("kind get clusters"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let report = run(
            &[Check::File(PathBuf::from("no/such/Dockerfile"))],
            std::path::Path::new("."),
        );
        assert!(
            report
                .to_string()
                .contains("MISSING no/such/Dockerfile exists: not found"),
            "{report}"
        );
    }
}
