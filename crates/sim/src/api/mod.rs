//! A Kubernetes API for exactly what the harness calls, served on loopback: the local
//! backend's control plane speaks it, so the cluster code (`scaleproof::cluster`) runs
//! against it unchanged.
//!
//! Verbs: server-side apply (field manager, force, ownership conflicts, strict
//! typing) of Namespaces, Deployments, Services and HPAs; get, list and watch with
//! label and field selectors and resourceVersions (watch events framed as the API
//! server frames them, an Expired ERROR event when a watch starts too far back);
//! the Deployment `scale` subresource; delete; pod logs; Events; metrics.k8s.io
//! PodMetrics; the metrics APIService. Errors are `Status` objects with the API
//! server's codes, reasons and texts ([`status`]). Shapes follow the API reference
//! and apimachinery; the fixtures of `tests/it/sim_api.rs` cite the sources.

pub mod apply;
pub mod defaults;
pub mod faults;
pub mod node_ports;
pub mod resource;
pub mod status;
pub mod store;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use apply::{Apply, Manager, Owners};
use resource::{FieldSelector, Resource, Selector, Target, parse_path, parse_query};
use status::ApiError;
use store::{Key, Store};

/// Where the kubelet keeps a container's logs: one file per run, oldest first.
pub type LogFiles = Arc<Mutex<BTreeMap<(String, String, String), Vec<PathBuf>>>>;

/// A request the simulated API refuses with 403, as RBAC would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    /// `get`, `list`, `watch`, `patch`, `delete`.
    pub verb: String,
    pub resource: Resource,
    pub namespace: String,
}

/// What the handlers share.
pub struct ApiState {
    pub store: Arc<Store>,
    pub owners: Mutex<Owners>,
    pub logs: LogFiles,
    pub deny: Mutex<Vec<Deny>>,
    /// Errors played on purpose (`[[backend.local.faults]]`).
    pub faults: faults::Faults,
    /// Bumped to end every open watch stream at once (a fault: an API server
    /// restarting or a load balancer dropping long requests).
    pub watch_ends: tokio::sync::watch::Sender<u64>,
    /// Watch streams ended by [`ApiState::end_watches`], and watches answered `410
    /// Gone` (for tests to know the fault met a client).
    pub watches_ended: AtomicU64,
    pub watches_expired: AtomicU64,
}

impl ApiState {
    pub fn new(store: Arc<Store>, logs: LogFiles) -> Self {
        ApiState {
            store,
            owners: Mutex::new(Owners::default()),
            logs,
            deny: Mutex::new(Vec::new()),
            faults: faults::Faults::default(),
            watch_ends: tokio::sync::watch::channel(0).0,
            watches_ended: AtomicU64::new(0),
            watches_expired: AtomicU64::new(0),
        }
    }

    /// Ends every open watch stream, as a restarting API server does; with
    /// `compact`, the history is gone too, so a watch resumed from the last
    /// resourceVersion its client saw gets `410 Gone`.
    pub fn end_watches(&self, compact: bool) {
        if compact {
            self.store.compact();
        }
        self.watch_ends.send_modify(|n| *n += 1);
    }

    /// Evicts pod `namespace/name` as `POST .../pods/{name}/eviction` would: a
    /// disruption the cluster plays on itself (a node drain), not through HTTP.
    pub fn evict_pod(&self, namespace: &str, name: &str) -> Result<(), status::ApiError> {
        let target = Target {
            resource: Resource::Pod,
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            subresource: Some("eviction".to_string()),
        };
        evict(self, &target).map(|_| ())
    }

    /// Sets a Deployment's `spec.replicas` through its `scale` subresource as
    /// `manager` (an update: the field changes owner, `managedFields` says so).
    pub fn write_scale(&self, key: &Key, manager: &str, replicas: i64) -> Option<Value> {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        owners.claim(
            key,
            &Manager::updater(manager, "scale", Resource::Deployment.api_version()),
            &[".spec.replicas"],
        );
        let managed = owners.managed_fields(
            key,
            Resource::Deployment.api_version(),
            &store::now_rfc3339(),
        );
        self.store.update(key, |d| {
            d["spec"]["replicas"] = json!(replicas);
            d["metadata"]["managedFields"] = managed;
        })
    }
}

/// The API server, listening on loopback until stopped (or dropped).
pub struct ApiServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Serves `state` on a free port of 127.0.0.1.
    pub async fn start(state: Arc<ApiState>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let router = Router::new().fallback(handle).with_state(state);
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(e) = serving.await {
                tracing::error!("the simulated API server stopped: {e}");
            }
        });
        Ok(ApiServer {
            addr,
            stop,
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and ends open watches.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(target) = parse_path(uri.path()) else {
        return error(status::unknown_path());
    };
    let query = parse_query(uri.query());
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watching => "watch",
        (&Method::GET, false) => "list",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        _ => "other",
    };
    if let Some(refused) = denied(&state, verb, &target) {
        return error(refused);
    }
    if target.resource == Resource::PodMetrics
        && let Some(refused) = aggregated_api_unavailable(&state)
    {
        return error(refused);
    }
    if let Some(fault) = state.faults.take(verb, target.resource) {
        if let Some(delay) = fault.delay() {
            // A client that gives up first drops this future: nothing is served.
            tokio::time::sleep(delay).await;
        }
        if let Some(answer) = fault.answer(target.name.as_deref().unwrap_or("")) {
            return answer;
        }
    }
    let outcome = match (verb, target.subresource.as_deref()) {
        ("get", None) => get(&state, &target),
        ("list", None) => list(&state, &target, &query),
        ("watch", None) => return watch(&state, &target, &query),
        ("get", Some("scale")) | ("patch", Some("scale"))
            if target.resource == Resource::Deployment =>
        {
            scale(
                &state,
                &target,
                &method,
                &headers,
                &body,
                query.get("fieldManager").cloned(),
            )
        }
        ("get", Some("log")) if target.resource == Resource::Pod => {
            return logs(&state, &target, &query);
        }
        ("create", Some("eviction")) if target.resource == Resource::Pod => evict(&state, &target),
        ("patch", None) => patch(&state, &target, &query, &headers, &body),
        ("delete", None) => delete(&state, &target),
        (action, _) => Err(status::method_not_supported(target.resource, action)),
    };
    match outcome {
        Ok((code, value)) => json_response(code, &value),
        Err(e) => error(e),
    }
}

fn denied(state: &ApiState, verb: &str, target: &Target) -> Option<ApiError> {
    let deny = state.deny.lock().unwrap_or_else(PoisonError::into_inner);
    let namespace = target.namespace.clone().unwrap_or_default();
    deny.iter()
        .any(|d| d.verb == verb && d.resource == target.resource && d.namespace == namespace)
        .then(|| {
            status::forbidden(
                target.resource,
                target.name.as_deref().unwrap_or(""),
                "system:anonymous",
                verb,
                &namespace,
            )
        })
}

/// The aggregator's answer for an APIService that is not `Available` (kube-aggregator
/// `pkg/apiserver/handler_proxy.go`: `proxyError(w, req, "service unavailable",
/// http.StatusServiceUnavailable)`, a `ServiceUnavailable` Status): metrics-server
/// before its first two scrapes, or while it restarts.
fn aggregated_api_unavailable(state: &ApiState) -> Option<ApiError> {
    let service = state.store.get(&Key::new(
        Resource::ApiService,
        "",
        crate::metrics::API_SERVICE,
    ));
    let available = service.as_ref().is_some_and(|s| {
        s["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True")
        })
    });
    (!available).then(status::service_unavailable)
}

fn key_of(target: &Target) -> Key {
    Key::new(
        target.resource,
        target.namespace.as_deref().unwrap_or(""),
        target.name.as_deref().unwrap_or(""),
    )
}

fn get(state: &ApiState, target: &Target) -> Result<(StatusCode, Value), ApiError> {
    let key = key_of(target);
    match state.store.get(&key) {
        Some(object) => Ok((StatusCode::OK, object)),
        // metrics-server names a missing pod's metrics `ns/name`.
        None if target.resource == Resource::PodMetrics => Err(status::not_found(
            target.resource,
            &format!("{}/{}", key.namespace, key.name),
        )),
        None => Err(status::not_found(target.resource, &key.name)),
    }
}

fn selectors(
    resource: Resource,
    query: &BTreeMap<String, String>,
) -> Result<(Selector, FieldSelector), ApiError> {
    let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(status::bad_request)?;
    let fields = FieldSelector::parse(
        resource,
        query.get("fieldSelector").map_or("", String::as_str),
    )
    .map_err(status::bad_request)?;
    Ok((labels, fields))
}

fn list(
    state: &ApiState,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> Result<(StatusCode, Value), ApiError> {
    let (labels, fields) = selectors(target.resource, query)?;
    let (items, version) = state.store.list(
        target.resource,
        target.namespace.as_deref(),
        &labels,
        &fields,
    );
    // List items carry no kind/apiVersion on a real server (kubernetes#3030).
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            if let Some(o) = item.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            item
        })
        .collect();
    let metadata = if target.resource == Resource::PodMetrics {
        json!({}) // metrics-server's lists carry no resourceVersion
    } else {
        json!({ "resourceVersion": version.to_string() })
    };
    Ok((
        StatusCode::OK,
        json!({
            "kind": format!("{}List", target.resource.kind()),
            "apiVersion": target.resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    ))
}

/// A watch: one JSON event per line, from the resourceVersion asked for (or the
/// current state as ADDED events without one), until `timeoutSeconds`.
fn watch(state: &Arc<ApiState>, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let (labels, fields) = match selectors(target.resource, query) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let from: Option<u64> = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0);
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290)
            .min(3600),
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let store = Arc::clone(&state.store);
    let target = target.clone();
    let mut ended = state.watch_ends.subscribe();
    ended.mark_unchanged();
    let counts = Arc::clone(state);
    tokio::spawn(async move {
        let mut changed = store.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let line = |kind: &str, object: &Value| {
            let mut text =
                serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
            text.push(b'\n');
            Bytes::from(text)
        };
        let mut last = match from {
            Some(v) => v,
            None => {
                let (items, version) = store.list(
                    target.resource,
                    target.namespace.as_deref(),
                    &labels,
                    &fields,
                );
                for item in items {
                    if tx.send(line("ADDED", &item)).await.is_err() {
                        return;
                    }
                }
                version
            }
        };
        loop {
            match store.changes_since(last) {
                Err(expired) => {
                    counts.watches_expired.fetch_add(1, Ordering::Relaxed);
                    let _ = tx
                        .send(line(
                            "ERROR",
                            &status::expired(expired.requested, expired.oldest),
                        ))
                        .await;
                    return;
                }
                Ok(changes) => {
                    for change in changes {
                        last = change.version;
                        let in_scope = change.key.resource == target.resource
                            && target
                                .namespace
                                .as_ref()
                                .is_none_or(|ns| *ns == change.key.namespace)
                            && store::matches(&change.object, &labels, &fields);
                        if in_scope
                            && tx
                                .send(line(change.kind.as_str(), &change.object))
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                result = changed.changed() => if result.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
                () = tx.closed() => return,
                _ = ended.changed() => {
                    counts.watches_ended.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(status::internal("cannot build the watch response")))
}

/// `GET`/`PATCH .../deployments/{name}/scale`: an `autoscaling/v1` Scale.
fn scale(
    state: &ApiState,
    target: &Target,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    query_manager: Option<String>,
) -> Result<(StatusCode, Value), ApiError> {
    let key = key_of(target);
    let Some(mut deployment) = state.store.get(&key) else {
        return Err(status::not_found(Resource::Deployment, &key.name));
    };
    if *method == Method::PATCH {
        let patch = patch_body(headers, body, &["application/merge-patch+json"])?;
        let replicas = patch["spec"]["replicas"].as_i64();
        match replicas {
            Some(r) if r < 0 => {
                return Err(status::invalid(
                    "autoscaling",
                    "Scale",
                    &key.name,
                    &[status::FieldError::invalid(
                        "spec.replicas",
                        &json!(r),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            Some(r) => {
                // A non-apply write without `fieldManager` is owned by its User-Agent's
                // first word (`prefixFromUserAgent` in apiserver handlers/rest.go).
                let manager = query_manager
                    .or_else(|| {
                        headers
                            .get(header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|ua| ua.split('/').next())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                deployment = state.write_scale(&key, &manager, r).unwrap_or(deployment);
            }
            None => {}
        }
    }
    Ok((StatusCode::OK, scale_of(&deployment)))
}

/// The Scale of a Deployment (kubernetes `pkg/registry/apps/deployment/storage`
/// `scaleFromDeployment`).
pub fn scale_of(deployment: &Value) -> Value {
    let selector = resource::match_labels_string(&deployment["spec"]["selector"]);
    let meta = &deployment["metadata"];
    let mut spec = json!({});
    if let Some(r) = deployment["spec"]["replicas"].as_i64().filter(|r| *r != 0) {
        spec["replicas"] = json!(r);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": spec,
        "status": {
            "replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

fn patch(
    state: &ApiState,
    target: &Target,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(StatusCode, Value), ApiError> {
    let key = key_of(target);
    let body = patch_body(headers, body, &["application/apply-patch+yaml"])?;
    if target.resource.namespaced() {
        let namespace = Key::new(Resource::Namespace, "", &key.namespace);
        if state.store.get(&namespace).is_none() {
            return Err(status::not_found(Resource::Namespace, &key.namespace));
        }
    }
    let mut owners = state.owners.lock().unwrap_or_else(PoisonError::into_inner);
    let (object, created) = apply::apply(
        &state.store,
        &mut owners,
        Apply {
            key,
            body,
            manager: query.get("fieldManager").map(String::as_str),
            force: query.get("force").is_some_and(|f| f == "true"),
        },
    )?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, object))
}

/// The body of a patch of one of the `accepted` types (JSON, or YAML for apply).
fn patch_body(headers: &HeaderMap, body: &Bytes, accepted: &[&str]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if !accepted.contains(&content_type.as_str()) {
        return Err(status::unsupported_media_type(accepted));
    }
    let parsed: Result<Value, String> = if content_type.ends_with("yaml") {
        serde_norway::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| status::bad_request(format!("error decoding patch: {e}")))
}

/// `POST .../pods/{name}/eviction`: the Eviction API without PodDisruptionBudgets
/// (none here). As the API server does (`pkg/registry/core/pod/storage/eviction.go`):
/// the pod gets the `DisruptionTarget` condition (reason `EvictionByEvictionAPI`,
/// "Eviction API: evicting"), is deleted gracefully, and the answer is a `Success`
/// Status with code 201.
fn evict(state: &ApiState, target: &Target) -> Result<(StatusCode, Value), ApiError> {
    let key = key_of(target);
    if state.store.get(&key).is_none() {
        return Err(status::not_found(Resource::Pod, &key.name));
    }
    let now = store::now_rfc3339();
    state.store.update(&key, |pod| {
        let condition = json!({
            "type": "DisruptionTarget", "status": "True",
            "lastTransitionTime": now,
            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
        });
        match pod["status"]["conditions"].as_array_mut() {
            Some(conditions) => {
                conditions.retain(|c| c["type"] != "DisruptionTarget");
                conditions.push(condition);
            }
            None => pod["status"]["conditions"] = json!([condition]),
        }
    });
    let pod_target = Target {
        subresource: None,
        ..target.clone()
    };
    delete(state, &pod_target)?;
    Ok((
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": "Success", "code": 201}),
    ))
}

fn delete(state: &ApiState, target: &Target) -> Result<(StatusCode, Value), ApiError> {
    let key = key_of(target);
    let Some(object) = state.store.get(&key) else {
        return Err(status::not_found(target.resource, &key.name));
    };
    state
        .owners
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .forget(&key);
    match target.resource {
        // Graceful: the pod stays, terminating, until its kubelet has stopped it; the
        // deleted object comes back (ReturnDeletedObject).
        Resource::Pod => {
            let grace = object["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30);
            let at = std::time::SystemTime::now() + Duration::from_secs(grace.max(0) as u64);
            let object = state
                .store
                .update(&key, |p| {
                    if p["metadata"]["deletionTimestamp"].is_null() {
                        p["metadata"]["deletionTimestamp"] = json!(store::rfc3339(at));
                        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                    }
                })
                .unwrap_or(object);
            Ok((StatusCode::OK, object))
        }
        resource => {
            if resource == Resource::Namespace {
                // Its contents go with it (a real namespace is Terminating meanwhile).
                for inner in Resource::ALL.into_iter().filter(|r| r.namespaced()) {
                    let (items, _) = state.store.list(
                        inner,
                        Some(&key.name),
                        &Selector::default(),
                        &FieldSelector::default(),
                    );
                    for item in items {
                        let name = item["metadata"]["name"].as_str().unwrap_or("");
                        state.store.delete(&Key::new(inner, &key.name, name));
                    }
                }
            }
            state.store.delete(&key);
            let mut details = json!({"name": key.name, "kind": resource.plural(), "uid": object["metadata"]["uid"]});
            if !resource.group().is_empty() {
                details["group"] = json!(resource.group());
            }
            Ok((
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
    }
}

/// `GET .../pods/{name}/log`: the container's log file, as the kubelet serves it
/// (errors as the kubelet's and the API server's 400s, kubernetes
/// `pkg/kubelet/kubelet_pods.go` `validateContainerLogStatus`).
fn logs(state: &ApiState, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let key = key_of(target);
    let Some(pod) = state.store.get(&key) else {
        return error(status::not_found(Resource::Pod, &key.name));
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match query.get("container") {
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return error(status::bad_request(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                key.name,
                containers.join(" ")
            )));
        }
    };
    if !containers.contains(&container) {
        return error(status::bad_request(format!(
            "container {container} is not valid for pod {}",
            key.name
        )));
    }
    let files = state
        .logs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(key.namespace.clone(), key.name.clone(), container.clone()))
        .cloned()
        .unwrap_or_default();
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == json!(container))
        .cloned()
        .unwrap_or(Value::Null);
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let terminated_before = !status["lastState"]["terminated"].is_null();
    let waiting = status["state"]["waiting"]["reason"].as_str();
    let file = if previous {
        if !terminated_before || files.len() < 2 {
            return error(status::bad_request(format!(
                "previous terminated container {container:?} in pod {:?} not found",
                key.name
            )));
        }
        files.get(files.len() - 2)
    } else {
        match (waiting, files.len()) {
            // Waiting to restart after a crash: the last run's log.
            (Some(_), n) if terminated_before && n >= 1 => files.last(),
            (Some(reason), _) => {
                return error(status::bad_request(format!(
                    "container {container:?} in pod {:?} is waiting to start: {reason}",
                    key.name
                )));
            }
            (None, 0) => {
                return error(status::bad_request(format!(
                    "container {container:?} in pod {:?} is waiting to start: ContainerCreating",
                    key.name
                )));
            }
            _ => files.last(),
        }
    };
    let text = file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let text = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].iter().map(|l| format!("{l}\n")).collect()
        }
        None => text,
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text))
        .unwrap_or_else(|_| error(status::internal("cannot build the log response")))
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn error(e: ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.body)
}
