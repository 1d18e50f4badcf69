//! API fidelity: every verb the harness sends to the simulated API server, its
//! success and the errors the harness handles, compared with what a real
//! kube-apiserver answers. Expected bodies are the upstream texts, each cited at the
//! place it is asserted (kubernetes/apimachinery `pkg/api/errors/errors.go` for the
//! Status constructors unless said otherwise); object shapes are compared with the
//! captured objects in `tests/fixtures/cluster/`, which the mocked-API tests use too.
//!
//! Raw HTTP here (reqwest), so codes, content types and bodies are seen as sent; the
//! kube client's reading of them is what the rest of `sim::` exercises.

use std::time::Duration;

use reqwest::Method;
use scaleproof_sim::api::Deny;
use scaleproof_sim::api::resource::Resource;
use serde_json::{Value, json};

use super::{NS, SERIAL, Sim, SimOptions};

const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";

struct Raw {
    http: reqwest::Client,
    base: String,
}

struct Reply {
    code: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl Raw {
    fn of(sim: &Sim) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            base: sim.cluster.api_url(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&str, Value)>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some((content_type, body)) = body {
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        let response = request.send().await.expect("the simulated API answers");
        let code = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.expect("a body");
        Reply {
            code,
            content_type,
            text,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// Server-side apply as kube-rs sends it (`?&force=true&fieldManager=...`,
    /// kube-core `params.rs`), with `query` after the `?`.
    async fn apply(&self, path: &str, query: &str, body: Value) -> Reply {
        self.send(
            Method::PATCH,
            &format!("{path}?{query}"),
            Some((APPLY, body)),
        )
        .await
    }
}

/// The keys of `expected` (a captured object) that `actual` lacks, recursively (lists
/// by their first items), as paths. Values are not compared: names, times and
/// versions differ by nature.
fn missing_keys(expected: &Value, actual: &Value, at: &str) -> Vec<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .flat_map(|(k, ev)| match a.get(k) {
                None => vec![format!("{at}.{k}")],
                Some(av) => missing_keys(ev, av, &format!("{at}.{k}")),
            })
            .collect(),
        (Value::Array(e), Value::Array(a)) => match (e.first(), a.first()) {
            (Some(e), Some(a)) => missing_keys(e, a, &format!("{at}[0]")),
            (Some(_), None) => vec![format!("{at}[0]")],
            _ => Vec::new(),
        },
        (Value::Null, _) | (_, Value::Null) => Vec::new(),
        (e, a) if std::mem::discriminant(e) != std::mem::discriminant(a) => {
            vec![format!("{at} (a {} here, a {} upstream)", kind(a), kind(e))]
        }
        _ => Vec::new(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cluster")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn namespace_body() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
}

fn hpa_body(max: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": max,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
    })
}

const NS_PATH: &str = "/api/v1/namespaces/scaleproof";
const HPA_PATH: &str = "/apis/autoscaling/v2/namespaces/scaleproof/horizontalpodautoscalers/web";
const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/scaleproof/deployments/iris-classifier";
const OWNED: &str = "&force=true&fieldManager=scaleproof";

async fn empty_sim() -> Sim {
    Sim::start(SimOptions {
        deploy: false,
        ..SimOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_with_201_updates_with_200_and_starts_status_empty() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);

    // apiserver handlers/patch.go: 201 when the apply created the object, else 200.
    let created = raw.apply(NS_PATH, OWNED, namespace_body()).await;
    assert_eq!(created.code, 201, "{}", created.text);
    assert_eq!(created.content_type, "application/json");
    let ns = created.json();
    assert_eq!(
        (ns["kind"].clone(), ns["apiVersion"].clone()),
        (json!("Namespace"), json!("v1"))
    );
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    let again = raw.apply(NS_PATH, OWNED, namespace_body()).await;
    assert_eq!(again.code, 200, "{}", again.text);

    let hpa = raw.apply(HPA_PATH, OWNED, hpa_body(3)).await;
    assert_eq!(hpa.code, 201, "{}", hpa.text);
    let hpa = hpa.json();
    // kubernetes/api autoscaling/v2/types.go: desiredReplicas and currentMetrics have
    // no omitempty, so a never-synced HPA reads like this.
    assert_eq!(
        hpa["status"],
        json!({"desiredReplicas": 0, "currentMetrics": null})
    );
    let managed = &hpa["metadata"]["managedFields"][0];
    assert_eq!(
        (
            managed["manager"].clone(),
            managed["operation"].clone(),
            managed["fieldsType"].clone()
        ),
        (json!("scaleproof"), json!("Apply"), json!("FieldsV1"))
    );
    assert!(
        hpa["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        hpa["metadata"]["uid"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let missing = missing_keys(&fixture("hpa.json")["spec"], &hpa["spec"], ".spec");
    assert!(missing.is_empty(), "{missing:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_errors_are_the_api_servers_own() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);

    // No namespace yet: the create is refused with the namespace's NotFound.
    let reply = raw.apply(HPA_PATH, OWNED, hpa_body(3)).await;
    assert_eq!(reply.code, 404);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "namespaces \"scaleproof\" not found", "reason": "NotFound",
               "details": {"name": "scaleproof", "kind": "namespaces"}, "code": 404})
    );
    raw.apply(NS_PATH, OWNED, namespace_body()).await;

    // apimachinery pkg/apis/meta/v1/validation/validation.go ValidatePatchOptions,
    // raised by apiserver handlers/patch.go as NewInvalid(PatchOptions.meta.k8s.io).
    let reply = raw.apply(HPA_PATH, "&force=true", hpa_body(3)).await;
    assert_eq!(reply.code, 422);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
               "reason": "Invalid",
               "details": {"group": "meta.k8s.io", "kind": "PatchOptions",
                           "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]},
               "code": 422})
    );

    // apimachinery pkg/util/managedfields/internal/structuredmerge.go: typing the
    // patch fails with a plain error, which ErrorToAPIStatus (apiserver
    // responsewriters/status.go) turns into a 500 without a reason.
    let mut typo = hpa_body(3);
    typo["spec"]["maxReplica"] = json!(3);
    let reply = raw
        .apply(HPA_PATH, &format!("{OWNED}&fieldValidation=Strict"), typo)
        .await;
    assert_eq!(reply.code, 500);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "failed to create typed patch object (scaleproof/web; autoscaling/v2, Kind=HorizontalPodAutoscaler): .spec.maxReplica: field not declared in schema",
               "code": 500})
    );

    // kubernetes pkg/apis/autoscaling/validation/validation.go (1.34's hand-written
    // texts), aggregated as apimachinery pkg/util/errors/errors.go does.
    let reply = raw.apply(HPA_PATH, OWNED, hpa_body(0)).await;
    assert_eq!(reply.code, 422);
    let body = reply.json();
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["details"]["kind"], "HorizontalPodAutoscaler",
        "Invalid names the Kind"
    );
    assert_eq!(
        body["message"],
        "HorizontalPodAutoscaler.autoscaling \"web\" is invalid: [spec.maxReplicas: Invalid value: 0: must be greater than 0, spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`]"
    );

    // apiserver handlers/negotiation/errors.go: a PATCH of a type the endpoint does
    // not take is 415.
    let reply = raw
        .send(
            Method::PATCH,
            &format!("{HPA_PATH}?{OWNED}"),
            Some((MERGE, hpa_body(3))),
        )
        .await;
    assert_eq!(reply.code, 415, "{}", reply.text);
    assert_eq!(reply.json()["reason"], "UnsupportedMediaType");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_hpa_controller_owns_is_a_conflict_unless_forced() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);
    let mut deployment = serde_json::to_value(&sim.prepared.deployment).expect("deployment");
    raw.apply(NS_PATH, OWNED, namespace_body()).await;
    assert_eq!(
        raw.apply(DEPLOYMENT_PATH, OWNED, deployment.clone())
            .await
            .code,
        201
    );
    // The HPA controller writes replicas through `scale` (an Update).
    let scaled = raw
        .send(
            Method::PATCH,
            &format!("{DEPLOYMENT_PATH}/scale?fieldManager=kube-controller-manager"),
            Some((MERGE, json!({"spec": {"replicas": 2}}))),
        )
        .await;
    assert_eq!(scaled.code, 200, "{}", scaled.text);

    // Applying replicas without force: the conflict, worded as managedfields
    // conflict.go prints an update manager with its subresource.
    deployment["spec"]["replicas"] = json!(1);
    let reply = raw
        .apply(
            DEPLOYMENT_PATH,
            "&fieldManager=scaleproof",
            deployment.clone(),
        )
        .await;
    assert_eq!(reply.code, 409);
    let manager = "\"kube-controller-manager\" with subresource \"scale\" using apps/v1";
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("Apply failed with 1 conflict: conflict with {manager}: .spec.replicas"),
               "reason": "Conflict",
               "details": {"causes": [{"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": ".spec.replicas"}]},
               "code": 409})
    );
    // With force the applier takes the field.
    let forced = raw.apply(DEPLOYMENT_PATH, OWNED, deployment).await;
    assert_eq!(forced.code, 200, "{}", forced.text);
    assert_eq!(forced.json()["spec"]["replicas"], 1);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_scale_and_delete_answer_as_the_api_server() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);
    raw.apply(NS_PATH, OWNED, namespace_body()).await;

    // NotFound names the group-qualified resource; core resources have no group.
    let reply = raw.get(DEPLOYMENT_PATH).await;
    assert_eq!(reply.code, 404);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "deployments.apps \"iris-classifier\" not found", "reason": "NotFound",
               "details": {"name": "iris-classifier", "group": "apps", "kind": "deployments"}, "code": 404})
    );
    let reply = raw.get("/api/v1/namespaces/scaleproof/pods/p").await;
    assert_eq!(
        reply.json()["details"],
        json!({"name": "p", "kind": "pods"})
    );
    assert_eq!(reply.json()["message"], "pods \"p\" not found");
    // kube-rs asks for a missing object's scale too (`deployments.apps` again).
    let reply = raw.get(&format!("{DEPLOYMENT_PATH}/scale")).await;
    assert_eq!(
        (reply.code, reply.json()["message"].clone()),
        (404, json!("deployments.apps \"iris-classifier\" not found"))
    );

    let deployment = serde_json::to_value(&sim.prepared.deployment).expect("deployment");
    raw.apply(DEPLOYMENT_PATH, OWNED, deployment).await;

    // The Scale is autoscaling/v1 (kubernetes pkg/registry/apps/deployment/storage
    // scaleFromDeployment); its status.selector a string.
    let scale = raw.get(&format!("{DEPLOYMENT_PATH}/scale")).await.json();
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"], json!({"replicas": 1}));
    assert_eq!(
        scale["status"]["selector"],
        "app.kubernetes.io/name=iris-classifier"
    );
    let reply = raw
        .send(
            Method::PATCH,
            &format!("{DEPLOYMENT_PATH}/scale?"),
            Some((MERGE, json!({"spec": {"replicas": -1}}))),
        )
        .await;
    assert_eq!(reply.code, 422);
    assert_eq!(
        reply.json()["message"],
        "Scale.autoscaling \"iris-classifier\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );

    // Lists: items without kind/apiVersion (kubernetes#3030), a resourceVersion on
    // the list; selectors form-urlencoded as kube-rs writes them (`?&` included).
    let list = raw
        .get("/apis/apps/v1/namespaces/scaleproof/deployments?&fieldSelector=metadata.name%3Diris-classifier&limit=500")
        .await
        .json();
    assert_eq!(list["kind"], "DeploymentList");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert!(items[0].get("kind").is_none() && items[0].get("apiVersion").is_none());
    let missing = missing_keys(
        &fixture("deployment-ready.json")["spec"],
        &items[0]["spec"],
        ".spec",
    );
    assert!(missing.is_empty(), "{missing:?}");
    let reply = raw
        .get("/api/v1/namespaces/scaleproof/pods?labelSelector=a%3D%3D%3Db")
        .await;
    assert_eq!(
        (reply.code, reply.json()["reason"].clone()),
        (400, json!("BadRequest"))
    );

    // Delete: a Status with the deleted object's details (apiserver registry
    // store.go finalizeDelete); a pod instead comes back terminating, its
    // deletionTimestamp the grace period ahead (apiserver registry/rest/delete.go).
    raw.apply(HPA_PATH, OWNED, hpa_body(3)).await;
    let reply = raw.send(Method::DELETE, HPA_PATH, None).await;
    assert_eq!(reply.code, 200);
    let body = reply.json();
    assert_eq!(body["status"], "Success");
    assert_eq!(
        (
            body["details"]["name"].clone(),
            body["details"]["group"].clone(),
            body["details"]["kind"].clone()
        ),
        (
            json!("web"),
            json!("autoscaling"),
            json!("horizontalpodautoscalers")
        )
    );
    assert_eq!(raw.send(Method::DELETE, HPA_PATH, None).await.code, 404);
    // The Deployment controller creates the pod on its next pass.
    let mut pod = None;
    for _ in 0..50 {
        let pods = raw.get("/api/v1/namespaces/scaleproof/pods").await.json();
        pod = pods["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_string);
        if pod.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pod = pod.expect("the Deployment's pod within 5 s");
    let reply = raw
        .send(
            Method::DELETE,
            &format!("/api/v1/namespaces/scaleproof/pods/{pod}"),
            None,
        )
        .await;
    assert_eq!(reply.code, 200);
    let terminating = reply.json();
    assert_eq!(terminating["kind"], "Pod");
    assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_stream_events_and_expire_too_old_versions() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);
    let first = raw.apply(NS_PATH, OWNED, namespace_body()).await.json();
    let from = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    // One WatchEvent per line; objects in events carry kind and apiVersion
    // (apimachinery pkg/apis/meta/v1/watch.go; the API concepts doc).
    let watching = {
        let http = raw.http.clone();
        let url = format!(
            "{}/api/v1/namespaces?&watch=true&timeoutSeconds=2&allowWatchBookmarks=true&resourceVersion={from}",
            raw.base
        );
        tokio::spawn(async move { http.get(url).send().await?.text().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut labeled = namespace_body();
    labeled["metadata"]["labels"] = json!({"team": "a"});
    raw.apply(NS_PATH, OWNED, labeled).await;
    let text = watching.await.expect("watch task").expect("watch body");
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is an event"))
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["kind"], "Namespace");
    assert_eq!(events[0]["object"]["metadata"]["labels"]["team"], "a");

    // A watch from before the kept history: HTTP 200 and one ERROR event with a 410
    // Expired Status (apiserver storage/cacher watch_cache_history.go, cacher.go
    // newErrWatcher). The history keeps the last 10 000 changes; push past it.
    let body = json!({"spec": {"replicas": 1}});
    let deployment = serde_json::to_value(&sim.prepared.deployment).expect("deployment");
    raw.apply(DEPLOYMENT_PATH, OWNED, deployment).await;
    let scale_path = format!("{DEPLOYMENT_PATH}/scale?fieldManager=t");
    for round in 0..10_050u32 {
        let replicas = if round % 2 == 0 { 0 } else { 1 };
        let mut patch = body.clone();
        patch["spec"]["replicas"] = json!(replicas);
        let reply = raw
            .send(Method::PATCH, &scale_path, Some((MERGE, patch)))
            .await;
        assert_eq!(reply.code, 200);
    }
    let reply = raw
        .get(&format!(
            "/api/v1/namespaces?&watch=true&timeoutSeconds=2&resourceVersion={from}"
        ))
        .await;
    assert_eq!(reply.code, 200);
    let lines: Vec<&str> = reply.text.lines().collect();
    assert_eq!(lines.len(), 1, "{}", reply.text);
    let error: Value = serde_json::from_str(lines[0]).expect("an event");
    assert_eq!(error["type"], "ERROR");
    assert_eq!(
        (
            error["object"]["code"].clone(),
            error["object"]["reason"].clone()
        ),
        (json!(410), json!("Expired"))
    );
    assert!(
        error["object"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("too old resource version: {from} ("))),
        "{error}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusals_are_403_with_the_authorizers_words() {
    let _serial = SERIAL.lock().await;
    let sim = empty_sim().await;
    let raw = Raw::of(&sim);
    sim.cluster.deny(Deny {
        verb: "list".into(),
        resource: Resource::Pod,
        namespace: NS.into(),
    });
    // apiserver endpoints/handlers/responsewriters/errors.go forbiddenMessage; a
    // list has no name, so the message starts with the resource.
    let reply = raw.get("/api/v1/namespaces/scaleproof/pods").await;
    assert_eq!(reply.code, 403);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"scaleproof\"",
               "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    );
    // Other verbs still pass.
    assert_eq!(
        raw.get("/api/v1/namespaces/scaleproof/pods/p").await.code,
        404
    );
    sim.cluster.allow_all();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_logs_metrics_events_and_the_apiservice_look_like_a_clusters() {
    let _serial = SERIAL.lock().await;
    let sim = Sim::start(SimOptions::default()).await;
    let raw = Raw::of(&sim);
    let pods = raw
        .get("/api/v1/namespaces/scaleproof/pods?labelSelector=app.kubernetes.io%2Fname%3Diris-classifier")
        .await
        .json();
    let pod = pods["items"][0].clone();
    let name = pod["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string();
    let missing = missing_keys(&fixture("pod-ready.json"), &pod, "");
    // A captured kind pod; the simulated one has neither kind nor apiVersion as a
    // list item, and no image digest to report.
    let expected_gaps = [".apiVersion", ".kind"];
    let missing: Vec<&String> = missing
        .iter()
        .filter(|m| !expected_gaps.contains(&m.as_str()))
        .collect();
    assert!(missing.is_empty(), "{missing:?}\n{pod:#}");

    // Logs: text/plain (kubernetes pkg/registry/core/pod/rest/log.go); the 400s of
    // the kubelet (kubelet_pods.go validateContainerLogStatus) and of the API
    // server's own checks (pod/strategy.go LogLocation, no quotes there).
    let log_path = format!("/api/v1/namespaces/scaleproof/pods/{name}/log");
    let reply = raw
        .get(&format!("{log_path}?&container=iris-server&tailLines=5"))
        .await;
    assert_eq!(reply.code, 200);
    assert_eq!(reply.content_type, "text/plain");
    assert!(!reply.text.is_empty());
    let reply = raw.get(&format!("{log_path}?&previous=true")).await;
    assert_eq!(reply.code, 400);
    assert_eq!(
        reply.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("previous terminated container \"iris-server\" in pod \"{name}\" not found"),
               "reason": "BadRequest", "code": 400})
    );
    let reply = raw.get(&format!("{log_path}?&container=nope")).await;
    assert_eq!(
        reply.json()["message"],
        format!("container nope is not valid for pod {name}")
    );

    // PodMetrics as metrics-server serves them (kubernetes/metrics
    // pkg/apis/metrics/v1beta1/types.go; metrics-server pkg/storage/pod.go): a list
    // without resourceVersion, nanocores and KiB, a Go-duration window.
    let metrics = raw
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods")
        .await
        .json();
    assert_eq!(metrics["kind"], "PodMetricsList");
    assert_eq!(metrics["metadata"], json!({}));
    let item = &metrics["items"][0];
    let mut expected = fixture("pod-metrics.json");
    if let Some(o) = expected.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    let missing = missing_keys(&expected, item, "");
    assert!(missing.is_empty(), "{missing:?}\n{item:#}");
    let usage = &item["containers"][0]["usage"];
    assert!(
        usage["memory"]
            .as_str()
            .is_some_and(|m| m.ends_with("Ki") || m.ends_with("Mi")),
        "{usage}"
    );
    assert!(
        item["window"].as_str().is_some_and(|w| w.ends_with('s')),
        "{item}"
    );
    let reply = raw
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/scaleproof/pods/nope")
        .await;
    assert_eq!(
        (reply.code, reply.json()["message"].clone()),
        (
            404,
            json!("podmetrics.metrics.k8s.io \"scaleproof/nope\" not found")
        )
    );

    // kube-aggregator remote_available_controller.go: Available, Passed.
    let service = raw
        .get("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
        .await
        .json();
    let missing = missing_keys(&fixture("apiservice-available.json"), &service, "");
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(
        service["status"]["conditions"][0],
        json!({"type": "Available", "status": "True", "lastTransitionTime": service["status"]["conditions"][0]["lastTransitionTime"], "reason": "Passed", "message": "all checks passed"})
    );

    // Events: the fields kubectl and the harness read, as a kind cluster lists them.
    let events = raw.get("/api/v1/namespaces/scaleproof/events").await.json();
    let captured = fixture("events.json");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in ["Scheduled", "Started", "ScalingReplicaSet"] {
        assert!(reasons.contains(&reason), "{reason} in {reasons:?}");
    }
    for event in events["items"].as_array().expect("items") {
        let missing = missing_keys(&captured["items"][0], event, "");
        assert!(missing.is_empty(), "{missing:?}\n{event:#}");
    }
    sim.stop().await;
}
