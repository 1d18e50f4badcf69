//! The scenario tests of this repository (`scenarios.rs`): the harness is
//! [`scaleproof::gate::scenario_tests`], here given this repository's stress.toml to
//! list when no backend was handed over (a plain `cargo test`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use scaleproof::gate::scenario_tests::{NEEDS_BACKEND, trials};

/// The config listed without a hand-over: the repository's own.
pub fn repository_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stress.toml")
}

/// Runs the harness with this process's arguments.
pub fn main() -> ExitCode {
    scaleproof::gate::scenario_tests::main(std::env::args_os(), &repository_config())
}

#[cfg(test)]
mod tests {
    use libtest_mimic::Trial;
    use scaleproof::backend::BackendKind;
    use scaleproof::cluster::KubeAccess;
    use scaleproof::gate::handover::{self, Handover, Target};

    use super::*;

    #[test]
    fn without_a_handover_the_repository_scenarios_are_listed_and_ignored() {
        let trials = trials(None, &repository_config()).expect("stress.toml parses");
        let names: Vec<&str> = trials.iter().map(Trial::name).collect();
        assert!(names.contains(&"scale-up-1000"), "{names:?}");
        assert!(trials.iter().all(Trial::has_ignored_flag));
    }

    #[test]
    fn a_scenario_added_to_the_config_is_a_test_of_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut text = std::fs::read_to_string(repo.join("stress.toml")).expect("stress.toml");
        text = text.replace(
            "manifests = \"k8s\"",
            &format!("manifests = {:?}", repo.join("k8s")),
        );
        text.push_str("\n[[scenario]]\nname = \"added-by-a-user\"\nrequests = 20\n");
        let config = dir.path().join("stress.toml");
        std::fs::write(&config, text).expect("write config");
        let handover = Handover {
            version: handover::VERSION,
            backend: BackendKind::Local,
            config,
            sets: Vec::new(),
            out_dir: dir.path().join("out"),
            profile: BackendKind::Local,
            target: Target {
                access: KubeAccess::Url {
                    url: "http://127.0.0.1:1".into(),
                },
                namespace: "iris".into(),
                url: "http://127.0.0.1:2".into(),
                hpa_sync_period_s: 1.0,
            },
            fresh_namespace: false,
        };
        let listed = trials(None, &repository_config())
            .expect("repository trials")
            .len();
        let trials = trials(Some(handover), &repository_config()).expect("trials");
        let names: Vec<&str> = trials.iter().map(Trial::name).collect();
        assert_eq!(names.len(), listed + 1, "{names:?}");
        assert_eq!(names.last(), Some(&"added-by-a-user"), "{names:?}");
        assert!(trials.iter().all(|t| !t.has_ignored_flag()), "runnable");
    }
}
