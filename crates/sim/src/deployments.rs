//! The Deployment (and ReplicaSet) controller of the simulated cluster: as many pods
//! of the Deployment's template as `spec.replicas` asks, created and deleted through
//! the API objects the kubelet acts on, with the Deployment's status and the events
//! the real controllers write (`ScalingReplicaSet`, `SuccessfulCreate`,
//! `SuccessfulDelete`).
//!
//! Victims of a scale-down are chosen as a ReplicaSet chooses them: pods not ready
//! before ready ones, then the newest first. A changed template replaces every pod at
//! once (the harness never rolls a template during a run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::resource::{FieldSelector, Resource, Selector};
use super::api::store::{self, Key, Store, now_rfc3339};
use super::events::{self, EventType};
use super::kubelet::NODE;

const TICK: Duration = Duration::from_millis(100);
const DEPLOYMENT_COMPONENT: &str = "deployment-controller";
const REPLICASET_COMPONENT: &str = "replicaset-controller";
const SCHEDULER_COMPONENT: &str = "default-scheduler";

/// Runs the controller until `cancel`.
pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scaled: BTreeMap<Key, i64> = BTreeMap::new();
    let mut names = NameSource::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => sync(&store, &mut scaled, &mut names),
        }
    }
}

fn sync(store: &Store, scaled: &mut BTreeMap<Key, i64>, names: &mut NameSource) {
    let (deployments, _) = store.list(
        Resource::Deployment,
        None,
        &Selector::default(),
        &FieldSelector::default(),
    );
    for deployment in deployments {
        reconcile(store, &deployment, scaled, names);
    }
}

fn reconcile(
    store: &Store,
    deployment: &Value,
    scaled: &mut BTreeMap<Key, i64>,
    names: &mut NameSource,
) {
    let meta = &deployment["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("");
    let name = meta["name"].as_str().unwrap_or("");
    let key = Key::new(Resource::Deployment, namespace, name);
    let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let template = &deployment["spec"]["template"];
    let hash = template_hash(template);
    let replica_set = format!("{name}-{hash}");
    let rs_object = json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": replica_set, "namespace": namespace,
                     "uid": format!("{}-rs", meta["uid"].as_str().unwrap_or(""))},
    });

    let selector: BTreeMap<String, String> = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    if selector.is_empty() {
        return;
    }
    let (pods, _) = store.list(
        Resource::Pod,
        Some(namespace),
        &Selector::default(),
        &FieldSelector::default(),
    );
    let owned: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            let labels = store::labels(p);
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                && p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .is_some_and(|rs| rs.starts_with(&format!("{name}-")))
        })
        .collect();
    let alive = |p: &&&Value| p["metadata"]["deletionTimestamp"].is_null();
    let current: Vec<&Value> = owned
        .iter()
        .filter(alive)
        .filter(|p| p["metadata"]["labels"]["pod-template-hash"] == json!(hash))
        .copied()
        .collect();
    let outdated: Vec<&Value> = owned
        .iter()
        .filter(alive)
        .filter(|p| p["metadata"]["labels"]["pod-template-hash"] != json!(hash))
        .copied()
        .collect();

    let previous = scaled.insert(key.clone(), desired);
    if previous != Some(desired) {
        let from = previous.unwrap_or(current.len() as i64);
        let direction = if desired >= from { "up" } else { "down" };
        if previous.is_some() || from != desired {
            events::record(
                store,
                deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {direction} replica set {replica_set} from {from} to {desired}"),
                DEPLOYMENT_COMPONENT,
            );
        }
    }

    for pod in &outdated {
        delete_pod(store, pod, &rs_object);
    }
    let count = current.len() as i64;
    if count < desired {
        for _ in count..desired {
            let pod_name = names.next(&replica_set);
            let mut pod = new_pod(
                deployment,
                template,
                &replica_set,
                &hash,
                &pod_name,
                &rs_object,
            );
            // The create goes through the API server's defaulting on a cluster.
            super::api::defaults::pod(&mut pod);
            let (pod, _) = store.put(&Key::new(Resource::Pod, namespace, &pod_name), pod);
            // One node, always room: the scheduler binds at once, and says so.
            events::record(
                store,
                &pod,
                EventType::Normal,
                "Scheduled",
                &format!("Successfully assigned {namespace}/{pod_name} to {NODE}"),
                SCHEDULER_COMPONENT,
            );
            events::record(
                store,
                &rs_object,
                EventType::Normal,
                "SuccessfulCreate",
                &format!("Created pod: {pod_name}"),
                REPLICASET_COMPONENT,
            );
        }
    } else if count > desired {
        let mut victims = current.clone();
        victims.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
                std::cmp::Reverse(p["metadata"]["name"].as_str().unwrap_or("").to_string()),
            )
        });
        for pod in victims.iter().take((count - desired) as usize) {
            delete_pod(store, pod, &rs_object);
        }
    }

    let (pods, _) = store.list(
        Resource::Pod,
        Some(namespace),
        &Selector::default(),
        &FieldSelector::default(),
    );
    let mine: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["metadata"]["labels"]["pod-template-hash"] == json!(hash))
        .filter(|p| {
            let labels = store::labels(p);
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect();
    let ready = mine.iter().filter(|p| is_ready(p)).count() as i64;
    let total = mine.len() as i64;
    let status = deployment_status(deployment, desired, total, ready, &replica_set);
    store.update(&key, |d| d["status"] = status);
}

/// Whether the pod's `Ready` condition is `True` (what a Deployment counts as ready).
pub(crate) fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Marks a pod deleted with its grace period, as the API server's graceful delete
/// does (`deletionTimestamp` = now + grace); the kubelet stops it and removes it.
pub fn delete_pod(store: &Store, pod: &Value, owner: &Value) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30)
        .max(0);
    let at = std::time::SystemTime::now() + Duration::from_secs(grace as u64);
    store.update(&Key::new(Resource::Pod, namespace, name), |p| {
        if p["metadata"]["deletionTimestamp"].is_null() {
            p["metadata"]["deletionTimestamp"] = json!(store::rfc3339(at));
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        }
    });
    events::record(
        store,
        owner,
        EventType::Normal,
        "SuccessfulDelete",
        &format!("Deleted pod: {name}"),
        REPLICASET_COMPONENT,
    );
}

fn new_pod(
    deployment: &Value,
    template: &Value,
    replica_set: &str,
    hash: &str,
    name: &str,
    rs_object: &Value,
) -> Value {
    let namespace = deployment["metadata"]["namespace"].clone();
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["pod-template-hash"] = json!(hash);
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(NODE);
    if spec["terminationGracePeriodSeconds"].is_null() {
        spec["terminationGracePeriodSeconds"] = json!(30);
    }
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Always");
    }
    json!({
        "metadata": {
            "name": name,
            "generateName": format!("{replica_set}-"),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                "uid": rs_object["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}],
            "qosClass": "Burstable",
        },
    })
}

fn deployment_status(
    deployment: &Value,
    desired: i64,
    total: i64,
    ready: i64,
    replica_set: &str,
) -> Value {
    let now = now_rfc3339();
    let previous = deployment["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c["type"] == json!(type_) && c["status"] == json!(status))
            .map_or(now.clone(), |c| {
                c["lastTransitionTime"].as_str().unwrap_or(&now).to_string()
            });
        json!({"type": type_, "status": status, "lastUpdateTime": since, "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    let available = ready >= desired;
    let complete = available && total == desired;
    let mut status = json!({
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": total,
        "updatedReplicas": total,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            if available {
                condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
            } else {
                condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
            },
            condition(
                "Progressing",
                true,
                if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                if complete {
                    format!("ReplicaSet {replica_set:?} has successfully progressed.")
                } else {
                    format!("ReplicaSet {replica_set:?} is progressing.")
                },
            ),
        ],
    });
    if total > ready {
        status["unavailableReplicas"] = json!(total - ready);
    }
    status
}

/// The `pod-template-hash`: a stable hash of the template (FNV-1a), written the way
/// the controller writes its hash (decimal digits are not used; letters and digits).
fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    encode(hash, 10)
}

/// Pod name suffixes: five characters of the alphabet the API server's name generator
/// uses (no vowels, no ambiguous characters).
#[derive(Debug, Default)]
struct NameSource {
    counter: u64,
}

impl NameSource {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!("{prefix}-{}", encode(seed, 5))
    }
}

fn encode(mut value: u64, length: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::with_capacity(length);
    for _ in 0..length {
        out.push(ALPHABET[(value % ALPHABET.len() as u64) as usize] as char);
        value /= ALPHABET.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_names_use_the_generators_alphabet() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}});
        assert_eq!(template_hash(&template), template_hash(&template.clone()));
        assert_eq!(template_hash(&template).len(), 10);
        let name = NameSource::default().next("web-abc");
        assert!(
            name.starts_with("web-abc-") && name.len() == "web-abc-".len() + 5,
            "{name}"
        );
        assert!(
            name["web-abc-".len()..]
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
    }
}
