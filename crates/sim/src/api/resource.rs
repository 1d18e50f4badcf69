//! The resources the simulated API serves, and how a request path names one.
//!
//! Exactly what the harness calls (`scaleproof::cluster`): namespaces, Deployments (and
//! their `scale` subresource), Services, HorizontalPodAutoscalers, Pods (and their
//! `log`), Events, metrics.k8s.io PodMetrics and the metrics APIService.

use serde_json::Value;
use std::collections::BTreeMap;

/// A resource type the simulated API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespace,
    Pod,
    Service,
    Event,
    Deployment,
    HorizontalPodAutoscaler,
    PodMetrics,
    ApiService,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Resource::Namespace,
        Resource::Pod,
        Resource::Service,
        Resource::Event,
        Resource::Deployment,
        Resource::HorizontalPodAutoscaler,
        Resource::PodMetrics,
        Resource::ApiService,
    ];

    /// `apiVersion` of the objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::Namespace | Resource::Pod | Resource::Service | Resource::Event => "v1",
            Resource::Deployment => "apps/v1",
            Resource::HorizontalPodAutoscaler => "autoscaling/v2",
            Resource::PodMetrics => "metrics.k8s.io/v1beta1",
            Resource::ApiService => "apiregistration.k8s.io/v1",
        }
    }

    /// The API group (empty for the core group).
    pub fn group(self) -> &'static str {
        self.api_version().rsplit_once('/').map_or("", |(g, _)| g)
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Namespace => "Namespace",
            Resource::Pod => "Pod",
            Resource::Service => "Service",
            Resource::Event => "Event",
            Resource::Deployment => "Deployment",
            Resource::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Resource::PodMetrics => "PodMetrics",
            Resource::ApiService => "APIService",
        }
    }

    /// The plural in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Namespace => "namespaces",
            Resource::Pod | Resource::PodMetrics => "pods",
            Resource::Service => "services",
            Resource::Event => "events",
            Resource::Deployment => "deployments",
            Resource::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            Resource::ApiService => "apiservices",
        }
    }

    /// The resource name in errors: `pods`, `deployments.apps` (apimachinery
    /// `GroupResource.String`). metrics-server names its resource `podmetrics`.
    pub fn group_resource(self) -> String {
        let resource = match self {
            Resource::PodMetrics => "podmetrics",
            other => other.plural(),
        };
        match self.group() {
            "" => resource.to_string(),
            group => format!("{resource}.{group}"),
        }
    }

    /// The kind in errors about an object's content: `HorizontalPodAutoscaler.autoscaling`
    /// (apimachinery `GroupKind.String`).
    pub fn group_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_string(),
            group => format!("{}.{group}", self.kind()),
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Resource::Namespace | Resource::ApiService)
    }

    /// Which resource a `(apiVersion, plural)` pair of a URL names.
    fn from_url(api_version: &str, plural: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.api_version() == api_version && r.plural() == plural)
    }
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: Resource,
    /// `None` for cluster-scoped resources and all-namespace lists.
    pub namespace: Option<String>,
    /// `None` for a collection.
    pub name: Option<String>,
    /// `scale`, `log`, `status`.
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` for anything the
/// simulated API does not serve (answered with 404 like an unknown path).
pub fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let target = |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let resource = Resource::from_url(&api_version, plural)?;
        if resource.namespaced() == namespace.is_none() && name.is_some() {
            return None;
        }
        Some(Target {
            resource,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // `namespaces/{name}` is the Namespace object itself.
        ["namespaces", name] if api_version == "v1" => target("namespaces", None, Some(name), None),
        ["namespaces", ns, plural] => target(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => target(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => target(plural, Some(ns), Some(name), Some(sub)),
        [plural] => target(plural, None, None, None),
        [plural, name] => target(plural, None, Some(name), None),
        _ => None,
    }
}

/// A parsed query string; kube-rs starts them with `?&` and may end them in `?`
/// (empty pairs are skipped, as the API server's parser does).
pub fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// A label selector: `k=v`, `k==v`, `k!=v`, `k` (exists), `!k` (absent), joined by
/// commas (the forms kube-rs and kubectl send for equality-based selectors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else if part.contains(' ') || part.contains('(') {
                return Err(format!("unable to parse requirement: {part:?}"));
            } else {
                Requirement::Exists(part.into())
            };
            if let Requirement::Equals(key, value) | Requirement::NotEquals(key, value) =
                &requirement
                && !valid_label_value(value)
            {
                return Err(format!(
                    "unable to parse requirement: values[0][{key}]: Invalid value: {value:?}: a valid \
                     label must be an empty string or consist of alphanumeric characters, '-', '_' \
                     or '.', and must start and end with an alphanumeric character"
                ));
            }
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// A field selector: `field=value`, `field==value` or `field!=value`, joined by
/// commas, over the fields the API server indexes for the resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldRequirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    /// A dotted path into the object (`source` already mapped to `source.component`).
    path: String,
    equals: bool,
    value: String,
}

impl FieldSelector {
    /// Parses `text` for `resource`: fields other than the resource's selectable ones
    /// are refused as the API server refuses them (the field label conversion
    /// functions of kubernetes `pkg/apis/core/v1/conversion.go`; every resource takes
    /// `metadata.name` and `metadata.namespace`).
    pub fn parse(resource: Resource, text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equals) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            let path = match (resource, field) {
                (_, "metadata.name" | "metadata.namespace") => field,
                (
                    Resource::Pod,
                    "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "status.phase"
                    | "status.podIP",
                ) => field,
                (Resource::Event, "source") => "source.component",
                (
                    Resource::Event,
                    "involvedObject.kind"
                    | "involvedObject.namespace"
                    | "involvedObject.name"
                    | "involvedObject.uid"
                    | "involvedObject.apiVersion"
                    | "involvedObject.resourceVersion"
                    | "involvedObject.fieldPath"
                    | "reason"
                    | "reportingComponent"
                    | "type",
                ) => field,
                _ => return Err(format!("field label not supported: {field}")),
            };
            requirements.push(FieldRequirement {
                path: path.to_string(),
                equals,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector(requirements))
    }

    /// Whether `object` has the selected field values (a missing field is "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            let found = r
                .path
                .split('.')
                .try_fold(object, |v, k| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or("");
            (found == r.value) == r.equals
        })
    }
}

/// A `matchLabels` selector as its string form, keys sorted (`k=v,k2=v2`, as
/// apimachinery's `LabelSelectorAsSelector(...).String()` prints it).
pub fn match_labels_string(selector: &Value) -> String {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            let mut pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.sort();
            pairs.join(",")
        })
        .unwrap_or_default()
}

/// A label value as `validation.IsValidLabelValue` (apimachinery
/// `pkg/util/validation/validation.go`) takes it: empty, or up to 63 alphanumerics,
/// `-`, `_`, `.`, starting and ending alphanumeric.
fn valid_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= 63
            && alnum(value.chars().next())
            && alnum(value.chars().last())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources_as_the_api_server_lays_them_out() {
        let t = parse_path("/apis/apps/v1/namespaces/ns/deployments/web/scale").unwrap();
        assert_eq!(t.resource, Resource::Deployment);
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let ns = parse_path("/api/v1/namespaces/scaleproof").unwrap();
        assert_eq!(
            (ns.resource, ns.name.as_deref()),
            (Resource::Namespace, Some("scaleproof"))
        );
        let metrics = parse_path("/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods").unwrap();
        assert_eq!(metrics.resource, Resource::PodMetrics);
        let svc = parse_path("/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
            .unwrap();
        assert_eq!(svc.resource, Resource::ApiService);
        assert_eq!(parse_path("/apis/batch/v1/namespaces/ns/jobs"), None);
        assert_eq!(parse_path("/healthz"), None);
    }

    #[test]
    fn kube_rs_queries_and_selectors_parse() {
        let q = parse_query(Some(
            "&watch=true&labelSelector=app.kubernetes.io%2Fname%3Dweb&",
        ));
        assert_eq!(q["watch"], "true");
        assert_eq!(q["labelSelector"], "app.kubernetes.io/name=web");
        assert!(parse_query(Some("")).is_empty());
        let s = Selector::parse("app=web,tier!=db,canary,!legacy").unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&labels(&[("app", "web"), ("canary", "")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(Selector::parse("app in (a,b)").is_err());
        assert!(Selector::parse("a===b").is_err(), "'=b' is no label value");
        let named = FieldSelector::parse(Resource::Deployment, "metadata.name=x").unwrap();
        assert!(named.matches(&serde_json::json!({"metadata": {"name": "x"}})));
        assert!(!named.matches(&serde_json::json!({"metadata": {"name": "y"}})));
        assert_eq!(
            FieldSelector::parse(Resource::Deployment, "status.phase=Running").unwrap_err(),
            "field label not supported: status.phase"
        );
        let rescales =
            FieldSelector::parse(Resource::Event, "reason=SuccessfulRescale,source!=kubelet")
                .unwrap();
        assert!(rescales.matches(&serde_json::json!({"reason": "SuccessfulRescale", "source": {"component": "horizontal-pod-autoscaler"}})));
        assert!(!rescales.matches(
            &serde_json::json!({"reason": "SuccessfulRescale", "source": {"component": "kubelet"}})
        ));
    }
}
