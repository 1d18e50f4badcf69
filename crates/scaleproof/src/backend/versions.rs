//! The versions the kind backend pins, in one place (the GitHub workflow installs
//! [`KIND_VERSION`]; `k8s/kind.yaml` must name [`KIND_NODE_IMAGE`], a test checks it).

/// kind release. v0.33.0 is the newest release whose notes list a prebuilt
/// Kubernetes 1.34 node image; 1.34 matches the API the harness is compiled
/// against (k8s-openapi feature `v1_34`).
pub const KIND_VERSION: &str = "v0.33.0";

/// The node image kind v0.33.0 publishes for Kubernetes v1.34.11, pinned by the
/// digest from that release's notes (a tag alone may point at a build for another
/// kind release).
pub const KIND_NODE_IMAGE: &str =
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d";

/// metrics-server release: the 0.9.x line supports Kubernetes 1.34+ (its README's
/// compatibility matrix), the node image is 1.34.
pub const METRICS_SERVER_VERSION: &str = "v0.9.0";

/// The install manifest of [`METRICS_SERVER_VERSION`], as its release publishes it.
pub fn metrics_server_manifest_url() -> String {
    format!(
        "https://github.com/kubernetes-sigs/metrics-server/releases/download/{METRICS_SERVER_VERSION}/components.yaml"
    )
}

/// The HPA sync period `k8s/kind.yaml` gives the controller-manager.
pub const HPA_SYNC_PERIOD: &str = "5s";

/// [`HPA_SYNC_PERIOD`] as a duration.
pub fn hpa_sync_period() -> std::time::Duration {
    std::time::Duration::from_secs(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulated cluster's kind preset is the kind gate's control plane: the HPA
    /// sync period we pass to the controller manager, the metric resolution we pass to
    /// metrics-server, the controller's default CPU initialization period.
    #[test]
    fn the_simulated_kind_preset_has_the_kind_gates_periods() {
        use scaleproof_sim::{Timing, TimingPreset};
        let kind = Timing::preset(TimingPreset::Kind);
        assert_eq!(
            format!("{}s", kind.hpa_sync_period.as_secs()),
            HPA_SYNC_PERIOD
        );
        let resolution = format!("--metric-resolution={}s", kind.metric_resolution.as_secs());
        assert!(crate::cluster::metrics_server::KIND_ARGS.contains(&resolution.as_str()));
        assert_eq!(
            kind.controller.cpu_initialization_period,
            std::time::Duration::from_secs(300)
        );
    }

    fn kind_yaml() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s/kind.yaml");
        std::fs::read_to_string(&path).expect("k8s/kind.yaml is readable")
    }

    #[test]
    fn kind_yaml_pins_the_node_image_and_sync_period_of_this_module() {
        let yaml = kind_yaml();
        assert!(
            yaml.contains(&format!("image: {KIND_NODE_IMAGE}")),
            "k8s/kind.yaml must use {KIND_NODE_IMAGE}"
        );
        assert!(
            yaml.contains(&format!(
                "horizontal-pod-autoscaler-sync-period: \"{HPA_SYNC_PERIOD}\""
            )),
            "k8s/kind.yaml must set the HPA sync period to {HPA_SYNC_PERIOD}"
        );
    }

    // The workflow installs kind itself (`go install sigs.k8s.io/kind@$KIND_VERSION`);
    // a kind other than the one this module pins would create clusters the harness
    // was never checked against.
    #[test]
    fn the_stress_workflow_installs_the_pinned_kind() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.github/workflows/stress.yml");
        let text = std::fs::read_to_string(&path).expect("stress.yml is readable");
        let workflow: serde_json::Value =
            serde_norway::from_str(&text).expect("stress.yml is YAML");
        assert_eq!(
            workflow["env"]["KIND_VERSION"].as_str(),
            Some(KIND_VERSION),
            "env.KIND_VERSION in {} must be {KIND_VERSION} (backend/versions.rs)",
            path.display()
        );
        // The stress job hands it to the repository's action, whose default is what
        // other repositories get.
        assert!(text.contains("kind-version: ${{ env.KIND_VERSION }}"));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../action.yml");
        let text = std::fs::read_to_string(&path).expect("action.yml is readable");
        let action: serde_json::Value = serde_norway::from_str(&text).expect("action.yml is YAML");
        assert_eq!(
            action["inputs"]["kind-version"]["default"].as_str(),
            Some(KIND_VERSION),
            "the default kind-version in {} must be {KIND_VERSION}",
            path.display()
        );
    }

    #[test]
    fn the_sync_period_constant_and_duration_agree() {
        assert_eq!(format!("{}s", hpa_sync_period().as_secs()), HPA_SYNC_PERIOD);
    }

    #[test]
    fn kind_yaml_maps_the_node_port_to_loopback_only() {
        let config: serde_json::Value =
            serde_norway::from_str(&kind_yaml()).expect("k8s/kind.yaml is YAML");
        assert_eq!(config["networking"]["apiServerAddress"], "127.0.0.1");
        let nodes = config["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 1, "one node");
        // The node port pool of fresh namespaces, each on the same host port, on
        // loopback only.
        let mappings = nodes[0]["extraPortMappings"]
            .as_array()
            .expect("extraPortMappings");
        let pool = crate::cluster::fresh::node_port_pool(super::super::plan::NODE_PORT);
        assert_eq!(mappings.len(), pool.len());
        for (mapping, port) in mappings.iter().zip(pool) {
            assert_eq!(mapping["containerPort"], port);
            assert_eq!(mapping["hostPort"], port);
            assert_eq!(mapping["listenAddress"], "127.0.0.1");
        }
    }
}
