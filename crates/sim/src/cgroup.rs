//! CPU and memory limits for local replicas, enforced by the kernel the way the kubelet
//! does it: a cgroup per replica whose CFS quota equals the container's CPU limit,
//! whose CPU weight follows its CPU request (what it gets when the node is busy), and
//! whose memory limit equals the container's (the kernel OOM-kills past it). The same
//! groups give the usage metrics-server reports: CPU time, and the memory working set
//! as cAdvisor computes it (usage minus inactive file pages).
//!
//! Three situations are handled, because the machines we run on differ:
//! - cgroup v2 (GitHub runners, modern distros): `cpu.max`, usage from `cpu.stat`;
//! - cgroup v1 (this project's development machines): `cpu.cfs_quota_us`, usage from
//!   `cpuacct.usage` (the `cpuacct` hierarchy may be mounted separately from `cpu`);
//! - no permission (not root, read-only cgroupfs): replicas run uncapped. Callers must
//!   say so loudly: the figures then do not describe a 200m pod.
//!
//! The memory controller is detected on its own ([`MemoryMode`]): v2 `memory.max`,
//! `memory.current`, `memory.stat`, `memory.events`; v1 the `memory` hierarchy's
//! `memory.limit_in_bytes`, `memory.usage_in_bytes`, `memory.stat`, `memory.oom_control`.
//! Without it, memory is neither limited nor read from a cgroup (the caller falls back
//! to the process's RSS and says so).
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

/// How memory limits are enforced and the working set is read on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum MemoryMode {
    /// Unified hierarchy: the replica's group (the CPU one) under `parent`.
    V2 { parent: PathBuf },
    /// Legacy hierarchy: a group of its own under the `memory` mount.
    V1 { memory: PathBuf },
    /// No memory controller we may use: no limit, working set from the process RSS.
    Unavailable { reason: String },
}

impl MemoryMode {
    pub fn is_available(&self) -> bool {
        !matches!(self, MemoryMode::Unavailable { .. })
    }
}

/// A container's CPU as its cgroup enforces it: the limit as a CFS quota, the
/// request as its weight against everything else on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuResources {
    pub limit_millicores: u64,
    pub request_millicores: u64,
}

/// `cpu.shares` for a CPU request, as the kubelet computes it
/// (`pkg/kubelet/cm/helpers_linux.go`, `MilliCPUToShares`: 1024 per CPU, at least
/// `MinShares` 2, at most `MaxShares` 262144). Under contention this, not the limit,
/// decides how much of a busy node's CPU a container gets.
pub fn cpu_shares(request_millicores: u64) -> u64 {
    (request_millicores * 1024 / 1000).clamp(2, 262_144)
}

/// The cgroup v2 `cpu.weight` the OCI runtime writes for `shares`: runc 1.3.2+ and
/// crun 1.23+ (opencontainers/cgroups `utils.go`, `ConvertCPUSharesToCgroupV2Value`,
/// changed by opencontainers/cgroups#20) map 2, 1024 and 262144 shares onto 1, 100
/// (cgroup v2's default) and 10000 along `ceil(10^((L² + 125 L) / 612 - 7/34))`,
/// `L = log2(shares)`. Older runtimes mapped the range linearly, which gave a 1-CPU
/// container 39, under the default of every process outside Kubernetes.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// Creates and finds replica cgroups for one harness run.
#[derive(Debug, Clone)]
pub struct CgroupDriver {
    mode: CpuLimitMode,
    memory: MemoryMode,
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
        let memory = detect_memory(root);
        CgroupDriver {
            mode,
            memory,
            run_tag,
        }
    }

    /// A driver that never limits (tests of the "no permission" path).
    pub fn uncapped(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        CgroupDriver {
            mode: CpuLimitMode::Uncapped {
                reason: reason.clone(),
            },
            memory: MemoryMode::Unavailable { reason },
            run_tag: format!("{PREFIX}{}", std::process::id()),
        }
    }

    /// The same driver, without the memory controller (tests of the RSS fallback).
    pub fn without_memory(mut self, reason: impl Into<String>) -> Self {
        self.memory = MemoryMode::Unavailable {
            reason: reason.into(),
        };
        self
    }

    pub fn mode(&self) -> &CpuLimitMode {
        &self.mode
    }

    pub fn memory_mode(&self) -> &MemoryMode {
        &self.memory
    }

    /// Creates the group for replica `name` with a quota of `limit_millicores` and,
    /// when given, a memory limit of `memory_limit_bytes` (`None` when neither
    /// controller is usable).
    pub fn create(
        &self,
        name: &str,
        cpu: CpuResources,
        memory_limit_bytes: Option<u64>,
    ) -> Result<Option<ReplicaCgroup>, CgroupError> {
        let group = format!("{}-{name}", self.run_tag);
        let quota_us = (cpu.limit_millicores * CFS_PERIOD_US / 1000).max(1000);
        let shares = cpu_shares(cpu.request_millicores);
        let mut cgroup = ReplicaCgroup {
            dirs: Vec::new(),
            usage: None,
            memory: None,
        };
        // Dropping `cgroup` on an error below removes the directories made so far.
        match &self.mode {
            CpuLimitMode::Uncapped { .. } => {}
            CpuLimitMode::V2 { parent } => {
                let dir = parent.join(&group);
                make_dir(&dir)?;
                cgroup.dirs.push(dir.clone());
                cgroup.usage = Some(UsageFile::V2(dir.join("cpu.stat")));
                write(&dir.join("cpu.max"), &format!("{quota_us} {CFS_PERIOD_US}"))?;
                write(
                    &dir.join("cpu.weight"),
                    &shares_to_weight(shares).to_string(),
                )?;
            }
            CpuLimitMode::V1 { cpu, cpuacct } => {
                let cpu_dir = cpu.join(&group);
                let acct_dir = cpuacct.join(&group);
                make_dir(&cpu_dir)?;
                cgroup.dirs.push(cpu_dir.clone());
                if acct_dir != cpu_dir {
                    make_dir(&acct_dir)?;
                    cgroup.dirs.push(acct_dir.clone());
                }
                cgroup.usage = Some(UsageFile::V1(acct_dir.join("cpuacct.usage")));
                write(
                    &cpu_dir.join("cpu.cfs_period_us"),
                    &CFS_PERIOD_US.to_string(),
                )?;
                write(&cpu_dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
                write(&cpu_dir.join("cpu.shares"), &shares.to_string())?;
            }
        }
        match &self.memory {
            MemoryMode::Unavailable { .. } => {}
            MemoryMode::V2 { parent } => {
                let dir = parent.join(&group);
                if !cgroup.dirs.contains(&dir) {
                    make_dir(&dir)?;
                    cgroup.dirs.push(dir.clone());
                }
                let files = MemoryFiles::V2 { dir: dir.clone() };
                cgroup.memory = Some(files);
                if let Some(limit) = memory_limit_bytes {
                    write(&dir.join("memory.max"), &limit.to_string())?;
                    // The kubelet gives containers no swap unless asked (runc writes
                    // swap.max 0 when the swap limit equals the memory limit): the
                    // limit must OOM-kill, not page out. Absent without swap support.
                    let _ = fs::write(dir.join("memory.swap.max"), "0");
                }
            }
            MemoryMode::V1 { memory } => {
                let dir = memory.join(&group);
                make_dir(&dir)?;
                cgroup.dirs.push(dir.clone());
                cgroup.memory = Some(MemoryFiles::V1 { dir: dir.clone() });
                if let Some(limit) = memory_limit_bytes {
                    write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                    // memory+swap at the same limit: no swap, as above. Only present
                    // with swap accounting; it must follow limit_in_bytes (the kernel
                    // refuses a memsw limit below the memory limit).
                    let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
                }
            }
        }
        if cgroup.dirs.is_empty() {
            return Ok(None);
        }
        Ok(Some(cgroup))
    }

    /// Removes groups left by harness runs whose process is gone, killing what still
    /// runs inside them. Returns how many groups were removed.
    pub fn sweep_stale(&self) -> usize {
        let mut parents: Vec<&Path> = match &self.mode {
            CpuLimitMode::Uncapped { .. } => vec![],
            CpuLimitMode::V2 { parent } => vec![parent],
            CpuLimitMode::V1 { cpu, cpuacct } => vec![cpu, cpuacct],
        };
        match &self.memory {
            MemoryMode::Unavailable { .. } => {}
            MemoryMode::V2 { parent } => parents.push(parent),
            MemoryMode::V1 { memory } => parents.push(memory),
        }
        parents.sort();
        parents.dedup();
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
                    usage: None,
                    memory: None,
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

/// `key value` lines (`memory.stat`, `memory.events`, `memory.oom_control`): the value
/// of `key`.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// cAdvisor's working set: `usage` minus the first of `inactive_keys` found in
/// `memory.stat`, floored at 0; `usage` itself when none is there.
fn working_set(usage: u64, stat: &str, inactive_keys: &[&str]) -> u64 {
    inactive_keys
        .iter()
        .find_map(|key| stat_value(stat, key))
        .map_or(usage, |inactive| usage.saturating_sub(inactive))
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

fn detect_memory(root: &Path) -> MemoryMode {
    let v2_controllers = root.join("cgroup.controllers");
    if let Ok(controllers) = fs::read_to_string(&v2_controllers) {
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return MemoryMode::Unavailable {
                reason: format!("cgroup v2 at {} has no memory controller", root.display()),
            };
        }
        let subtree = root.join("cgroup.subtree_control");
        if let Err(e) = fs::write(&subtree, "+memory") {
            return MemoryMode::Unavailable {
                reason: format!(
                    "cannot enable the memory controller in {}: {e}",
                    subtree.display()
                ),
            };
        }
        return match probe_dir(root) {
            Ok(()) => MemoryMode::V2 {
                parent: root.to_path_buf(),
            },
            Err(reason) => MemoryMode::Unavailable { reason },
        };
    }
    let memory = root.join("memory");
    if memory.join("memory.limit_in_bytes").exists() {
        return match probe_dir(&memory) {
            Ok(()) => MemoryMode::V1 { memory },
            Err(reason) => MemoryMode::Unavailable { reason },
        };
    }
    MemoryMode::Unavailable {
        reason: format!("no cgroup memory controller found under {}", root.display()),
    }
}

/// Creates and removes a probe group under `parent`.
fn probe_dir(parent: &Path) -> Result<(), String> {
    let probe = parent.join(format!("{PREFIX}{}-probe", std::process::id()));
    match fs::create_dir(&probe) {
        Ok(()) => {
            let _ = fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "cannot create cgroups under {}: {e}",
            parent.display()
        )),
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

/// Where a replica's memory figures are read.
#[derive(Debug)]
enum MemoryFiles {
    /// `memory.current`, `memory.stat` (`inactive_file`), `memory.events` (`oom_kill`).
    V2 { dir: PathBuf },
    /// `memory.usage_in_bytes`, `memory.stat` (`total_inactive_file`), and
    /// `memory.oom_control` (`oom_kill`).
    V1 { dir: PathBuf },
}

/// One replica's cgroup(s). Removed on drop (best effort, after its processes exit).
#[derive(Debug)]
pub struct ReplicaCgroup {
    dirs: Vec<PathBuf>,
    /// The CPU counter, when the CPU controller is in use.
    usage: Option<UsageFile>,
    /// The memory files, when the memory controller is in use.
    memory: Option<MemoryFiles>,
}

impl ReplicaCgroup {
    /// The `cgroup.procs` file of each of the group's directories: writing a pid there
    /// moves that process in.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Moves a process into the group(s).
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Whether the group counts CPU time (the CPU controller is in use).
    pub fn counts_cpu(&self) -> bool {
        self.usage.is_some()
    }

    /// Whether the group has the memory controller (a working set and a limit).
    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// The memory working set as cAdvisor computes it, in bytes: usage minus inactive
    /// file pages (page cache the kernel would reclaim first), floored at 0. `None`
    /// without the memory controller.
    pub fn working_set(&self) -> Option<Result<u64, CgroupError>> {
        let (usage_file, inactive_keys): (PathBuf, &[&str]) = match self.memory.as_ref()? {
            MemoryFiles::V2 { dir } => (dir.join("memory.current"), &["inactive_file"]),
            // `total_` counts the group's descendants too (use_hierarchy); the plain
            // key is the fallback where the kernel has no hierarchical stats.
            MemoryFiles::V1 { dir } => (
                dir.join("memory.usage_in_bytes"),
                &["total_inactive_file", "inactive_file"],
            ),
        };
        let stat_file = usage_file.with_file_name("memory.stat");
        Some((|| {
            let usage_text =
                fs::read_to_string(&usage_file).map_err(io_err(&usage_file, "read"))?;
            let usage = usage_text
                .trim()
                .parse::<u64>()
                .map_err(|_| CgroupError::Parse {
                    path: usage_file.clone(),
                    what: "memory usage",
                    text: usage_text.clone(),
                })?;
            let stat = fs::read_to_string(&stat_file).map_err(io_err(&stat_file, "read"))?;
            Ok(working_set(usage, &stat, inactive_keys))
        })())
    }

    /// How many times the kernel's OOM killer killed a process of this group
    /// (v2 `memory.events`, v1 `memory.oom_control`; the v1 counter needs Linux 4.13).
    /// `None` without the memory controller or the counter.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.memory.as_ref()? {
            MemoryFiles::V2 { dir } => dir.join("memory.events"),
            MemoryFiles::V1 { dir } => dir.join("memory.oom_control"),
        };
        stat_value(&fs::read_to_string(file).ok()?, "oom_kill")
    }

    /// Total CPU time used by the group's processes since it was created.
    pub fn usage(&self) -> Result<Duration, CgroupError> {
        let Some(usage) = &self.usage else {
            return Err(CgroupError::Io {
                path: self.dirs.first().cloned().unwrap_or_default(),
                action: "read CPU usage",
                source: io::Error::new(io::ErrorKind::Unsupported, "no cpu controller"),
            });
        };
        match usage {
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
    fn the_cpu_request_becomes_the_kubelets_shares_and_runcs_weight() {
        assert_eq!(cpu_shares(100), 102, "the repository's 100m request");
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(0), 2, "MinShares");
        // opencontainers/cgroups' own test values for the new mapping.
        assert_eq!(shares_to_weight(1024), 100, "one CPU: cgroup v2's default");
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(102), 17, "the repository's 100m request");

        let tmp = tempfile::tempdir().unwrap();
        let driver = CgroupDriver {
            mode: CpuLimitMode::V1 {
                cpu: tmp.path().to_path_buf(),
                cpuacct: tmp.path().to_path_buf(),
            },
            ..CgroupDriver::uncapped("test")
        };
        let group = driver
            .create(
                "p",
                CpuResources {
                    limit_millicores: 200,
                    request_millicores: 100,
                },
                None,
            )
            .unwrap()
            .expect("a group");
        let dir = &group.dirs[0];
        assert_eq!(
            fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap(),
            "20000"
        );
        assert_eq!(fs::read_to_string(dir.join("cpu.shares")).unwrap(), "102");
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
            usage: Some(UsageFile::V2(v2)),
            memory: None,
        };
        assert_eq!(group.usage().unwrap(), Duration::from_millis(1500));
        let v1 = tmp.path().join("cpuacct.usage");
        fs::write(&v1, "2000000000\n").unwrap();
        let group = ReplicaCgroup {
            dirs: vec![],
            usage: Some(UsageFile::V1(v1)),
            memory: None,
        };
        assert_eq!(group.usage().unwrap(), Duration::from_secs(2));
    }

    /// The working set as cAdvisor computes it for metrics-server:
    /// google/cadvisor `lib/container/libcontainer/handler.go`, `setMemoryStats`
    /// (checked at 6a0c4f2): `workingSet := ret.Memory.Usage`, minus
    /// `Stats["total_inactive_file"]` on v1 or `Stats["inactive_file"]` on v2 when
    /// present, floored at 0. Usage is runc's: v1 `memory.usage_in_bytes`, v2
    /// `memory.current`.
    #[test]
    fn working_set_is_usage_minus_inactive_file_as_cadvisor_computes_it() {
        let v2_stat = "anon 10485760\nfile 4194304\nactive_file 1048576\ninactive_file 3145728\n";
        assert_eq!(
            working_set(20 << 20, v2_stat, &["inactive_file"]),
            (20 << 20) - 3_145_728
        );
        let v1_stat = "cache 4096\ninactive_file 100\ntotal_cache 8192\ntotal_inactive_file 8192\n";
        assert_eq!(
            working_set(10_000, v1_stat, &["total_inactive_file", "inactive_file"]),
            10_000 - 8192
        );
        // No hierarchical stats: the plain key.
        assert_eq!(
            working_set(
                10_000,
                "inactive_file 100\n",
                &["total_inactive_file", "inactive_file"]
            ),
            9_900
        );
        // More inactive file pages than usage (stats read at different moments): 0.
        assert_eq!(
            working_set(10, "inactive_file 100\n", &["inactive_file"]),
            0
        );
        // No key at all: the usage.
        assert_eq!(working_set(10, "anon 10\n", &["inactive_file"]), 10);
        // `inactive_file` must not match `total_inactive_file` or `inactive_file_x`.
        assert_eq!(stat_value("total_inactive_file 5\n", "inactive_file"), None);
    }

    #[test]
    fn working_set_and_oom_kills_are_read_from_the_group_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fs::write(dir.join("memory.current"), "52428800\n").unwrap();
        fs::write(
            dir.join("memory.stat"),
            "anon 50000000\ninactive_file 2428800\n",
        )
        .unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        let group = ReplicaCgroup {
            dirs: vec![],
            usage: None,
            memory: Some(MemoryFiles::V2 { dir: dir.clone() }),
        };
        assert_eq!(group.working_set().unwrap().unwrap(), 50_000_000);
        assert_eq!(group.oom_kills(), Some(1));
        assert!(!group.counts_cpu());
        assert!(group.usage().is_err());

        let v1 = tmp.path().join("v1");
        fs::create_dir(&v1).unwrap();
        fs::write(v1.join("memory.usage_in_bytes"), "1000000\n").unwrap();
        fs::write(v1.join("memory.stat"), "total_inactive_file 1000\n").unwrap();
        fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        let group = ReplicaCgroup {
            dirs: vec![],
            usage: None,
            memory: Some(MemoryFiles::V1 { dir: v1 }),
        };
        assert_eq!(group.working_set().unwrap().unwrap(), 999_000);
        assert_eq!(group.oom_kills(), Some(2));
    }

    #[test]
    fn v1_memory_hierarchy_is_recognised_and_v2_without_it_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("memory")).unwrap();
        fs::write(tmp.path().join("memory/memory.limit_in_bytes"), "-1").unwrap();
        assert_eq!(
            CgroupDriver::detect_at(tmp.path()).memory_mode(),
            &MemoryMode::V1 {
                memory: tmp.path().join("memory")
            }
        );
        let v2 = tempfile::tempdir().unwrap();
        fs::write(v2.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        match CgroupDriver::detect_at(v2.path()).memory_mode() {
            MemoryMode::Unavailable { reason } => {
                assert!(reason.contains("no memory controller"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
