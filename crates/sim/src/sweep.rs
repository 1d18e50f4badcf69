//! Leftovers of a harness that was SIGKILLed: its cgroups (with their processes) and
//! the processes it started outside cgroups (uncapped runs). Each run keeps a
//! registry under `$TMPDIR/scaleproof-runs/<pid>/`; a later run removes the
//! registries of dead harnesses and kills what they list, but only processes whose
//! start time still matches (a reused pid is left alone).

use std::path::{Path, PathBuf};

/// This run's registry: one line `<pid> <start time>` per process it started.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
}

fn root() -> PathBuf {
    std::env::temp_dir().join("scaleproof-runs")
}

impl Registry {
    /// Creates this run's registry (after sweeping the dead runs' ones).
    pub fn create() -> std::io::Result<(Self, usize)> {
        let swept = sweep(&root());
        let dir = root().join(std::process::id().to_string());
        std::fs::create_dir_all(&dir)?;
        Ok((Registry { dir }, swept))
    }

    /// Records a process this run started.
    pub fn add(&self, pid: u32) {
        if let Some(start) = start_time(pid) {
            use std::io::Write;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("pids"));
            if let Ok(mut file) = file {
                let _ = writeln!(file, "{pid} {start}");
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the registries of harnesses that are gone, killing their processes.
/// Returns how many processes were killed.
fn sweep(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(owner) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let listed = std::fs::read_to_string(entry.path().join("pids")).unwrap_or_default();
        for line in listed.lines() {
            let mut words = line.split_whitespace();
            let (Some(pid), Some(start)) = (
                words.next().and_then(|p| p.parse::<u32>().ok()),
                words.next().and_then(|s| s.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if start_time(pid) == Some(start)
                && let Ok(raw) = i32::try_from(pid)
                && nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
            {
                killed += 1;
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
    killed
}

/// A process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_harnesses_processes_are_killed_and_its_registry_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A harness pid that cannot exist, with one live process of ours listed.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let dead = dir.path().join("4194303999");
        std::fs::create_dir_all(&dead).expect("dir");
        let start = start_time(child.id()).expect("start time");
        std::fs::write(
            dead.join("pids"),
            format!("{} {start}\n{} 1\n", child.id(), u32::MAX),
        )
        .expect("write");
        assert_eq!(sweep(dir.path()), 1);
        assert!(!dead.exists());
        let status = child.wait().expect("reaped");
        assert!(!status.success(), "killed");
    }
}
