//! The simulated cluster's storage: objects as JSON, one resourceVersion counter, a
//! bounded history of changes for watches, and a notification for each write.
//!
//! Like etcd behind the API server: every write gets the next resourceVersion, a
//! watch replays the history from the version it names (and gets an "Expired" error
//! when that version is older than the history kept), and objects carry `uid`,
//! `creationTimestamp`, `generation` (bumped when `spec` changes) and
//! `resourceVersion`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::resource::{FieldSelector, Resource, Selector};

/// How many changes a watch can be behind before it must re-list (the API server's
/// watch cache is similar in spirit: a window, not the whole history).
const HISTORY: usize = 10_000;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: Resource,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: Resource, namespace: &str, name: &str) -> Self {
        Key {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// What a write did, as a watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One write, kept for watches.
#[derive(Debug, Clone)]
pub struct Change {
    pub version: u64,
    pub kind: ChangeType,
    pub key: Key,
    /// The object after the write (before it, for a deletion), with its new version.
    pub object: Value,
}

/// A watch asked for history the store no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Change>,
    uid_counter: u64,
}

/// The object store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    /// The latest resourceVersion, for watchers to wait on.
    latest: watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            inner: Mutex::new(Inner {
                version: 1,
                ..Inner::default()
            }),
            latest: watch::channel(1).0,
        }
    }
}

/// The current time as Kubernetes writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `at` as Kubernetes writes `metav1.Time`.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// An object's labels.
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest resourceVersion.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// A receiver that changes whenever anything is written.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    pub fn get(&self, key: &Key) -> Option<Value> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects of `resource` (in `namespace`, or in all of them), matching the
    /// selectors, and the version the list is consistent with.
    pub fn list(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        labels_selector: &Selector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, v)| {
                k.resource == resource
                    && namespace.is_none_or(|ns| k.namespace == ns)
                    && matches(v, labels_selector, fields)
            })
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.version)
    }

    /// Creates or replaces the object at `key` with `object`, filling in what the API
    /// server sets (kind, apiVersion, name, namespace, uid, creationTimestamp,
    /// generation, resourceVersion). Returns the stored object and whether it was
    /// created.
    pub fn put(&self, key: &Key, mut object: Value) -> (Value, bool) {
        let mut inner = self.lock();
        inner.version += 1;
        let version = inner.version;
        let previous = inner.objects.get(key).cloned();
        object["kind"] = json!(key.resource.kind());
        object["apiVersion"] = json!(key.resource.api_version());
        let meta = object
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
        if let Some(meta) = meta {
            meta["name"] = json!(key.name);
            if key.resource.namespaced() {
                meta["namespace"] = json!(key.namespace);
            }
            meta["resourceVersion"] = json!(version.to_string());
            match &previous {
                Some(old) => {
                    for field in ["uid", "creationTimestamp"] {
                        meta[field] = old["metadata"][field].clone();
                    }
                    meta["generation"] = old["metadata"]["generation"].clone();
                }
                None => {
                    inner.uid_counter += 1;
                    meta["uid"] = json!(uid(inner.uid_counter));
                    meta["creationTimestamp"] = json!(now_rfc3339());
                    meta["generation"] = json!(1);
                }
            }
        }
        // `generation` counts spec changes (the metadata borrow above has ended).
        if let Some(old) = &previous
            && old.get("spec").is_some()
            && old.get("spec") != object.get("spec")
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        let kind = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        inner.objects.insert(key.clone(), object.clone());
        record(&mut inner, version, kind, key, &object);
        drop(inner);
        self.latest.send_replace(version);
        (object, previous.is_none())
    }

    /// Applies `change` to the object at `key` and stores the result, when the object
    /// exists and the change changed it. Returns the object (changed or not).
    pub fn update(&self, key: &Key, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let current = self.get(key)?;
        let mut next = current.clone();
        change(&mut next);
        if next == current {
            return Some(current);
        }
        Some(self.put(key, next).0)
    }

    /// Removes the object; `None` when there was none.
    pub fn delete(&self, key: &Key) -> Option<Value> {
        let mut inner = self.lock();
        let mut object = inner.objects.remove(key)?;
        inner.version += 1;
        let version = inner.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        record(&mut inner, version, ChangeType::Deleted, key, &object);
        drop(inner);
        self.latest.send_replace(version);
        Some(object)
    }

    /// Forgets the history of changes, as an API server's watch cache does once its
    /// window moved on (or etcd compacted): a watch resumed from any earlier
    /// resourceVersion then gets `410 Gone` and has to list again.
    pub fn compact(&self) {
        self.lock().history.clear();
    }

    /// The changes after `version`, in order; `Expired` when they are no longer kept.
    pub fn changes_since(&self, version: u64) -> Result<Vec<Change>, Expired> {
        let inner = self.lock();
        let oldest = inner
            .history
            .front()
            .map_or(inner.version + 1, |c| c.version);
        if version + 1 < oldest && version < inner.version {
            return Err(Expired {
                requested: version,
                oldest,
            });
        }
        Ok(inner
            .history
            .iter()
            .filter(|c| c.version > version)
            .cloned()
            .collect())
    }
}

fn record(inner: &mut Inner, version: u64, kind: ChangeType, key: &Key, object: &Value) {
    inner.history.push_back(Change {
        version,
        kind,
        key: key.clone(),
        object: object.clone(),
    });
    while inner.history.len() > HISTORY {
        inner.history.pop_front();
    }
}

/// Whether an object at `key` matches a list's or watch's selectors.
pub fn matches(object: &Value, labels_selector: &Selector, fields: &FieldSelector) -> bool {
    fields.matches(object) && labels_selector.matches(&labels(object))
}

/// A uid in the API server's format (a version-4-looking UUID, deterministic here).
fn uid(n: u64) -> String {
    let hex = format!(
        "{:032x}",
        u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key::new(Resource::Deployment, "ns", name)
    }

    #[test]
    fn writes_get_versions_uids_and_spec_generations() {
        let store = Store::default();
        let (created, new) = store.put(
            &key("web"),
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 1}}),
        );
        assert!(new);
        assert_eq!(created["kind"], "Deployment");
        assert_eq!(created["apiVersion"], "apps/v1");
        assert_eq!(created["metadata"]["namespace"], "ns");
        assert_eq!(created["metadata"]["generation"], 1);
        let uid = created["metadata"]["uid"].clone();
        let v1: u64 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();

        let same_spec = store
            .update(&key("web"), |o| o["status"] = json!({"replicas": 1}))
            .unwrap();
        assert_eq!(
            same_spec["metadata"]["generation"], 1,
            "status is no spec change"
        );
        let scaled = store
            .update(&key("web"), |o| o["spec"]["replicas"] = json!(3))
            .unwrap();
        assert_eq!(scaled["metadata"]["generation"], 2);
        assert_eq!(scaled["metadata"]["uid"], uid);

        let changes = store.changes_since(v1).unwrap();
        let kinds: Vec<_> = changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChangeType::Modified, ChangeType::Modified]);
        store.delete(&key("web")).unwrap();
        assert_eq!(
            store.changes_since(v1).unwrap().last().unwrap().kind,
            ChangeType::Deleted
        );
        let (items, _) = store.list(
            Resource::Deployment,
            Some("ns"),
            &Selector::default(),
            &FieldSelector::default(),
        );
        assert!(items.is_empty());
    }

    #[test]
    fn a_watch_from_before_the_kept_history_is_expired() {
        let store = Store::default();
        for i in 0..(HISTORY + 5) {
            store.put(&key("web"), json!({"spec": {"replicas": i}}));
        }
        let err = store.changes_since(2).expect_err("too old");
        assert!(err.oldest > 2);
        assert!(store.changes_since(store.version()).unwrap().is_empty());
    }
}
