//! Events, as the controllers and the kubelet record them (client-go
//! `tools/record`): named `<object>.<hex>`, counted when the same event repeats,
//! with `source.component` and `reportingComponent` set and `eventTime` null.

use serde_json::{Value, json};

use super::api::resource::{FieldSelector, Resource, Selector};
use super::api::store::{Key, Store, now_rfc3339};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Records an event about `object` (a stored object: its kind, name, namespace, uid
/// and apiVersion are referenced), or counts it again when the last identical one
/// is still there.
pub fn record(
    store: &Store,
    object: &Value,
    event_type: EventType,
    reason: &str,
    message: &str,
    component: &str,
) {
    let meta = &object["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let name = meta["name"].as_str().unwrap_or("");
    let now = now_rfc3339();
    let (existing, _) = store.list(
        Resource::Event,
        Some(namespace),
        &Selector::default(),
        &FieldSelector::default(),
    );
    let same = existing.iter().find(|e| {
        e["involvedObject"]["uid"] == meta["uid"]
            && e["reason"] == json!(reason)
            && e["message"] == json!(message)
    });
    if let Some(same) = same {
        let key = Key::new(
            Resource::Event,
            namespace,
            same["metadata"]["name"].as_str().unwrap_or(""),
        );
        store.update(&key, |e| {
            let count = e["count"].as_i64().unwrap_or(1) + 1;
            e["count"] = json!(count);
            e["lastTimestamp"] = json!(now);
        });
        return;
    }
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let event_name = format!("{name}.{unique:x}");
    let event = json!({
        "metadata": {"name": event_name, "namespace": namespace},
        "involvedObject": {
            "kind": object["kind"], "namespace": namespace, "name": name,
            "uid": meta["uid"], "apiVersion": object["apiVersion"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match event_type { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    store.put(&Key::new(Resource::Event, namespace, &event_name), event);
}
