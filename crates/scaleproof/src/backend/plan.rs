//! The plan: every step of bringing the workload up (and down), as data.
//!
//! Dry runs print it and real runs execute it, so what `--dry-run` shows is what
//! runs. External tools are [`ExternalCommand`]s; API work is a [`KubeStep`] carried
//! out by `scaleproof::cluster`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::preflight::Check;
use super::settings::Settings;
use super::versions::{
    HPA_SYNC_PERIOD, KIND_NODE_IMAGE, KIND_VERSION, METRICS_SERVER_VERSION,
    metrics_server_manifest_url,
};
use super::{BackendError, BackendKind};
use crate::cluster::{HpaOverrides, Prepared, Target, metrics_server};
use crate::manifests::Manifests;
use scaleproof_sim::timing::Timing;
use scaleproof_sim::{CargoBin, LocalContainer};

/// The Dockerfile of the service, relative to the repository root.
/// The kind cluster config, relative to the repository root.
pub const KIND_CONFIG: &str = "k8s/kind.yaml";
/// The host port kind maps to the Service's NodePort.
pub const NODE_PORT: u16 = 30080;

/// One step of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// Checks that must all pass before anything starts.
    Preflight(Vec<Check>),
    /// An external tool, run from the repository root.
    Run(ExternalCommand),
    /// Work against the Kubernetes API.
    Kube(KubeStep),
    /// Build a binary of the workspace with cargo (release profile): a local
    /// container's program (`cargo_bin` of `[backend.local.containers]`).
    Build(CargoBin),
    /// Find out how replica CPU can be limited here (cgroup v2, v1, or not at all).
    ProbeCpuLimits,
    /// Compile the scenario tests (`cargo test -p stress-tests --test scenarios
    /// --no-run`), before anything is started: a compile error must not cost a cluster.
    BuildScenarioTests,
    /// Start the local backend's simulated control plane (API, controllers, kubelet,
    /// NodePort) with this timing; the cluster steps that follow run against it.
    StartLocalCluster(Timing),
}

impl Step {
    /// A short name for the step, as `report.json` and `junit.xml` list it.
    pub fn title(&self) -> String {
        match self {
            Step::Preflight(_) => "preflight".into(),
            Step::Run(command) => {
                let words: Vec<&str> = std::iter::once(command.program.as_str())
                    .chain(command.args.iter().map(String::as_str))
                    .take_while(|w| !w.starts_with('-'))
                    .take(3)
                    .collect();
                words.join(" ")
            }
            Step::Kube(step) => step.title(),
            Step::Build(cargo) => format!("build {} (release)", cargo.package),
            Step::ProbeCpuLimits => "probe cgroup CPU limits".into(),
            Step::BuildScenarioTests => "compile scenario tests".into(),
            Step::StartLocalCluster(_) => "start the simulated control plane".into(),
        }
    }
}

/// The cargo command that compiles the scenario tests. The dev profile, like `cargo
/// test`: the engine's microseconds per request are noise against the milliseconds a
/// capped replica spends, and it reuses the build `cargo xtask ci` already made.
pub const SCENARIO_TESTS_BUILD: [&str; 6] = [
    "test",
    "-p",
    "stress-tests",
    "--test",
    "scenarios",
    "--no-run",
];

/// A command line, and why it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCommand {
    pub program: String,
    pub args: Vec<String>,
    pub why: &'static str,
    /// Whether running it creates the kind cluster (from then on the cluster is torn
    /// down on failure or Ctrl-C, unless --keep-cluster).
    pub creates_cluster: bool,
    /// Commands that do the same another way, run in order when this one fails.
    pub fallback: Vec<ExternalCommand>,
}

impl ExternalCommand {
    fn new(program: &str, args: &[&str], why: &'static str) -> Self {
        ExternalCommand {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            why,
            creates_cluster: false,
            fallback: Vec::new(),
        }
    }
}

/// API work, done by `scaleproof::cluster`.
#[derive(Debug, Clone)]
pub enum KubeStep {
    /// Read the controller-manager's HPA sync period back (kind drops patches that
    /// do not match silently).
    VerifyHpaSyncPeriod(String),
    /// Patch metrics-server's args for kind.
    ConfigureMetricsServer,
    /// Wait for a Deployment's rollout.
    WaitRollout {
        namespace: String,
        deployment: String,
        selector: String,
    },
    /// Server-side apply of the namespace and the workload.
    Apply(Box<Prepared>),
    /// Wait until the metrics API serves PodMetrics of the workload.
    WaitPodMetrics(Target),
}

impl KubeStep {
    fn title(&self) -> String {
        match self {
            KubeStep::VerifyHpaSyncPeriod(_) => "check the HPA sync period".into(),
            KubeStep::ConfigureMetricsServer => "configure metrics-server".into(),
            KubeStep::WaitRollout { deployment, .. } => format!("roll out {deployment}"),
            KubeStep::Apply(_) => "apply the workload".into(),
            KubeStep::WaitPodMetrics(_) => "wait for PodMetrics".into(),
        }
    }
}

/// When the teardown steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownWhen {
    /// After the run, and on failure or Ctrl-C (`stress`).
    Always,
    /// Only on failure or Ctrl-C (`cluster up` leaves a working cluster running).
    OnFailure,
}

/// Everything a run does, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub backend: BackendKind,
    pub context: Option<String>,
    pub image: Option<String>,
    pub prepared: Prepared,
    pub setup: Vec<Step>,
    pub teardown: Vec<Step>,
    pub teardown_when: TeardownWhen,
}

/// The plan for `settings`, with the objects prepared from `k8s/`.
pub fn plan(settings: &Settings) -> Result<Plan, BackendError> {
    let k8s = &settings.manifests_dir;
    let manifests = Manifests::load(k8s)
        .map_err(|e| BackendError::Invalid(format!("reading {}: {e}", k8s.display())))?;
    let mut prepared = Prepared::new(
        &manifests,
        &settings.namespace,
        settings.image(),
        settings.image_build.container.as_deref(),
        &HpaOverrides::default(),
    )
    .map_err(|e| BackendError::Invalid(format!("preparing the objects of k8s/: {e}")))?;
    crate::cluster::objects::set_env(
        &mut prepared.deployment,
        settings.image_build.container.as_deref(),
        &settings.env_overrides,
    );
    let target = prepared.target.clone();
    let wait_workload = Step::Kube(KubeStep::WaitRollout {
        namespace: target.namespace.clone(),
        deployment: target.deployment.clone(),
        selector: target.selector.clone(),
    });
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    match settings.backend {
        BackendKind::Local => {
            check_local_containers(&prepared, &settings.local_containers)?;
            let cargo_bins: std::collections::BTreeSet<&CargoBin> = settings
                .local_containers
                .values()
                .filter_map(|c| c.cargo_bin.as_ref())
                .collect();
            setup.extend(cargo_bins.into_iter().cloned().map(Step::Build));
            setup.push(Step::ProbeCpuLimits);
            if settings.build_tests {
                setup.push(Step::BuildScenarioTests);
            }
            // From here on, the same steps as on a cluster, against the simulated one.
            setup.push(Step::StartLocalCluster(settings.timing));
            setup.push(Step::Kube(KubeStep::VerifyHpaSyncPeriod(format!(
                "{}s",
                settings.hpa_sync_period.as_secs_f64()
            ))));
            setup.push(Step::Kube(KubeStep::Apply(Box::new(prepared.clone()))));
            setup.push(wait_workload);
            setup.push(Step::Kube(KubeStep::WaitPodMetrics(target)));
        }
        BackendKind::Kind => {
            let name = settings.cluster_name.as_str();
            let context = format!("kind-{name}");
            let image = settings.image();
            let mut checks = vec![
                Check::DockerDaemon,
                Check::Tool {
                    name: "kind",
                    version_args: &["version"],
                },
                Check::Tool {
                    name: "kubectl",
                    version_args: &["version", "--client"],
                },
            ];
            // The whole node port pool k8s/kind.yaml maps (fresh namespaces).
            checks.extend(
                crate::cluster::fresh::node_port_pool(NODE_PORT)
                    .into_iter()
                    .map(Check::PortFree),
            );
            checks.extend([
                if settings.image_prebuilt {
                    Check::LocalImage(image.to_string())
                } else {
                    Check::File(settings.image_build.dockerfile.clone())
                },
                Check::File(PathBuf::from(KIND_CONFIG)),
                Check::NoKindCluster(name.to_string()),
            ]);
            setup.push(Step::Preflight(checks));
            // Everything that compiles comes before the cluster: a build error must
            // not cost a cluster, and the cluster's clock must not run during builds.
            if settings.build_tests {
                setup.push(Step::BuildScenarioTests);
            }
            if !settings.image_prebuilt {
                // `--load`: with any buildx driver but the default `docker` one (a
                // `docker-container` builder, say) the image would otherwise stay in
                // the builder's cache, and `kind load` would find nothing.
                // `--provenance=false`: no attestation manifest, which `kind load`'s
                // `ctr import --all-platforms` cannot import from Docker's containerd
                // image store (kind issue #4236).
                let build = &settings.image_build;
                let dockerfile = build.dockerfile.display().to_string();
                let context = build.context.display().to_string();
                setup.push(Step::Run(ExternalCommand::new(
                    "docker",
                    &[
                        "buildx",
                        "build",
                        "--load",
                        "--provenance=false",
                        "-f",
                        &dockerfile,
                        "-t",
                        image,
                        &context,
                    ],
                    "build the service image under a unique tag (before the cluster: fail fast)",
                )));
            }
            setup.push(Step::Run(ExternalCommand {
                creates_cluster: true,
                ..ExternalCommand::new(
                    "kind",
                    &[
                        "create",
                        "cluster",
                        "--name",
                        name,
                        "--config",
                        KIND_CONFIG,
                        "--wait",
                        "120s",
                    ],
                    "one node, NodePort 30080 on 127.0.0.1, HPA sync period 5s",
                )
            }));
            setup.push(Step::Kube(KubeStep::VerifyHpaSyncPeriod(
                HPA_SYNC_PERIOD.to_string(),
            )));
            setup.push(Step::Run(load_image(image, name)));
            let manifest = metrics_server_manifest_url();
            setup.push(Step::Run(ExternalCommand::new(
                "kubectl",
                &["--context", &context, "apply", "-f", &manifest],
                "install metrics-server (the HPA's CPU source)",
            )));
            setup.push(Step::Kube(KubeStep::ConfigureMetricsServer));
            setup.push(Step::Kube(KubeStep::WaitRollout {
                namespace: metrics_server::NAMESPACE.to_string(),
                deployment: metrics_server::DEPLOYMENT.to_string(),
                selector: metrics_server::POD_SELECTOR.to_string(),
            }));
            setup.push(Step::Kube(KubeStep::Apply(Box::new(prepared.clone()))));
            setup.push(wait_workload);
            setup.push(Step::Kube(KubeStep::WaitPodMetrics(target)));
            if !settings.keep_cluster {
                teardown.push(Step::Run(ExternalCommand::new(
                    "kind",
                    &["delete", "cluster", "--name", name],
                    "remove the cluster and everything in it",
                )));
            }
        }
        BackendKind::Cluster => {
            // Not our cluster: no kind, no image loading, and metrics-server is
            // expected to be there already (installing it would change a shared cluster).
            if settings.build_tests {
                setup.push(Step::BuildScenarioTests);
            }
            setup.push(Step::Kube(KubeStep::Apply(Box::new(prepared.clone()))));
            setup.push(wait_workload);
            setup.push(Step::Kube(KubeStep::WaitPodMetrics(target)));
        }
    }
    Ok(Plan {
        backend: settings.backend,
        context: settings.context.clone(),
        image: settings.image.clone(),
        prepared,
        setup,
        teardown,
        teardown_when: TeardownWhen::Always,
    })
}

/// `kind load docker-image`, falling back to an image archive of the host's platform.
///
/// kind saves the image with `docker save` and imports every platform of it into the
/// node's containerd. With Docker's containerd image store (Docker 29's default, and
/// Docker Desktop's) that export can name blobs the host never had, and the import
/// fails with "content digest ... not found" (kubernetes-sigs/kind#3795); kind's
/// documented way around is an archive of one platform, loaded with `kind load
/// image-archive`.
fn load_image(image: &str, cluster: &str) -> ExternalCommand {
    // Relative: commands run from the repository root.
    let archive = "target/scaleproof-image.tar";
    let platform = format!("linux/{}", docker_arch());
    ExternalCommand {
        fallback: vec![
            ExternalCommand::new(
                "docker",
                &[
                    "image",
                    "save",
                    "--platform",
                    &platform,
                    "-o",
                    archive,
                    image,
                ],
                "one platform only: what the containerd image store can export whole",
            ),
            ExternalCommand::new(
                "kind",
                &["load", "image-archive", archive, "--name", cluster],
                "import that archive into the node",
            ),
        ],
        ..ExternalCommand::new(
            "kind",
            &["load", "docker-image", image, "--name", cluster],
            "put the image into the node (no registry involved)",
        )
    }
}

/// The host's architecture as Docker names platforms.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = self.backend;
        match &self.image {
            Some(image) => writeln!(
                f,
                "plan: backend {backend}, context {}, image {image}",
                self.context.as_deref().unwrap_or("(current)"),
            )?,
            None => writeln!(f, "plan: backend {backend}")?,
        }
        if self.backend == BackendKind::Kind {
            writeln!(
                f,
                "pinned: kind {KIND_VERSION}, node {KIND_NODE_IMAGE}, metrics-server {METRICS_SERVER_VERSION}"
            )?;
        }
        writeln!(f, "setup:")?;
        for (i, step) in self.setup.iter().enumerate() {
            write!(f, "{:>3}. {step}", i + 1)?;
        }
        match (self.teardown.is_empty(), self.backend, self.teardown_when) {
            (true, BackendKind::Local, _) => writeln!(
                f,
                "teardown: stop the simulated control plane and every pod (processes, cgroups)"
            )?,
            (true, BackendKind::Kind, _) => writeln!(f, "teardown: none (--keep-cluster)")?,
            (true, BackendKind::Cluster, _) => writeln!(
                f,
                "teardown: none (not our cluster; `cargo xtask cluster down --backend cluster` deletes namespace {})",
                self.prepared.target.namespace
            )?,
            (false, _, TeardownWhen::Always) => {
                writeln!(f, "teardown (after the run, and on failure or Ctrl-C):")?
            }
            (false, _, TeardownWhen::OnFailure) => {
                writeln!(f, "teardown (only on failure or Ctrl-C):")?
            }
        }
        for (i, step) in self.teardown.iter().enumerate() {
            write!(f, "{:>3}. {step}", i + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Preflight(checks) => {
                writeln!(f, "preflight (nothing starts unless all pass):")?;
                for check in checks {
                    writeln!(f, "       - {check}")?;
                }
                Ok(())
            }
            Step::Run(command) => {
                writeln!(f, "$ {}", shell_line(&command.program, &command.args))?;
                writeln!(f, "       # {}", command.why)?;
                if !command.fallback.is_empty() {
                    writeln!(f, "       if that fails:")?;
                }
                for other in &command.fallback {
                    writeln!(f, "       $ {}", shell_line(&other.program, &other.args))?;
                    writeln!(f, "         # {}", other.why)?;
                }
                Ok(())
            }
            Step::Kube(step) => write!(f, "{step}"),
            Step::Build(cargo) => {
                writeln!(
                    f,
                    "$ cargo build --release -p {} --bin {}",
                    cargo.package,
                    cargo.bin()
                )?;
                writeln!(f, "       # a program the local containers run")
            }
            Step::ProbeCpuLimits => writeln!(
                f,
                "probe cgroup CPU limits (v2 cpu.max or v1 cpu.cfs_quota_us; uncapped, with a warning, without permission)"
            ),
            Step::BuildScenarioTests => {
                writeln!(f, "$ cargo {}", SCENARIO_TESTS_BUILD.join(" "))?;
                writeln!(
                    f,
                    "       # the scenario tests, one per scenario of the config"
                )
            }
            Step::StartLocalCluster(timing) => writeln!(
                f,
                "start the simulated control plane on loopback: API server, Deployment and HPA \
                 controllers, metrics-server, a kubelet running pods as processes, a NodePort\n       \
                 # {timing}"
            ),
        }
    }
}

impl fmt::Display for KubeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeStep::VerifyHpaSyncPeriod(period) => writeln!(
                f,
                "check kube-controller-manager runs with --horizontal-pod-autoscaler-sync-period={period}"
            ),
            KubeStep::ConfigureMetricsServer => writeln!(
                f,
                "JSON-patch Deployment {}/{} container args: {}",
                metrics_server::NAMESPACE,
                metrics_server::DEPLOYMENT,
                metrics_server::KIND_ARGS.join(" ")
            ),
            KubeStep::WaitRollout {
                namespace,
                deployment,
                ..
            } => {
                writeln!(
                    f,
                    "wait for Deployment {namespace}/{deployment} to roll out (explained if it does not)"
                )
            }
            KubeStep::Apply(prepared) => write_apply(f, prepared),
            KubeStep::WaitPodMetrics(target) => writeln!(
                f,
                "wait until APIService {} is Available and PodMetrics of {} in {} are served",
                metrics_server::API_SERVICE,
                target.selector,
                target.namespace
            ),
        }
    }
}

fn write_apply(f: &mut fmt::Formatter<'_>, p: &Prepared) -> fmt::Result {
    let t = &p.target;
    writeln!(f, "server-side apply (field manager scaleproof, force):")?;
    let labels = p.namespace.metadata.labels.clone().unwrap_or_default();
    let pod_security: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("pod-security.kubernetes.io/"))
        .map(|(k, v)| {
            format!(
                "{}={v}",
                k.trim_start_matches("pod-security.kubernetes.io/")
            )
        })
        .collect();
    writeln!(
        f,
        "       - Namespace {} (pod security {})",
        t.namespace,
        pod_security.join(", ")
    )?;
    let container = p
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first());
    let image = container.and_then(|c| c.image.as_deref()).unwrap_or("?");
    let resources = container.and_then(|c| c.resources.as_ref());
    let cpu = |side: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        side.and_then(|m| m.get("cpu"))
            .map_or("?".to_string(), |q| q.0.clone())
    };
    let env: Vec<String> = container
        .and_then(|c| c.env.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.value.as_ref().map(|value| format!("{}={value}", v.name)))
        .collect();
    writeln!(
        f,
        "       - Deployment {}/{}: image {image}, cpu request {} limit {}, env {}, replicas left to the HPA",
        t.namespace,
        t.deployment,
        cpu(resources.and_then(|r| r.requests.as_ref())),
        cpu(resources.and_then(|r| r.limits.as_ref())),
        env.join(" ")
    )?;
    let ports: Vec<String> = p
        .service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|port| {
            let node = port
                .node_port
                .map(|n| format!(" nodePort {n}"))
                .unwrap_or_default();
            format!("{}{node}", port.port)
        })
        .collect();
    let service_type = p
        .service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP");
    writeln!(
        f,
        "       - Service {}/{}: {service_type}, port {}",
        t.namespace,
        t.service,
        ports.join(", ")
    )?;
    let spec = p.hpa.spec.clone().unwrap_or_default();
    let target_pct =
        crate::manifests::cpu_utilization_target(&p.hpa).map_or("?".to_string(), |u| u.to_string());
    writeln!(
        f,
        "       - HorizontalPodAutoscaler {}/{}: {} replicas {}..{}, cpu target {target_pct}%",
        t.namespace,
        t.hpa,
        spec.scale_target_ref.name,
        spec.min_replicas.unwrap_or(1),
        spec.max_replicas
    )
}

/// Every container of the Deployment must say how it runs without a container
/// runtime, before anything is built or started; a program given by path must exist.
fn check_local_containers(
    prepared: &Prepared,
    containers: &std::collections::BTreeMap<String, LocalContainer>,
) -> Result<(), BackendError> {
    let pod = prepared
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    for container in pod.map(|p| p.containers.as_slice()).unwrap_or_default() {
        let Some(entry) = containers.get(&container.name) else {
            return Err(BackendError::Invalid(
                scaleproof_sim::program::missing_entry_help(
                    &container.name,
                    container.image.as_deref().unwrap_or("(none)"),
                ),
            ));
        };
        if let Some(program) = entry.command.as_ref().and_then(|c| c.first())
            && program.contains('/')
            && !Path::new(program).is_file()
        {
            return Err(BackendError::Invalid(format!(
                "[backend.local.containers.{}] command: {program} is not a file",
                container.name
            )));
        }
        // A node would run these inside the image; here the entry stands for both.
        if let Some(command) = &container.command {
            tracing::warn!(
                "container {:?} sets command {command:?}, a path inside its image: the \
                 local backend runs [backend.local.containers.{}] instead, then the args",
                container.name,
                container.name
            );
        }
        if let Some(dir) = &container.working_dir {
            tracing::warn!(
                "container {:?} sets workingDir {dir:?} inside its image: the local backend \
                 uses [backend.local.containers.{}] workdir instead",
                container.name,
                container.name
            );
        }
    }
    Ok(())
}

/// `program args...` as a shell would need it typed (single-quoting where needed).
pub fn shell_line(program: &str, args: &[String]) -> String {
    let quote = |word: &str| {
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
        if plain {
            word.to_string()
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(
        backend: BackendKind,
        context: Option<&str>,
        image: &str,
        keep_cluster: bool,
    ) -> Settings {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Settings {
            backend,
            cluster_name: "scaleproof".to_string(),
            context: context.map(str::to_string),
            image: Some(image.to_string()),
            namespace: "scaleproof".to_string(),
            keep_cluster,
            image_prebuilt: false,
            image_build: Default::default(),
            build_tests: true,
            dry_run: true,
            wait_timeout: Duration::from_secs(180),
            diagnostics_dir: root.join("target/scaleproof/diagnostics"),
            manifests_dir: root.join("k8s"),
            root,
            hpa_sync_period: std::time::Duration::from_secs(5),
            timing: scaleproof_sim::Timing::preset(scaleproof_sim::TimingPreset::Fast),
            seed: 1,
            log_dir: std::path::PathBuf::from("target/scaleproof/logs"),
            env_overrides: std::collections::BTreeMap::from([(
                "IRIS_CPU_COST_MS".to_string(),
                "10".to_string(),
            )]),
            local_containers: std::collections::BTreeMap::from([(
                "iris-server".to_string(),
                LocalContainer {
                    command: None,
                    cargo_bin: Some(CargoBin {
                        package: "iris-server".into(),
                        bin: None,
                    }),
                    workdir: None,
                },
            )]),
            faults: Vec::new(),
            disruptions: Vec::new(),
        }
    }

    /// Another service's image: its Dockerfile, context and name, from
    /// `[backend.kind.image]`, checked first and built before the cluster exists.
    #[test]
    fn kind_builds_another_services_image_from_its_config() {
        let mut s = settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-fastapi:abc1234",
            false,
        );
        s.image_build = crate::backend::image::ResolvedBuild {
            dockerfile: "examples/fastapi-iris/Dockerfile".into(),
            context: "examples/fastapi-iris".into(),
            repository: "iris-fastapi".into(),
            container: None,
        };
        let text = plan(&s).expect("plan").to_string();
        assert!(
            text.contains(
                "$ docker buildx build --load --provenance=false -f examples/fastapi-iris/Dockerfile \
                 -t iris-fastapi:abc1234 examples/fastapi-iris"
            ),
            "{text}"
        );
        assert!(text.contains("examples/fastapi-iris/Dockerfile"), "{text}");
        assert!(!text.contains("crates/iris-server/Dockerfile"), "{text}");
    }

    #[test]
    fn kind_plan() {
        let plan = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        ))
        .expect("plan");
        insta::assert_snapshot!(plan.to_string());
    }

    #[test]
    fn local_plan() {
        let mut s = settings(BackendKind::Local, None, "iris-server:local", false);
        s.image = None;
        s.hpa_sync_period = std::time::Duration::from_secs(1);
        let plan = plan(&s).expect("plan");
        insta::assert_snapshot!(plan.to_string());
    }

    #[test]
    fn a_container_without_a_local_entry_is_refused_naming_what_to_add() {
        let mut s = settings(BackendKind::Local, None, "iris-server:local", false);
        s.local_containers.clear();
        let err = plan(&s).expect_err("no way to run iris-server").to_string();
        assert!(
            err.contains("[backend.local.containers.iris-server]"),
            "{err}"
        );
        assert!(err.contains("command = ["), "{err}");
        assert!(
            err.contains("\"iris-server:local\""),
            "names the image: {err}"
        );
        // Only the local backend needs the entry: a cluster runs the image.
        let mut kind = settings(BackendKind::Kind, Some("kind-scaleproof"), "i:1", false);
        kind.local_containers.clear();
        plan(&kind).expect("kind builds the image");
    }

    #[test]
    fn a_local_command_that_is_not_a_file_is_refused_before_anything_starts() {
        let mut s = settings(BackendKind::Local, None, "iris-server:local", false);
        s.local_containers.insert(
            "iris-server".into(),
            LocalContainer {
                command: Some(vec!["/no/such/server".into()]),
                cargo_bin: None,
                workdir: None,
            },
        );
        let err = plan(&s).expect_err("missing program").to_string();
        assert!(err.contains("/no/such/server is not a file"), "{err}");
    }

    #[test]
    fn cluster_plan() {
        let plan = plan(&settings(
            BackendKind::Cluster,
            Some("staging"),
            "registry.example/iris-server:v1.2.3",
            false,
        ))
        .expect("plan");
        insta::assert_snapshot!(plan.to_string());
    }

    #[test]
    fn keep_cluster_drops_the_teardown_and_up_labels_it_on_failure_only() {
        let kept = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            true,
        ))
        .expect("plan");
        assert!(kept.teardown.is_empty());
        assert!(kept.to_string().contains("teardown: none (--keep-cluster)"));

        let mut up = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        ))
        .expect("plan");
        up.teardown_when = TeardownWhen::OnFailure;
        assert!(
            up.to_string()
                .contains("teardown (only on failure or Ctrl-C):")
        );
    }

    #[test]
    fn the_cluster_is_created_by_exactly_one_step_and_after_the_image_build() {
        let plan = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        ))
        .expect("plan");
        let position = |program: &str, first_arg: &str| {
            plan.setup.iter().position(|s| {
                matches!(s, Step::Run(c) if c.program == program && c.args.first().map(String::as_str) == Some(first_arg))
            })
        };
        let creators: Vec<_> = plan
            .setup
            .iter()
            .filter(|s| matches!(s, Step::Run(c) if c.creates_cluster))
            .collect();
        assert_eq!(creators.len(), 1);
        assert!(position("docker", "buildx") < position("kind", "create"));
        assert!(position("kind", "create") < position("kind", "load"));
        // Everything that compiles comes before the cluster.
        let tests = plan
            .setup
            .iter()
            .position(|s| matches!(s, Step::BuildScenarioTests));
        assert!(tests.is_some() && tests < position("kind", "create"));
    }

    // notes on kind: `kind load` imports with `ctr import --all-platforms`, which
    // fails on the attestation manifests BuildKit adds by default (kind #4236); a
    // buildx driver other than `docker` keeps the image in its cache without `--load`.
    #[test]
    fn the_laptop_image_build_leaves_a_loadable_image_with_any_buildx_driver() {
        let plan = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        ))
        .expect("plan");
        let build = plan
            .setup
            .iter()
            .find_map(|s| match s {
                Step::Run(c) if c.program == "docker" && c.args[..2] == ["buildx", "build"] => {
                    Some(c)
                }
                _ => None,
            })
            .expect("a docker buildx build step");
        for flag in ["--load", "--provenance=false"] {
            assert!(
                build.args.iter().any(|a| a == flag),
                "{flag} in {:?}",
                build.args
            );
        }
    }

    #[test]
    fn a_prebuilt_image_is_checked_not_built() {
        let mut s = settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        );
        s.image_prebuilt = true;
        let plan = plan(&s).expect("plan");
        let text = plan.to_string();
        assert!(!text.contains("buildx build"), "{text}");
        assert!(
            text.contains("image iris-server:abc1234 in the local Docker"),
            "{text}"
        );
    }

    #[test]
    fn loading_the_image_falls_back_to_a_single_platform_archive() {
        let plan = plan(&settings(
            BackendKind::Kind,
            Some("kind-scaleproof"),
            "iris-server:abc1234",
            false,
        ))
        .expect("plan");
        let load = plan
            .setup
            .iter()
            .find_map(|s| match s {
                Step::Run(c) if c.args.first().map(String::as_str) == Some("load") => Some(c),
                _ => None,
            })
            .expect("a kind load step");
        let fallback: Vec<(&str, &str)> = load
            .fallback
            .iter()
            .map(|c| (c.program.as_str(), c.args[1].as_str()))
            .collect();
        assert_eq!(fallback, [("docker", "save"), ("kind", "image-archive")]);
        assert!(load.fallback[0].args.contains(&"--platform".to_string()));
    }

    #[test]
    fn shell_lines_quote_only_what_needs_it() {
        let args = [
            "-p".to_string(),
            "[{\"op\": \"add\"}]".to_string(),
            "it's".to_string(),
        ];
        assert_eq!(
            shell_line("kubectl", &args),
            r#"kubectl -p '[{"op": "add"}]' 'it'\''s'"#
        );
    }
}
