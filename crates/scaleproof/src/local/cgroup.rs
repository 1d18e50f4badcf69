//! CPU limits for local replicas, enforced by the kernel the way the kubelet does it:
//! a cgroup per replica whose CFS quota equals the container's CPU limit.
//!
//! Three situations are handled, because the machines we run on differ:
//! - cgroup v2 (GitHub runners, modern distros): `cpu.max`, usage from `cpu.stat`;
//! - cgroup v1 (this project's development machines): `cpu.cfs_quota_us`, usage from
//!   `cpuacct.usage` (the `cpuacct` hierarchy may be mounted separately from `cpu`);
//! - no permission (not root, read-only cgroupfs): replicas run uncapped. Callers must
//!   say so loudly: the figures then do not describe a 200m pod.
//!
//! Group names carry the harness's pid (`scaleproof-<pid>-<replica>`), so a later run
//! can find and remove the groups (and kill the processes) of a harness that died
//! without cleaning up (see [`CgroupDriver::sweep_stale`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The CFS period we use with every quota (the kernel's and the kubelet's default).
const CFS_PERIOD_US: u64 = 100_000;
/// Prefix of every group this module creates.
const PREFIX: &str = "scaleproof-";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {path}: cannot parse {what} from {text:?}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        text: String,
    },
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// How CPU limits are enforced on this machine, as reported in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CpuLimitMode {
    /// Unified hierarchy: groups are created under `parent`.
    V2 { parent: PathBuf },
    /// Legacy hierarchy: quota in `cpu`, usage in `cpuacct` (may be the same directory).
    V1 { cpu: PathBuf, cpuacct: PathBuf },
    /// Replicas run without a CPU limit.
    Uncapped { reason: String },
}

impl CpuLimitMode {
    pub fn is_capped(&self) -> bool {
        !matches!(self, CpuLimitMode::Uncapped { .. })
    }
}

/// Creates and finds replica cgroups for one harness run.
#[derive(Debug, Clone)]
pub struct CgroupDriver {
    mode: CpuLimitMode,
    run_tag: String,
}

impl CgroupDriver {
    /// Probes `/sys/fs/cgroup` for a hierarchy we may write to.
    pub fn detect() -> Self {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    /// Probes a cgroup mount point (a parameter so tests can point it elsewhere).
    pub fn detect_at(root: &Path) -> Self {
        let run_tag = format!("{PREFIX}{}", std::process::id());
        let mode = detect_mode(root);
        CgroupDriver { mode, run_tag }
    }

    /// A driver that never limits (tests of the "no permission" path).
    pub fn uncapped(reason: impl Into<String>) -> Self {
        CgroupDriver {
            mode: CpuLimitMode::Uncapped {
                reason: reason.into(),
            },
            run_tag: format!("{PREFIX}{}", std::process::id()),
        }
    }

    pub fn mode(&self) -> &CpuLimitMode {
        &self.mode
    }

    /// Creates the group for replica `name` with a quota of `limit_millicores`
    /// (`None` when running uncapped).
    pub fn create(
        &self,
        name: &str,
        limit_millicores: u64,
    ) -> Result<Option<ReplicaCgroup>, CgroupError> {
        let group = format!("{}-{name}", self.run_tag);
        let quota_us = (limit_millicores * CFS_PERIOD_US / 1000).max(1000);
        match &self.mode {
            CpuLimitMode::Uncapped { .. } => Ok(None),
            CpuLimitMode::V2 { parent } => {
                let dir = parent.join(&group);
                make_dir(&dir)?;
                let cgroup = ReplicaCgroup {
                    dirs: vec![dir.clone()],
                    usage: UsageFile::V2(dir.join("cpu.stat")),
                };
                write(&dir.join("cpu.max"), &format!("{quota_us} {CFS_PERIOD_US}"))?;
                Ok(Some(cgroup))
            }
            CpuLimitMode::V1 { cpu, cpuacct } => {
                let cpu_dir = cpu.join(&group);
                let acct_dir = cpuacct.join(&group);
                make_dir(&cpu_dir)?;
                let mut dirs = vec![cpu_dir.clone()];
                if acct_dir != cpu_dir {
                    make_dir(&acct_dir)?;
                    dirs.push(acct_dir.clone());
                }
                let cgroup = ReplicaCgroup {
                    dirs,
                    usage: UsageFile::V1(acct_dir.join("cpuacct.usage")),
                };
                write(
                    &cpu_dir.join("cpu.cfs_period_us"),
                    &CFS_PERIOD_US.to_string(),
                )?;
                write(&cpu_dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
                Ok(Some(cgroup))
            }
        }
    }

    /// Removes groups left by harness runs whose process is gone, killing what still
    /// runs inside them. Returns how many groups were removed.
    pub fn sweep_stale(&self) -> usize {
        let parents: Vec<&Path> = match &self.mode {
            CpuLimitMode::Uncapped { .. } => return 0,
            CpuLimitMode::V2 { parent } => vec![parent],
            CpuLimitMode::V1 { cpu, cpuacct } => vec![cpu, cpuacct],
        };
        let mut removed = 0;
        for parent in parents {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(owner) = owner_pid(&name) else {
                    continue;
                };
                if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                    continue;
                }
                let group = ReplicaCgroup {
                    dirs: vec![entry.path()],
                    usage: UsageFile::V2(entry.path().join("cpu.stat")),
                };
                group.kill_all();
                if group.remove().is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// `scaleproof-<pid>-...` → pid.
fn owner_pid(group: &str) -> Option<u32> {
    group.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

fn detect_mode(root: &Path) -> CpuLimitMode {
    let v2_controllers = root.join("cgroup.controllers");
    if let Ok(controllers) = fs::read_to_string(&v2_controllers) {
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return CpuLimitMode::Uncapped {
                reason: format!("cgroup v2 at {} has no cpu controller", root.display()),
            };
        }
        // Enable cpu for children of the root; a no-op when already enabled.
        let subtree = root.join("cgroup.subtree_control");
        if let Err(e) = fs::write(&subtree, "+cpu") {
            return CpuLimitMode::Uncapped {
                reason: format!(
                    "cannot enable the cpu controller in {}: {e}",
                    subtree.display()
                ),
            };
        }
        return probe_writable(
            root,
            CpuLimitMode::V2 {
                parent: root.to_path_buf(),
            },
        );
    }
    let cpu = root.join("cpu");
    if cpu.join("cpu.cfs_quota_us").exists() {
        // cpuacct is usually co-mounted (`cpu,cpuacct`), sometimes separate.
        let cpuacct = if cpu.join("cpuacct.usage").exists() {
            cpu.clone()
        } else if root.join("cpuacct").join("cpuacct.usage").exists() {
            root.join("cpuacct")
        } else {
            return CpuLimitMode::Uncapped {
                reason: format!("cgroup v1 at {} has no cpuacct hierarchy", root.display()),
            };
        };
        return probe_writable(root, CpuLimitMode::V1 { cpu, cpuacct });
    }
    CpuLimitMode::Uncapped {
        reason: format!("no cgroup cpu controller found under {}", root.display()),
    }
}

/// Creates and removes a probe group, so "no permission" is found before any replica starts.
fn probe_writable(root: &Path, mode: CpuLimitMode) -> CpuLimitMode {
    let parent = match &mode {
        CpuLimitMode::V2 { parent } => parent,
        CpuLimitMode::V1 { cpu, .. } => cpu,
        CpuLimitMode::Uncapped { .. } => return mode,
    };
    let probe = parent.join(format!("{PREFIX}{}-probe", std::process::id()));
    match fs::create_dir(&probe) {
        Ok(()) => {
            let _ = fs::remove_dir(&probe);
            mode
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => mode,
        Err(e) => CpuLimitMode::Uncapped {
            reason: format!("cannot create cgroups under {}: {e}", root.display()),
        },
    }
}

fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(dir, "create")(e)),
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(file, value).map_err(io_err(file, "write"))
}

#[derive(Debug)]
enum UsageFile {
    /// `cpu.stat`, line `usage_usec N`.
    V2(PathBuf),
    /// `cpuacct.usage`, nanoseconds.
    V1(PathBuf),
}

/// One replica's cgroup(s). Removed on drop (best effort, after its processes exit).
#[derive(Debug)]
pub struct ReplicaCgroup {
    dirs: Vec<PathBuf>,
    usage: UsageFile,
}

impl ReplicaCgroup {
    /// Moves a process into the group(s).
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Total CPU time used by the group's processes since it was created.
    pub fn usage(&self) -> Result<Duration, CgroupError> {
        match &self.usage {
            UsageFile::V2(path) => {
                let text = fs::read_to_string(path).map_err(io_err(path, "read"))?;
                let usec = text
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| CgroupError::Parse {
                        path: path.clone(),
                        what: "usage_usec",
                        text: text.clone(),
                    })?;
                Ok(Duration::from_micros(usec))
            }
            UsageFile::V1(path) => {
                let text = fs::read_to_string(path).map_err(io_err(path, "read"))?;
                let nanos = text.trim().parse::<u64>().map_err(|_| CgroupError::Parse {
                    path: path.clone(),
                    what: "cpuacct.usage",
                    text: text.clone(),
                })?;
                Ok(Duration::from_nanos(nanos))
            }
        }
    }

    /// Pids currently in the group.
    pub fn pids(&self) -> Vec<u32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    fn kill_all(&self) {
        for pid in self.pids() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Removes the group directories. The kernel refuses while a process is still
    /// inside, so this retries briefly (a killed process takes a moment to exit).
    fn remove(&self) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            let mut attempt = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if attempt >= 50 => return Err(io_err(dir, "remove")(e)),
                    Err(_) => {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for ReplicaCgroup {
    fn drop(&mut self) {
        self.kill_all();
        if let Err(e) = self.remove() {
            tracing::warn!("could not remove {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_group_names() {
        assert_eq!(owner_pid("scaleproof-4242-replica-1"), Some(4242));
        assert_eq!(owner_pid("scaleproof-4242-probe"), Some(4242));
        assert_eq!(owner_pid("system.slice"), None);
        assert_eq!(owner_pid("scaleproof-x-1"), None);
    }

    #[test]
    fn a_tree_without_cpu_controller_runs_uncapped() {
        let tmp = tempfile::tempdir().unwrap();
        let mode = CgroupDriver::detect_at(tmp.path()).mode().clone();
        assert!(matches!(mode, CpuLimitMode::Uncapped { .. }), "{mode:?}");
    }

    #[test]
    fn v2_without_cpu_in_controllers_runs_uncapped_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        match CgroupDriver::detect_at(tmp.path()).mode() {
            CpuLimitMode::Uncapped { reason } => {
                assert!(reason.contains("no cpu controller"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_with_separate_cpuacct_is_recognised() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("cpu")).unwrap();
        fs::create_dir_all(tmp.path().join("cpuacct")).unwrap();
        fs::write(tmp.path().join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        fs::write(tmp.path().join("cpuacct/cpuacct.usage"), "0").unwrap();
        let driver = CgroupDriver::detect_at(tmp.path());
        assert_eq!(
            driver.mode(),
            &CpuLimitMode::V1 {
                cpu: tmp.path().join("cpu"),
                cpuacct: tmp.path().join("cpuacct")
            }
        );
    }

    #[test]
    fn usage_is_parsed_from_both_formats() {
        let tmp = tempfile::tempdir().unwrap();
        let v2 = tmp.path().join("cpu.stat");
        fs::write(
            &v2,
            "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
        )
        .unwrap();
        let group = ReplicaCgroup {
            dirs: vec![],
            usage: UsageFile::V2(v2),
        };
        assert_eq!(group.usage().unwrap(), Duration::from_millis(1500));
        let v1 = tmp.path().join("cpuacct.usage");
        fs::write(&v1, "2000000000\n").unwrap();
        let group = ReplicaCgroup {
            dirs: vec![],
            usage: UsageFile::V1(v1),
        };
        assert_eq!(group.usage().unwrap(), Duration::from_secs(2));
    }
}
