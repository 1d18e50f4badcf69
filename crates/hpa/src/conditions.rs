//! The HPA status conditions, kept across reconciles the way `status.conditions` is.
//!
//! Upstream `setCondition` / `setConditionInList` replace a condition of the same type in
//! place and append new types, so a condition a reconcile does not touch (for example
//! `ScalingLimited` while metrics are missing) keeps its last value. This list does the
//! same; it leaves out `lastTransitionTime`, which [`Condition`] does not carry.

/// An HPA status condition, with the upstream type and reason strings
/// (for example `ScalingLimited` / `True` / `TooManyReplicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    /// `"True"`, `"False"` or `"Unknown"`, as Kubernetes spells them.
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl Condition {
    /// Whether this is the condition `type_` with `status` and `reason`.
    pub fn is(&self, type_: &str, status: &str, reason: &str) -> bool {
        self.type_ == type_ && self.status == status && self.reason == reason
    }
}

/// Condition type: whether the controller can read and update the target's scale.
pub const ABLE_TO_SCALE: &str = "AbleToScale";
/// Condition type: whether the controller could compute a replica count from metrics.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// Condition type: whether the desired count was clamped by min/max or a rate limit.
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// The status conditions of one HPA, in the order they were first set.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConditionList(Vec<Condition>);

impl ConditionList {
    /// Sets the condition of `type_`, replacing an earlier one of the same type.
    pub(crate) fn set(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        let condition = Condition {
            type_: type_.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.to_owned(),
            message: message.into(),
        };
        match self.0.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => self.0.push(condition),
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<Condition> {
        self.0.clone()
    }
}
