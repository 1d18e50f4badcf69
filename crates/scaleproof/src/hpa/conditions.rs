//! The HPA status conditions, kept across reconciles the way `status.conditions` is.
//!
//! Upstream `setCondition` / `setConditionInList` replace a condition of the same type in
//! place and append new types, so a condition a reconcile does not touch (for example
//! `ScalingLimited` while metrics are missing) keeps its last value. This list does the
//! same; it leaves out `lastTransitionTime`, which the shared [`Condition`] type does not
//! carry.

use crate::timeline::Condition;

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
