//! Server-side apply of the namespace and the workload.
//!
//! Server-side apply (rather than create-or-replace) makes every step idempotent: a
//! second `cargo xtask cluster up` converges instead of failing on "already exists".

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::Patch;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::objects::Prepared;
use super::{ClusterError, apply_params};

/// Applies `object` through `api` (namespaced or cluster-wide).
async fn apply<K>(api: Api<K>, object: &K) -> Result<K, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let what = format!("apply {} {name}", K::kind(&()));
    api.patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .map_err(ClusterError::kube(what))
}

/// Creates or updates the dedicated namespace with its Pod Security labels.
pub async fn ensure_namespace(client: &Client, namespace: &Namespace) -> Result<(), ClusterError> {
    apply(Api::all(client.clone()), namespace).await.map(drop)
}

/// Applies the namespace, then the Deployment, Service and HPA into it.
#[tracing::instrument(level = "debug", name = "cluster::apply::apply_workload", skip_all)]
pub async fn apply_workload(client: &Client, prepared: &Prepared) -> Result<(), ClusterError> {
    apply_workload_without_hpa(client, prepared).await?;
    apply_hpa(client, &prepared.target.namespace, &prepared.hpa).await
}

/// Applies the namespace, then the Deployment and Service into it: the workload
/// before its HPA, which a fresh namespace adds only once its pod is idle.
#[tracing::instrument(
    level = "debug",
    name = "cluster::apply::apply_workload_without_hpa",
    skip_all
)]
pub async fn apply_workload_without_hpa(
    client: &Client,
    prepared: &Prepared,
) -> Result<(), ClusterError> {
    let ns = prepared.target.namespace.as_str();
    ensure_namespace(client, &prepared.namespace).await?;
    apply::<Deployment>(Api::namespaced(client.clone(), ns), &prepared.deployment).await?;
    apply::<Service>(Api::namespaced(client.clone(), ns), &prepared.service)
        .await
        .map(drop)
}

/// Applies the HPA alone (used again by the reset between scenarios).
#[tracing::instrument(level = "debug", name = "cluster::apply::apply_hpa", skip_all)]
pub async fn apply_hpa(
    client: &Client,
    namespace: &str,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(), ClusterError> {
    apply(Api::namespaced(client.clone(), namespace), hpa)
        .await
        .map(drop)
}
