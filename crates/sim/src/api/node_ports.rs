//! The API server's node port allocation for Services, with its texts (kubernetes
//! `pkg/registry/core/service/portallocator/allocator.go`: `ErrAllocated`,
//! `ErrNotInRange`; applied by the Service storage, `pkg/registry/core/service/storage/alloc.go`).
//!
//! A node port is the node's, not the namespace's: one Service in the whole cluster
//! may hold it, so a second namespace applying the same manifests with the same
//! `nodePort` is refused, as on kind. A port the applied object leaves out is kept
//! from the Service's previous version, or allocated. Upstream allocates at random,
//! preferring the range above its static band (the lowest min(max(16, size/32), 128)
//! ports, 30000-30085 for the default range, are left to explicit requests); here the
//! lowest free port of that upper range, then of the static band: deterministic, and
//! nothing a client may rely on either way.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde_json::{Value, json};

use super::resource::{FieldSelector, Resource, Selector};
use super::status::{self, ApiError, FieldError};
use super::store::{Key, Store};

/// `--service-node-port-range`'s default.
pub const RANGE: RangeInclusive<u16> = 30000..=32767;

/// The static band's size for [`RANGE`] (`calculateRangeOffset` upstream).
fn static_band() -> u16 {
    let size = u32::from(RANGE.end() - RANGE.start()) + 1;
    (size / 32).clamp(16, 128) as u16
}

/// Checks and fills in the node ports of `service` (about to be stored under `key`),
/// given what the Service was before (`existing`) and every other Service in `store`.
pub fn allocate(
    store: &Store,
    key: &Key,
    existing: Option<&Value>,
    service: &mut Value,
) -> Result<(), ApiError> {
    let service_type = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(service_type, "NodePort" | "LoadBalancer") {
        return Ok(());
    }
    let mut taken = held_by_others(store, key);
    let mut errors = Vec::new();
    let Some(ports) = service["spec"]["ports"].as_array_mut() else {
        return Ok(());
    };
    for (i, port) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        match port["nodePort"].as_i64() {
            Some(asked) => {
                let in_range = u16::try_from(asked).is_ok_and(|p| RANGE.contains(&p));
                if !in_range {
                    errors.push(FieldError::invalid(
                        &field,
                        &json!(asked),
                        &format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            RANGE.start(),
                            RANGE.end()
                        ),
                    ));
                } else if !taken.insert(asked as u16) {
                    errors.push(FieldError::invalid(
                        &field,
                        &json!(asked),
                        "provided port is already allocated",
                    ));
                }
            }
            None => {
                let kept = previous_node_port(existing, port).filter(|p| !taken.contains(p));
                let Some(chosen) = kept.or_else(|| free_port(&taken)) else {
                    return Err(status::internal(
                        "failed to allocate a nodePort: range is full",
                    ));
                };
                taken.insert(chosen);
                port["nodePort"] = json!(chosen);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(status::invalid("", "Service", &key.name, &errors))
    }
}

/// The node ports every Service but `key` holds.
fn held_by_others(store: &Store, key: &Key) -> BTreeSet<u16> {
    let (services, _) = store.list(
        Resource::Service,
        None,
        &Selector::default(),
        &FieldSelector::default(),
    );
    services
        .iter()
        .filter(|s| {
            s["metadata"]["namespace"].as_str() != Some(key.namespace.as_str())
                || s["metadata"]["name"].as_str() != Some(key.name.as_str())
        })
        .flat_map(|s| s["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok()))
        .collect()
}

/// The node port the Service's previous version gave the same `port`.
fn previous_node_port(existing: Option<&Value>, port: &Value) -> Option<u16> {
    existing?["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == port["port"])
        .and_then(|p| p["nodePort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

fn free_port(taken: &BTreeSet<u16>) -> Option<u16> {
    let band_end = RANGE.start() + static_band();
    (band_end..=*RANGE.end())
        .chain(*RANGE.start()..band_end)
        .find(|p| !taken.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, node_port: Option<u16>) -> (Key, Value) {
        let mut port = json!({"port": 80, "targetPort": 8000});
        if let Some(n) = node_port {
            port["nodePort"] = json!(n);
        }
        (
            Key::new(Resource::Service, namespace, "web"),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": namespace},
                   "spec": {"type": "NodePort", "ports": [port]}}),
        )
    }

    fn store_with(services: &[(Key, Value)]) -> Store {
        let store = Store::default();
        for (key, value) in services {
            store.put(key, value.clone());
        }
        store
    }

    #[test]
    fn a_node_port_held_in_another_namespace_is_refused_with_the_api_servers_words() {
        let store = store_with(&[service("a", Some(30080))]);
        let (key, mut second) = service("b", Some(30080));
        let err = allocate(&store, &key, None, &mut second).expect_err("taken");
        assert_eq!(err.code, 422);
        assert_eq!(
            err.body["message"],
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: \
             provided port is already allocated"
        );
        // Another port is fine, and so is re-applying the holder itself.
        let (key, mut other) = service("b", Some(30081));
        allocate(&store, &key, None, &mut other).expect("free port");
        let (key, mut same) = service("a", Some(30080));
        let existing = store.get(&key);
        allocate(&store, &key, existing.as_ref(), &mut same).expect("its own port");
    }

    #[test]
    fn out_of_range_is_refused_and_a_missing_port_is_kept_or_allocated() {
        let store = store_with(&[service("a", Some(30086))]);
        let (key, mut low) = service("b", Some(8080));
        let err = allocate(&store, &key, None, &mut low).expect_err("out of range");
        let message = err.body["message"].as_str().unwrap_or("");
        assert!(
            message.ends_with(
                "Invalid value: 8080: provided port is not in the valid range. \
                 The range of valid ports is 30000-32767"
            ),
            "{message}"
        );
        // Allocated above the static band, past what is taken.
        let (key, mut none) = service("b", None);
        allocate(&store, &key, None, &mut none).expect("allocated");
        assert_eq!(none["spec"]["ports"][0]["nodePort"], 30087);
        // Re-applied without it: the previous allocation stays.
        let previous = none.clone();
        let (key, mut again) = service("b", None);
        allocate(&store, &key, Some(&previous), &mut again).expect("kept");
        assert_eq!(again["spec"]["ports"][0]["nodePort"], 30087);
    }
}
