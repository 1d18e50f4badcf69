//! What a run needs to know about its backend, from the command line and the
//! stress config.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{BackendError, BackendKind, image};
use crate::cluster::KubeAccess;
use scaleproof_sim::{LocalContainer, Timing, TimingPreset};

/// kube-controller-manager's default `--horizontal-pod-autoscaler-sync-period`.
pub const UPSTREAM_HPA_SYNC_PERIOD: Duration = Duration::from_secs(15);

/// The namespace when neither `--namespace` nor a stress config names one.
pub const DEFAULT_NAMESPACE: &str = "scaleproof";

/// Options shared by `cargo xtask cluster up` and `cargo xtask stress`.
#[derive(Debug, Clone, Args)]
pub struct ClusterOptions {
    /// Name of the kind cluster.
    #[arg(long, default_value = "scaleproof")]
    pub cluster_name: String,
    /// kubeconfig context to use with --backend cluster (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Image to deploy. Required with --backend cluster; with kind the image is built
    /// and tagged iris-server:GIT_SHORT_SHA[-dirty-UNIX_TIME].
    #[arg(long)]
    pub image: Option<String>,
    /// Namespace the workload is deployed into (created, Pod Security `restricted`)
    /// [default: `target.namespace` of the stress config, else scaleproof].
    #[arg(long)]
    pub namespace: Option<String>,
    /// Keep the kind cluster after the run (also after a failure or Ctrl-C).
    #[arg(long)]
    pub keep_cluster: bool,
    /// With kind: --image is already built in the local Docker (for example by CI
    /// with a layer cache); skip `docker build` and check the image is there.
    #[arg(long, requires = "image")]
    pub image_prebuilt: bool,
    /// Print the plan (every command and object) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for a Deployment rollout or for metrics before giving up.
    #[arg(long, default_value_t = 180)]
    pub wait_timeout_s: u64,
    /// Where the diagnostics bundle goes when bringing the cluster up fails
    /// (default: target/scaleproof/diagnostics). `stress` writes the bundle of a
    /// failed scenario to <out>/diagnostics/<scenario>.
    #[arg(long)]
    pub diagnostics_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    /// The command line's defaults.
    fn default() -> Self {
        ClusterOptions {
            cluster_name: "scaleproof".into(),
            context: None,
            image: None,
            namespace: None,
            keep_cluster: false,
            image_prebuilt: false,
            dry_run: false,
            wait_timeout_s: 180,
            diagnostics_dir: None,
        }
    }
}

/// Everything the setup of a backend is decided by.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: BackendKind,
    pub cluster_name: String,
    /// The kubeconfig context to talk to (`None`: the current context).
    pub context: Option<String>,
    /// The service image (kind and cluster; `None` on the local backend).
    pub image: Option<String>,
    pub namespace: String,
    pub keep_cluster: bool,
    /// kind: the image exists in the local Docker already; no `docker build`.
    pub image_prebuilt: bool,
    /// kind: how the image is built (`[backend.kind.image]`, else iris-server's).
    pub image_build: image::ResolvedBuild,
    /// Compile the scenario tests as a setup step (`stress` does; `cluster up` not).
    pub build_tests: bool,
    pub dry_run: bool,
    pub wait_timeout: Duration,
    pub diagnostics_dir: PathBuf,
    /// The repository root (commands run there; `k8s/` is read from there).
    pub root: PathBuf,
    /// Env vars set on the service container (the stress config's per-backend
    /// settings, such as the cost knob).
    pub env_overrides: std::collections::BTreeMap<String, String>,
    /// The manifests to deploy (`target.manifests` of the stress config; `k8s/`).
    pub manifests_dir: PathBuf,
    /// The cluster's HPA sync period: kind's is set by `k8s/kind.yaml` (and checked
    /// at setup); an existing cluster's is the controller-manager default unless the
    /// config says otherwise (`backend.cluster.sync_period_s`); the simulated one's
    /// comes from its timing.
    pub hpa_sync_period: Duration,
    /// Local: the simulated control plane's timing.
    pub timing: Timing,
    /// Local: the seed of the timing's random phases (`backend.local.seed`, else
    /// drawn for this run).
    pub seed: u64,
    /// Local: where container logs go.
    pub log_dir: PathBuf,
    /// Local: how each container runs without a runtime, by container name, with
    /// paths resolved against the stress config's directory.
    pub local_containers: std::collections::BTreeMap<String, LocalContainer>,
    /// Local: errors the simulated API plays (`[[backend.local.faults]]`).
    pub faults: Vec<scaleproof_sim::ApiFault>,
    /// Local: disruptions played after each scenario's load starts
    /// (`[[backend.local.disruptions]]`).
    pub disruptions: Vec<scaleproof_sim::Disruption>,
}

impl Settings {
    /// Resolves `options` for `backend`. With kind and no `--image`, the tag comes from
    /// git (a read-only query, also in dry runs).
    pub fn resolve(
        backend: BackendKind,
        options: ClusterOptions,
        root: PathBuf,
    ) -> Result<Self, BackendError> {
        let image = match (backend, options.image) {
            (BackendKind::Local, _) => None,
            (_, Some(image)) => Some(image),
            (BackendKind::Kind, None) => Some(image::tag_from_git(&root).map_err(|e| {
                BackendError::Invalid(format!(
                    "cannot name the image from git ({e}); pass --image NAME:TAG"
                ))
            })?),
            (BackendKind::Cluster, None) => {
                return Err(BackendError::Invalid(
                    "--backend cluster needs --image: an image the cluster's nodes can pull \
                     (scaleproof builds and loads images only into kind)"
                        .into(),
                ));
            }
        };
        if let Some(image) = &image {
            image::check_tag(image)?;
        }
        let context = match backend {
            BackendKind::Kind => {
                if options.context.is_some() {
                    return Err(BackendError::Invalid(format!(
                        "--context is for --backend cluster; kind's context is kind-{}",
                        options.cluster_name
                    )));
                }
                Some(format!("kind-{}", options.cluster_name))
            }
            BackendKind::Cluster => options.context,
            BackendKind::Local => None,
        };
        Ok(Settings {
            backend,
            cluster_name: options.cluster_name,
            context,
            image,
            namespace: options
                .namespace
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            keep_cluster: options.keep_cluster,
            image_prebuilt: options.image_prebuilt,
            image_build: Default::default(),
            build_tests: false,
            dry_run: options.dry_run,
            wait_timeout: Duration::from_secs(options.wait_timeout_s),
            diagnostics_dir: options
                .diagnostics_dir
                .unwrap_or_else(|| root.join("target/scaleproof/diagnostics")),
            manifests_dir: root.join("k8s"),
            env_overrides: Default::default(),
            hpa_sync_period: match backend {
                BackendKind::Kind => super::versions::hpa_sync_period(),
                BackendKind::Local => Timing::preset(TimingPreset::Fast).hpa_sync_period,
                BackendKind::Cluster => UPSTREAM_HPA_SYNC_PERIOD,
            },
            timing: Timing::preset(TimingPreset::Fast),
            seed: scaleproof_sim::phases::random_seed(),
            log_dir: root.join("target/scaleproof/logs"),
            local_containers: Default::default(),
            faults: Vec::new(),
            disruptions: Vec::new(),
            root,
        })
    }

    /// How to reach the API of kind or an existing cluster (the local backend's is
    /// known once its control plane runs).
    pub fn kube_access(&self) -> KubeAccess {
        KubeAccess::Kubeconfig {
            context: self.context.clone(),
        }
    }

    /// Uses `timing` for the simulated control plane (and its HPA sync period).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.hpa_sync_period = timing.hpa_sync_period;
        self.timing = timing;
        self
    }

    /// The image; resolved for kind and cluster, so only a local run lacks one.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or("iris-server:local")
    }
}
