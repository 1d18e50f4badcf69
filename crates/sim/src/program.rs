//! What stands for a container's image when there is no container runtime.
//!
//! A node pulls the image and runs its entrypoint with the manifest's `args`, `env`
//! and ports. The simulated node has no images: `[backend.local.containers.<name>]`
//! in `stress.toml` says which program plays the image of the container `<name>`,
//! either a command line on this machine or a binary of this Cargo workspace. All the
//! rest (args, env, ports, probes, limits) still comes from the manifest, unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[backend.local.containers.<name>]` as written in `stress.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalContainer {
    /// The program and its leading arguments: the image's entrypoint (and the
    /// manifest's `command`, which names paths inside the image). A first word with a
    /// `/` is a path relative to the config file's directory; without one it is
    /// looked up on `PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Or: a binary of this Cargo workspace, built with `cargo build --release` before
    /// the cluster starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cargo_bin: Option<CargoBin>,
    /// The working directory (the image's `WORKDIR`), relative to the config file's
    /// directory. Default: the repository root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
}

/// A binary of the workspace: `cargo build --release -p <package> --bin <bin>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CargoBin {
    pub package: String,
    /// Default: the package's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
}

impl CargoBin {
    /// The binary's name.
    pub fn bin(&self) -> &str {
        self.bin.as_deref().unwrap_or(&self.package)
    }
}

impl LocalContainer {
    /// The entry with its relative paths made absolute against `base` (the config
    /// file's directory), as the process will see them from any working directory.
    pub fn resolved(&self, base: &Path) -> LocalContainer {
        let command = self.command.as_ref().map(|command| {
            let mut command = command.clone();
            if let Some(first) = command.first_mut()
                && first.contains('/')
                && Path::new(first.as_str()).is_relative()
            {
                *first = base.join(first.as_str()).display().to_string();
            }
            command
        });
        LocalContainer {
            command,
            cargo_bin: self.cargo_bin.clone(),
            workdir: self.workdir.as_ref().map(|w| base.join(w)),
        }
    }

    /// The program, given the paths of the built workspace binaries; `None` for a
    /// `cargo_bin` that was not built.
    pub fn program(&self, built: &BTreeMap<CargoBin, PathBuf>) -> Option<LocalProgram> {
        let command = match (&self.command, &self.cargo_bin) {
            (Some(command), _) => command.clone(),
            (None, Some(cargo)) => vec![built.get(cargo)?.display().to_string()],
            (None, None) => return None,
        };
        Some(LocalProgram {
            command,
            workdir: self.workdir.clone(),
        })
    }
}

/// How the simulated kubelet starts one container: `command` then the manifest's
/// `args`, in `workdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalProgram {
    /// The executable (a path, or a name looked up on `PATH`) and its leading args.
    pub command: Vec<String>,
    /// The process's working directory; `None`: the harness's.
    pub workdir: Option<PathBuf>,
}

impl LocalProgram {
    /// A program with no leading args, run from the harness's directory.
    pub fn executable(path: impl Into<PathBuf>) -> Self {
        LocalProgram {
            command: vec![path.into().display().to_string()],
            workdir: None,
        }
    }

    /// The executable: the command's first word.
    pub fn executable_path(&self) -> &str {
        self.command.first().map(String::as_str).unwrap_or_default()
    }
}

/// What to add to `stress.toml` so the local backend can run `container`: the error
/// of a manifest container that has no entry.
pub fn missing_entry_help(container: &str, image: &str) -> String {
    format!(
        "the local backend has no container runtime and does not know what image {image:?} \
         of container {container:?} runs; add to stress.toml, for a program on this machine:\n\n\
         [backend.local.containers.{container}]\n\
         command = [\"path/to/server\"]   # the image's entrypoint; the manifest's args follow\n\
         workdir = \".\"                  # optional: the image's WORKDIR\n\n\
         or, for a binary of this Cargo workspace:\n\n\
         [backend.local.containers.{container}]\n\
         cargo_bin = {{ package = \"my-server\" }}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_the_config_files_and_bare_names_stay_for_path() {
        let entry = LocalContainer {
            command: Some(vec!["bin/server".into(), "--flag".into()]),
            cargo_bin: None,
            workdir: Some("app".into()),
        };
        let resolved = entry.resolved(Path::new("/repo/examples"));
        assert_eq!(
            resolved.command,
            Some(vec!["/repo/examples/bin/server".into(), "--flag".into()])
        );
        assert_eq!(resolved.workdir, Some(PathBuf::from("/repo/examples/app")));
        let bare = LocalContainer {
            command: Some(vec!["python3".into()]),
            cargo_bin: None,
            workdir: None,
        };
        assert_eq!(
            bare.resolved(Path::new("/repo")).command,
            Some(vec!["python3".into()])
        );
    }

    #[test]
    fn a_cargo_bin_runs_the_built_binary() {
        let cargo = CargoBin {
            package: "iris-server".into(),
            bin: None,
        };
        let entry = LocalContainer {
            command: None,
            cargo_bin: Some(cargo.clone()),
            workdir: None,
        };
        assert_eq!(entry.program(&BTreeMap::new()), None);
        let built = BTreeMap::from([(cargo, PathBuf::from("/t/release/iris-server"))]);
        assert_eq!(
            entry.program(&built),
            Some(LocalProgram::executable("/t/release/iris-server"))
        );
    }
}
