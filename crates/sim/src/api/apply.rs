//! Server-side apply, as far as the harness uses it: field managers, `force`, field
//! ownership conflicts, strict typing of the applied object and the validation the
//! API server runs for the objects of `k8s/`.
//!
//! The merge follows server-side apply's effect for these objects: fields in the
//! applied configuration are set; fields the same manager applied before and no
//! longer applies are removed; fields other managers own (the HPA's `spec.replicas`
//! through the scale subresource) are kept; `status` is not the applier's. Lists are
//! atomic here (upstream merges `containers` by name), which is the same outcome when
//! one manager owns the whole workload, as the harness does.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde_json::{Value, json};

use super::resource::Resource;
use super::status::{self, ApiError, FieldError};
use super::store::{Key, Store};

/// A field manager as server-side apply tells them apart: its name, and for writes
/// that are not applies, the operation's subresource and API version
/// (apimachinery `pkg/util/managedfields/internal/manager.go` identifiers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Manager {
    pub name: String,
    /// `None` for an apply; `Some((subresource, apiVersion))` for an update, e.g. the
    /// HPA controller's write of `spec.replicas` through `scale`.
    pub update: Option<(String, String)>,
}

impl Manager {
    pub fn applier(name: &str) -> Self {
        Manager {
            name: name.to_string(),
            update: None,
        }
    }

    /// An update through `subresource` (empty for the main resource).
    pub fn updater(name: &str, subresource: &str, api_version: &str) -> Self {
        Manager {
            name: name.to_string(),
            update: Some((subresource.to_string(), api_version.to_string())),
        }
    }
}

impl std::fmt::Display for Manager {
    /// As a conflict names it (`printManager` in apimachinery
    /// `pkg/util/managedfields/internal/conflict.go`): the quoted name, then the
    /// subresource and API version of an update; real identifiers carry no time.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.name)?;
        if let Some((subresource, api_version)) = &self.update {
            if !subresource.is_empty() {
                write!(f, " with subresource {subresource:?}")?;
            }
            write!(f, " using {api_version}")?;
        }
        Ok(())
    }
}

/// Which fields each manager wrote last, per object.
#[derive(Debug, Default)]
pub struct Owners(BTreeMap<Key, BTreeMap<Manager, BTreeSet<String>>>);

impl Owners {
    /// Records that `manager` now owns `fields` of `key` (a subresource write, e.g.
    /// the HPA controller's `spec.replicas`), taking them from other managers.
    pub fn claim(&mut self, key: &Key, manager: &Manager, fields: &[&str]) {
        let managers = self.0.entry(key.clone()).or_default();
        for owned in managers.values_mut() {
            for field in fields {
                owned.remove(*field);
            }
        }
        let mine = managers.entry(manager.clone()).or_default();
        mine.extend(fields.iter().map(|f| f.to_string()));
        managers.retain(|_, owned| !owned.is_empty());
    }

    /// `metadata.managedFields` of `key` as the API server lists them (without the
    /// `fieldsV1` sets, which nothing here reads).
    pub fn managed_fields(&self, key: &Key, api_version: &str, time: &str) -> Value {
        let entries: Vec<Value> = self
            .0
            .get(key)
            .into_iter()
            .flatten()
            .map(|(manager, _)| {
                let mut entry = json!({
                    "manager": manager.name,
                    "operation": if manager.update.is_some() { "Update" } else { "Apply" },
                    "apiVersion": api_version,
                    "time": time,
                    "fieldsType": "FieldsV1",
                });
                if let Some((subresource, _)) = &manager.update
                    && !subresource.is_empty()
                {
                    entry["subresource"] = json!(subresource);
                }
                entry
            })
            .collect();
        Value::Array(entries)
    }

    pub fn forget(&mut self, key: &Key) {
        self.0.remove(key);
    }
}

/// A server-side apply request.
pub struct Apply<'a> {
    pub key: Key,
    pub body: Value,
    pub manager: Option<&'a str>,
    pub force: bool,
}

/// Applies `request`; returns the stored object and whether it was created.
pub fn apply(
    store: &Store,
    owners: &mut Owners,
    request: Apply<'_>,
) -> Result<(Value, bool), ApiError> {
    let Apply {
        key,
        body,
        manager,
        force,
    } = request;
    let resource = key.resource;
    let Some(name) = manager.filter(|m| !m.is_empty()) else {
        return Err(status::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[FieldError::required(
                "fieldManager",
                "is required for apply patch",
            )],
        ));
    };
    if body["apiVersion"] != json!(resource.api_version()) || body["kind"] != json!(resource.kind())
    {
        return Err(status::bad_request(format!(
            "the object's apiVersion and kind ({} {}) do not match the URL's ({} {})",
            body["apiVersion"],
            body["kind"],
            resource.api_version(),
            resource.kind()
        )));
    }
    let named = body["metadata"]["name"].as_str().unwrap_or("");
    if named != key.name {
        return Err(status::bad_request(format!(
            "the name of the object ({named}) does not match the name on the URL ({})",
            key.name
        )));
    }
    // The patch is typed on its own; validation sees the object it would produce.
    typed_check(&key, &body)?;
    let manager = Manager::applier(name);

    let existing = store.get(&key);
    let applied_fields = leaves(&body, "");
    if let Some(existing) = &existing
        && !force
    {
        let conflicts: Vec<(String, String)> = owners
            .0
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(other, _)| **other != manager)
            .flat_map(|(other, fields)| {
                fields
                    .iter()
                    .filter(|f| {
                        applied_fields.contains(*f) && value_at(existing, f) != value_at(&body, f)
                    })
                    .map(|f| (other.to_string(), f.clone()))
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(status::apply_conflict(&conflicts));
        }
    }

    let previously_mine: BTreeSet<String> = owners
        .0
        .get(&key)
        .and_then(|m| m.get(&manager))
        .cloned()
        .unwrap_or_default();
    let others: BTreeSet<String> = owners
        .0
        .get(&key)
        .into_iter()
        .flatten()
        .filter(|(other, _)| **other != manager)
        .flat_map(|(_, f)| f.iter().cloned())
        .collect();
    let mut merged = match &existing {
        Some(existing) => merge(existing, &body),
        None => body.clone(),
    };
    for dropped in previously_mine.difference(&applied_fields) {
        if !others.contains(dropped) {
            remove_at(&mut merged, dropped);
        }
    }
    // `status` belongs to the controllers: an apply neither sets nor clears it, and a
    // new object starts with an empty one (the API server's PrepareForCreate), which
    // serializes with the fields that have no `omitempty`.
    merged["status"] = match existing.as_ref().and_then(|e| e.get("status")) {
        Some(status) => status.clone(),
        None => empty_status(resource),
    };
    if existing.is_none() {
        default(&mut merged, resource);
    }
    validate(&key, &merged)?;
    if resource == Resource::Service {
        super::node_ports::allocate(store, &key, existing.as_ref(), &mut merged)?;
    }
    if force {
        owners.claim(
            &key,
            &manager,
            &applied_fields
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
    } else {
        owners
            .0
            .entry(key.clone())
            .or_default()
            .insert(manager, applied_fields);
    }
    let managed = owners.managed_fields(&key, resource.api_version(), &super::store::now_rfc3339());
    merged["metadata"]["managedFields"] = managed;
    Ok(store.put(&key, merged))
}

/// A new object's status as the API server serializes the zero value of its Go type
/// (kubernetes/api): an HPA's `desiredReplicas` and `currentMetrics` have no
/// `omitempty` (`autoscaling/v2/types.go`), so a never-synced HPA reads
/// `desiredReplicas: 0`, which must not count as a replica count; a Service carries an
/// empty `loadBalancer`; a Namespace is `Active` at once (its strategy sets the phase).
fn empty_status(resource: Resource) -> Value {
    match resource {
        Resource::HorizontalPodAutoscaler => json!({"desiredReplicas": 0, "currentMetrics": null}),
        Resource::Service => json!({"loadBalancer": {}}),
        Resource::Namespace => json!({"phase": "Active"}),
        _ => json!({}),
    }
}

/// The API server's defaults for what the applied object leaves out
/// (kubernetes `pkg/apis/apps/v1/defaults.go` `SetDefaults_Deployment`: one replica,
/// a 25 %/25 % rolling update, ten old ReplicaSets kept, a 600 s progress deadline).
fn default(object: &mut Value, resource: Resource) {
    if resource != Resource::Deployment {
        return;
    }
    let spec = &mut object["spec"];
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["strategy"]["type"].is_null() {
        spec["strategy"]["type"] = json!("RollingUpdate");
    }
    if spec["strategy"]["type"] == "RollingUpdate" {
        for knob in ["maxUnavailable", "maxSurge"] {
            if spec["strategy"]["rollingUpdate"][knob].is_null() {
                spec["strategy"]["rollingUpdate"][knob] = json!("25%");
            }
        }
    }
    if spec["revisionHistoryLimit"].is_null() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec["progressDeadlineSeconds"].is_null() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
}

/// The applied object typed as the API server types it: a field the schema does not
/// declare fails the apply. Server-side apply does this before any field validation
/// directive applies, with a plain error: HTTP 500 without a reason
/// (kubernetes/apimachinery `pkg/util/managedfields/internal/structuredmerge.go`).
fn typed_check(key: &Key, body: &Value) -> Result<(), ApiError> {
    fn lost<T: serde::de::DeserializeOwned + serde::Serialize>(
        body: &Value,
    ) -> Result<Option<String>, String> {
        let typed: T = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
        let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
        Ok(first_lost_key(body, &again, String::new()))
    }
    let resource = key.resource;
    let outcome = match resource {
        Resource::Namespace => lost::<Namespace>(body),
        Resource::Deployment => lost::<Deployment>(body),
        Resource::Service => lost::<Service>(body),
        Resource::HorizontalPodAutoscaler => lost::<HorizontalPodAutoscaler>(body),
        other => return Err(status::method_not_supported(other, "apply")),
    };
    let object = if key.namespace.is_empty() {
        key.name.clone()
    } else {
        format!("{}/{}", key.namespace, key.name)
    };
    let gvk = format!(
        "{}, Kind={}",
        if resource.group().is_empty() {
            format!("/{}", resource.api_version())
        } else {
            resource.api_version().to_string()
        },
        resource.kind()
    );
    match outcome {
        Ok(None) => Ok(()),
        Ok(Some(field)) => Err(status::internal(format!(
            "failed to create typed patch object ({object}; {gvk}): .{field}: field not declared in schema"
        ))),
        Err(why) => Err(status::internal(format!(
            "failed to create typed patch object ({object}; {gvk}): {why}"
        ))),
    }
}

/// The API server's validation of the objects the harness applies, with its texts
/// (kubernetes `pkg/apis/{autoscaling,apps}/validation/validation.go`, 1.34).
fn validate(key: &Key, body: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    match key.resource {
        Resource::HorizontalPodAutoscaler => {
            let spec = &body["spec"];
            let max = spec["maxReplicas"].as_i64().unwrap_or(0);
            let min = spec["minReplicas"].as_i64().unwrap_or(1);
            if spec.get("minReplicas").is_some() && min < 1 {
                errors.push(FieldError::invalid(
                    "spec.minReplicas",
                    &json!(min),
                    "must be greater than or equal to 1",
                ));
            }
            if max < 1 {
                errors.push(FieldError::invalid(
                    "spec.maxReplicas",
                    &json!(max),
                    "must be greater than 0",
                ));
            }
            if max < min {
                errors.push(FieldError::invalid(
                    "spec.maxReplicas",
                    &json!(max),
                    "must be greater than or equal to `minReplicas`",
                ));
            }
            for (i, metric) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
                let source = if metric.get("resource").is_some() {
                    "resource"
                } else {
                    "containerResource"
                };
                let target = &metric[source]["target"];
                if let Some(u) = target["averageUtilization"].as_i64()
                    && u <= 0
                {
                    errors.push(FieldError::invalid(
                        &format!("spec.metrics[{i}].{source}.target.averageUtilization"),
                        &json!(u),
                        "must be greater than 0",
                    ));
                }
            }
        }
        Resource::Deployment => {
            let spec = &body["spec"];
            if let Some(r) = spec["replicas"].as_i64()
                && r < 0
            {
                errors.push(FieldError::invalid(
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                ));
            }
            let selector = &spec["selector"]["matchLabels"];
            let labels = &spec["template"]["metadata"]["labels"];
            let selects = selector
                .as_object()
                .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
            if !selects {
                errors.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                ));
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let resource = key.resource;
        Err(status::invalid(
            resource.group(),
            resource.kind(),
            &key.name,
            &errors,
        ))
    }
}

/// `existing` with `applied` laid over it: objects merge key by key, everything else
/// (scalars, lists) is replaced.
fn merge(existing: &Value, applied: &Value) -> Value {
    match (existing, applied) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = old.clone();
            for (k, v) in new {
                let merged = match old.get(k) {
                    Some(o) => merge(o, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, new) => new.clone(),
    }
}

/// The paths of the leaves of `value` (objects are walked, lists are leaves), as
/// `.spec.replicas`; identity fields do not count as owned.
fn leaves(value: &Value, at: &str) -> BTreeSet<String> {
    const IDENTITY: [&str; 4] = [
        ".apiVersion",
        ".kind",
        ".metadata.name",
        ".metadata.namespace",
    ];
    let mut out = BTreeSet::new();
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.extend(leaves(v, &format!("{at}.{k}")));
            }
        }
        _ if !IDENTITY.contains(&at) && !at.is_empty() => {
            out.insert(at.to_string());
        }
        _ => {}
    }
    out
}

fn value_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(value, |v, k| v.get(k))
}

fn remove_at(value: &mut Value, path: &str) {
    let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let mut at = value;
    for p in parents {
        match at.get_mut(*p) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(o) = at.as_object_mut() {
        o.remove(*last);
    }
}

/// The dotted path of the first key (or value) in `raw` that `typed` lost: what the
/// API server reports for a field its schema does not know. The harness checks its
/// manifests with the same function before anything is applied.
pub fn first_lost_key(raw: &Value, typed: &Value, at: String) -> Option<String> {
    match (raw, typed) {
        (Value::Object(raw), Value::Object(typed)) => raw.iter().find_map(|(key, value)| {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match typed.get(key) {
                Some(typed_value) => first_lost_key(value, typed_value, here),
                // `key: null` / `key: []` in YAML legitimately vanish on re-serialization.
                None if value.is_null() || value.as_array().is_some_and(Vec::is_empty) => None,
                None => Some(here),
            }
        }),
        (Value::Array(raw), Value::Array(typed)) => raw
            .iter()
            .zip(typed)
            .enumerate()
            .find_map(|(i, (r, t))| first_lost_key(r, t, format!("{at}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        _ => Some(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(max: i64) -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "h", "namespace": "ns"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "maxReplicas": max}})
    }

    fn request(body: Value, manager: Option<&str>, force: bool) -> Apply<'_> {
        Apply {
            key: Key::new(Resource::HorizontalPodAutoscaler, "ns", "h"),
            body,
            manager,
            force,
        }
    }

    #[test]
    fn creates_then_updates_keeping_what_others_own() {
        let store = Store::default();
        let mut owners = Owners::default();
        let (created, new) = apply(
            &store,
            &mut owners,
            request(hpa(3), Some("scaleproof"), true),
        )
        .unwrap();
        assert!(new);
        assert_eq!(created["spec"]["maxReplicas"], 3);
        owners.claim(
            &Key::new(Resource::HorizontalPodAutoscaler, "ns", "h"),
            &Manager::applier("other"),
            &[".spec.minReplicas"],
        );
        store.update(
            &Key::new(Resource::HorizontalPodAutoscaler, "ns", "h"),
            |o| o["spec"]["minReplicas"] = json!(2),
        );
        let (updated, new) = apply(
            &store,
            &mut owners,
            request(hpa(5), Some("scaleproof"), true),
        )
        .unwrap();
        assert!(!new);
        assert_eq!(
            (
                updated["spec"]["maxReplicas"].clone(),
                updated["spec"]["minReplicas"].clone()
            ),
            (json!(5), json!(2))
        );
    }

    #[test]
    fn without_force_another_managers_field_is_a_conflict() {
        let store = Store::default();
        let mut owners = Owners::default();
        apply(&store, &mut owners, request(hpa(3), Some("kubectl"), true)).unwrap();
        let err = apply(
            &store,
            &mut owners,
            request(hpa(5), Some("scaleproof"), false),
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.body["message"],
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.maxReplicas"
        );
        assert_eq!(
            err.body["details"]["causes"][0]["reason"],
            "FieldManagerConflict"
        );
    }

    #[test]
    fn unknown_fields_missing_managers_and_invalid_values_are_refused() {
        let store = Store::default();
        let mut owners = Owners::default();
        let mut typo = hpa(3);
        typo["spec"]["maxReplica"] = json!(3);
        let err = apply(&store, &mut owners, request(typo, Some("m"), true)).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.body["message"],
            "failed to create typed patch object (ns/h; autoscaling/v2, Kind=HorizontalPodAutoscaler): .spec.maxReplica: field not declared in schema"
        );
        assert!(err.body.get("reason").is_none());
        assert_eq!(
            apply(&store, &mut owners, request(hpa(3), None, true))
                .unwrap_err()
                .code,
            422
        );
        let err = apply(&store, &mut owners, request(hpa(0), Some("m"), true)).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.body["message"]
                .as_str()
                .unwrap()
                .contains("spec.maxReplicas: Invalid value: 0: must be greater than 0")
        );
    }
}
