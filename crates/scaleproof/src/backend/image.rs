//! The image tag: unique per commit (and per build of a dirty tree), never `:latest`.
//!
//! A `:latest` tag makes Kubernetes default to `imagePullPolicy: Always`, so kind
//! would try to pull an image that only exists in its node; a reused tag would let a
//! node keep running a stale build.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use xshell::{Shell, cmd};

use super::BackendError;

/// The image repository the service is built as.
pub const REPOSITORY: &str = "iris-server";

/// This repository's service image: its Dockerfile, built from the repository root.
pub const DOCKERFILE: &str = "crates/iris-server/Dockerfile";

/// `[backend.kind.image]`: how kind builds the service image (another service's
/// Dockerfile), instead of this repository's iris-server. The image replaces the image
/// of the Deployment's container `container` (default: its first); `--image` with
/// `--image-prebuilt` skips the build.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    /// The Dockerfile, relative to the config file's directory.
    pub dockerfile: PathBuf,
    /// The build context, relative to the config file's directory (default: that
    /// directory).
    #[serde(default)]
    pub context: Option<PathBuf>,
    /// The image's name; the tag is the git commit as for iris-server
    /// (default: the Deployment's name).
    #[serde(default)]
    pub repository: Option<String>,
    /// Which container of the Deployment runs the image (and gets `[backend.kind.env]`),
    /// by name (default: the first). A pod with sidecars names its service here.
    #[serde(default)]
    pub container: Option<String>,
}

/// The image build a kind run does, paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBuild {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub repository: String,
    /// The container the image replaces; `None`: the Deployment's first.
    pub container: Option<String>,
}

impl Default for ResolvedBuild {
    /// iris-server's, from the repository root (paths relative to it).
    fn default() -> Self {
        ResolvedBuild {
            dockerfile: PathBuf::from(DOCKERFILE),
            context: PathBuf::from("."),
            repository: REPOSITORY.to_string(),
            container: None,
        }
    }
}

impl ImageBuild {
    /// Paths against `base` (the config's directory), shown relative to `root` (the
    /// directory commands run in) where they lie under it.
    pub fn resolved(&self, base: &Path, root: &Path, deployment: &str) -> ResolvedBuild {
        let shown = |path: PathBuf| match path.strip_prefix(root) {
            Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from("."),
            Ok(rel) => rel.to_path_buf(),
            Err(_) => path,
        };
        ResolvedBuild {
            dockerfile: shown(base.join(&self.dockerfile)),
            context: shown(base.join(self.context.as_deref().unwrap_or(Path::new(".")))),
            repository: self
                .repository
                .clone()
                .unwrap_or_else(|| deployment.to_string()),
            container: self.container.clone(),
        }
    }
}

/// `tag` (as [`tag_for`] makes it) under another repository name.
pub fn with_repository(tag: &str, repository: &str) -> String {
    match tag.split_once(':') {
        Some((_, version)) => format!("{repository}:{version}"),
        None => tag.to_string(),
    }
}

/// `iris-server:<sha>`, or `iris-server:<sha>-dirty-<unix seconds>` when the work tree
/// has uncommitted changes (each build of a dirty tree is different).
pub fn tag_for(short_sha: &str, dirty: bool, unix_seconds: u64) -> String {
    if dirty {
        format!("{REPOSITORY}:{short_sha}-dirty-{unix_seconds}")
    } else {
        format!("{REPOSITORY}:{short_sha}")
    }
}

/// The tag for the repository at `root`, from `git rev-parse` and `git status`.
pub fn tag_from_git(root: &Path) -> Result<String, xshell::Error> {
    let sh = Shell::new()?;
    sh.change_dir(root);
    let sha = cmd!(sh, "git rev-parse --short HEAD").quiet().read()?;
    let status = cmd!(sh, "git status --porcelain").quiet().read()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(tag_for(sha.trim(), !status.trim().is_empty(), now))
}

/// Refuses untagged and `:latest` images, for the reason in the module docs.
pub fn check_tag(image: &str) -> Result<(), BackendError> {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tag = name
        .split_once('@')
        .map_or(name, |(n, _)| n)
        .split_once(':')
        .map(|(_, t)| t);
    match tag {
        _ if name.contains('@') => Ok(()), // pinned by digest
        Some(t) if t != "latest" && !t.is_empty() => Ok(()),
        _ => Err(BackendError::Invalid(format!(
            "image `{image}` has no tag or uses `:latest`: give it a unique tag \
             (`:latest` makes Kubernetes pull it, and kind nodes cannot)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Dockerfile's dependency layer loads the whole workspace with stub sources:
    /// cargo refuses to build if a member's manifest is missing. A new crate that is
    /// not copied and stubbed there breaks the kind gate's image build (which no
    /// machine here can run), so the list is checked against the workspace.
    #[test]
    fn the_dockerfile_copies_and_stubs_every_workspace_member() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dockerfile = std::fs::read_to_string(root.join(DOCKERFILE)).expect("Dockerfile");
        let workspace: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml"))
                .expect("workspace manifest");
        let patterns = workspace["workspace"]["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m.as_str())
            .map(str::to_string);
        let mut members = Vec::new();
        for pattern in patterns {
            match pattern.strip_suffix("/*") {
                Some(dir) => {
                    for entry in std::fs::read_dir(root.join(dir))
                        .expect("member dir")
                        .flatten()
                    {
                        if entry.path().join("Cargo.toml").exists() {
                            members.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
                        }
                    }
                }
                None => members.push(pattern),
            }
        }
        assert!(members.len() >= 6, "{members:?}");
        let stubs = dockerfile
            .lines()
            .find(|l| l.contains("for member in"))
            .expect("the stub loop");
        for member in &members {
            assert!(
                dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
                "crates/iris-server/Dockerfile does not COPY {member}/Cargo.toml"
            );
            assert!(
                member == "tests" || stubs.contains(member.as_str()),
                "crates/iris-server/Dockerfile does not stub {member}'s sources"
            );
        }
    }

    #[test]
    fn another_services_build_resolves_against_its_config_and_shows_relative_paths() {
        let build = ImageBuild {
            dockerfile: "Dockerfile".into(),
            context: None,
            repository: None,
            container: None,
        };
        let resolved = build.resolved(
            Path::new("/repo/examples/app"),
            Path::new("/repo"),
            "iris-fastapi",
        );
        assert_eq!(
            resolved.dockerfile,
            PathBuf::from("examples/app/Dockerfile")
        );
        assert_eq!(resolved.context, PathBuf::from("examples/app"));
        assert_eq!(resolved.repository, "iris-fastapi");
        // Outside the root (the action runs scaleproof from its own checkout).
        let elsewhere = build.resolved(Path::new("/work/app"), Path::new("/action"), "d");
        assert_eq!(elsewhere.dockerfile, PathBuf::from("/work/app/Dockerfile"));
        assert_eq!(
            with_repository("iris-server:abc1234-dirty-9", "iris-fastapi"),
            "iris-fastapi:abc1234-dirty-9"
        );
    }

    #[test]
    fn clean_and_dirty_tags() {
        assert_eq!(tag_for("abc1234", false, 99), "iris-server:abc1234");
        assert_eq!(
            tag_for("abc1234", true, 1764300000),
            "iris-server:abc1234-dirty-1764300000"
        );
    }

    #[test]
    fn latest_and_untagged_images_are_refused() {
        assert!(check_tag("iris-server:abc1234").is_ok());
        assert!(check_tag("registry.example:5000/iris-server:v1").is_ok());
        assert!(check_tag("ghcr.io/x/iris-server@sha256:0123").is_ok());
        for bad in [
            "iris-server",
            "iris-server:latest",
            "registry.example:5000/iris-server",
        ] {
            let err = check_tag(bad).expect_err(bad).to_string();
            assert!(err.contains(":latest"), "{err}");
        }
    }
}
