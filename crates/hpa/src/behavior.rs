//! Turning the calculator's proposal into the count to apply: stabilization windows,
//! rate limits and min/max clamping, with the memory of past recommendations and scale
//! events they need (upstream `HorizontalController`'s `recommendations`,
//! `scaleUpEvents` and `scaleDownEvents`).
//!
//! Two paths, as upstream: [`History::normalize_with_behavior`] when `spec.behavior`
//! is set, [`History::normalize_legacy`] when it is not.

use std::time::Duration;

use super::spec::{Behavior, PolicyKind, ScalingRules, SelectPolicy};

/// Legacy scale-up limit: at most `max(2 × current, 4)` replicas in one step
/// (upstream `scaleUpLimitFactor` / `scaleUpLimitMinimum`).
const LEGACY_SCALE_UP_FACTOR: u32 = 2;
const LEGACY_SCALE_UP_MINIMUM: u32 = 4;

/// `t` lies strictly inside the window ending at `now` (Go: `t.After(now - window)`).
fn within(t: Duration, now: Duration, window: Duration) -> bool {
    t.saturating_add(window) > now
}

/// `t` lies strictly before the window ending at `now` (Go: `t.Before(now - window)`).
fn before(t: Duration, now: Duration, window: Duration) -> bool {
    t.saturating_add(window) < now
}

/// One entry of the recommendation log (upstream `timestampedRecommendation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recommendation {
    pub(crate) replicas: u32,
    pub(crate) at: Duration,
}

/// One stored rescale (upstream `timestampedScaleEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaleEvent {
    /// Replicas added (scale-up list) or removed (scale-down list).
    pub(crate) change: u32,
    pub(crate) at: Duration,
    /// Older than the direction's longest policy period: free to be overwritten.
    pub(crate) outdated: bool,
}

/// The result of normalization, with the reasons upstream would put in the
/// `AbleToScale` and `ScalingLimited` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Normalization {
    /// The proposal after the stabilization window.
    pub(crate) stabilized: u32,
    /// `ReadyForNewScale`, `ScaleUpStabilized` or `ScaleDownStabilized`.
    pub(crate) stabilization_reason: &'static str,
    pub(crate) stabilization_message: &'static str,
    /// The count to apply.
    pub(crate) desired: u32,
    /// `DesiredWithinRange` or what clamped the count.
    pub(crate) limit_reason: &'static str,
    pub(crate) limit_message: &'static str,
}

impl Normalization {
    /// Whether min/max or a rate limit changed the stabilized proposal.
    pub(crate) fn limited(&self) -> bool {
        self.desired != self.stabilized
    }
}

const READY_FOR_NEW_SCALE: (&str, &str) =
    ("ReadyForNewScale", "recommended size matches current size");
const SCALE_UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const SCALE_DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

/// What the controller remembers about one HPA between reconciles.
///
/// Storage follows upstream exactly, including its reuse of stale slots: an entry
/// that has aged out is overwritten by the next new one instead of being removed, so
/// the lists stay bounded by what fits in the longest window.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct History {
    recommendations: Vec<Recommendation>,
    /// The log exists (upstream: the map holds a non-nil slice for this HPA), even if
    /// it is empty; only upstream's tests create an empty one.
    log_started: bool,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

impl History {
    /// Upstream `recordInitialRecommendation`: the first reconcile remembers the count
    /// the target already had, so a controller (re)start does not scale down at once.
    pub(crate) fn record_initial(&mut self, current_replicas: u32, now: Duration) {
        if !self.log_started {
            self.log_started = true;
            self.recommendations.push(Recommendation {
                replicas: current_replicas,
                at: now,
            });
        }
    }

    /// The recommendation log, oldest slot first (slots are reused, so not sorted).
    #[cfg(test)]
    pub(crate) fn recommendations(&self) -> &[Recommendation] {
        &self.recommendations
    }

    /// Stored scale-up events.
    #[cfg(test)]
    pub(crate) fn scale_up_events(&self) -> &[ScaleEvent] {
        &self.scale_up_events
    }

    /// Stored scale-down events.
    #[cfg(test)]
    pub(crate) fn scale_down_events(&self) -> &[ScaleEvent] {
        &self.scale_down_events
    }

    /// A history as upstream's tests preset it: a started recommendation log (possibly
    /// empty, which skips the initial recommendation) and stored scale events.
    #[cfg(test)]
    pub(crate) fn preset(
        recommendations: Vec<Recommendation>,
        scale_up_events: Vec<ScaleEvent>,
        scale_down_events: Vec<ScaleEvent>,
    ) -> Self {
        Self {
            recommendations,
            log_started: true,
            scale_up_events,
            scale_down_events,
        }
    }

    /// Stores `replicas` at `now`, overwriting the slot `stale` if there is one.
    fn remember(&mut self, stale: Option<usize>, replicas: u32, now: Duration) {
        let recommendation = Recommendation { replicas, at: now };
        match stale.and_then(|i| self.recommendations.get_mut(i)) {
            Some(slot) => *slot = recommendation,
            None => self.recommendations.push(recommendation),
        }
    }

    /// Upstream `normalizeDesiredReplicas` with `stabilizeRecommendation` and
    /// `convertDesiredReplicasWithRules`: take the highest recommendation of the
    /// downscale window (scale-ups pass at once), then clamp to min, max and the
    /// legacy scale-up limit.
    pub(crate) fn normalize_legacy(
        &mut self,
        now: Duration,
        current: u32,
        proposal: u32,
        (min, max): (u32, u32),
        downscale_window: Duration,
    ) -> Normalization {
        let mut stabilized = proposal;
        let mut stale = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if before(rec.at, now, downscale_window) {
                stale = Some(i);
            } else {
                stabilized = stabilized.max(rec.replicas);
            }
        }
        self.remember(stale, proposal, now);

        let (stabilization_reason, stabilization_message) = if stabilized != proposal {
            SCALE_DOWN_STABILIZED
        } else {
            READY_FOR_NEW_SCALE
        };

        let scale_up_limit = LEGACY_SCALE_UP_FACTOR
            .saturating_mul(current)
            .max(LEGACY_SCALE_UP_MINIMUM);
        let (upper, upper_reason) = if max > scale_up_limit {
            (scale_up_limit, SCALE_UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        let (desired, (limit_reason, limit_message)) = if stabilized < min {
            (min, TOO_FEW)
        } else if stabilized > upper {
            (upper, upper_reason)
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Normalization {
            stabilized,
            stabilization_reason,
            stabilization_message,
            desired,
            limit_reason,
            limit_message,
        }
    }

    /// Upstream `normalizeDesiredReplicasWithBehaviors`: stabilize over both windows,
    /// then apply the direction's rate-limit policies and min/max.
    pub(crate) fn normalize_with_behavior(
        &mut self,
        now: Duration,
        current: u32,
        proposal: u32,
        (min, max): (u32, u32),
        behavior: &Behavior,
        default_downscale_window: Duration,
    ) -> Normalization {
        // Upstream `maybeInitScaleDownStabilizationWindow`.
        let down_window = behavior
            .scale_down
            .stabilization_window
            .unwrap_or(default_downscale_window);
        // The API server always fills the scale-up window (default 0).
        let up_window = behavior.scale_up.stabilization_window.unwrap_or_default();
        let (stabilized, reason) = self.stabilize(now, current, proposal, up_window, down_window);
        let (stabilization_reason, stabilization_message) = if stabilized != proposal {
            reason
        } else {
            READY_FOR_NEW_SCALE
        };

        let (desired, (limit_reason, limit_message)) =
            self.apply_rate_limits(now, current, stabilized, (min, max), behavior);
        Normalization {
            stabilized,
            stabilization_reason,
            stabilization_message,
            desired,
            limit_reason,
            limit_message,
        }
    }

    /// Upstream `stabilizeRecommendationWithBehaviors`: a scale-up may go no higher
    /// than the lowest recommendation of the scale-up window, a scale-down no lower
    /// than the highest of the scale-down window.
    pub(crate) fn stabilize(
        &mut self,
        now: Duration,
        current: u32,
        proposal: u32,
        up_window: Duration,
        down_window: Duration,
    ) -> (u32, (&'static str, &'static str)) {
        let mut up_bound = proposal;
        let mut down_bound = proposal;
        let mut stale = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if within(rec.at, now, up_window) {
                up_bound = up_bound.min(rec.replicas);
            }
            if within(rec.at, now, down_window) {
                down_bound = down_bound.max(rec.replicas);
            }
            if before(rec.at, now, up_window) && before(rec.at, now, down_window) {
                stale = Some(i);
            }
        }
        self.remember(stale, proposal, now);

        let stabilized = current.max(up_bound).min(down_bound);
        let reason = if proposal >= current {
            SCALE_UP_STABILIZED
        } else {
            SCALE_DOWN_STABILIZED
        };
        (stabilized, reason)
    }

    /// Upstream `convertDesiredReplicasWithBehaviorRate`.
    pub(crate) fn apply_rate_limits(
        &self,
        now: Duration,
        current: u32,
        desired: u32,
        (min, max): (u32, u32),
        behavior: &Behavior,
    ) -> (u32, (&'static str, &'static str)) {
        if desired > current {
            let limit = self
                .scale_up_limit(now, current, &behavior.scale_up)
                .max(i64::from(current));
            let (allowed, reason) = if i64::from(max) > limit {
                // `limit` lies between `current` and `max` here, so it fits a u32.
                (u32::try_from(limit).unwrap_or(max), SCALE_UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if desired > allowed {
                return (allowed, reason);
            }
        } else if desired < current {
            let limit = self
                .scale_down_limit(now, current, &behavior.scale_down)
                .min(i64::from(current));
            let (allowed, reason) = if i64::from(min) < limit {
                // `limit` lies between `min` and `current` here, so it fits a u32.
                (u32::try_from(limit).unwrap_or(min), SCALE_DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if desired < allowed {
                return (allowed, reason);
            }
        }
        (desired, WITHIN_RANGE)
    }

    /// Replicas the scale events added (or removed) within the last `period`
    /// (upstream `getReplicasChangePerPeriod`).
    pub(crate) fn change_in_period(events: &[ScaleEvent], now: Duration, period: Duration) -> i64 {
        events
            .iter()
            .filter(|event| within(event.at, now, period))
            .map(|event| i64::from(event.change))
            .sum()
    }

    /// The replica count at the start of `period`: undo the changes made within it.
    fn period_start(&self, now: Duration, current: u32, period: Duration) -> i64 {
        i64::from(current) - Self::change_in_period(&self.scale_up_events, now, period)
            + Self::change_in_period(&self.scale_down_events, now, period)
    }

    /// Upstream `calculateScaleUpLimitWithScalingRules`: the most replicas the
    /// policies allow now. May be below `current` while recent scale-ups use the budget.
    fn scale_up_limit(&self, now: Duration, current: u32, rules: &ScalingRules) -> i64 {
        let proposals = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, current, policy.period);
            match policy.kind {
                PolicyKind::Pods => start + i64::from(policy.value),
                // Rounded up so that a small percentage of few pods still adds one.
                PolicyKind::Percent => {
                    (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64
                }
            }
        });
        match rules.select_policy {
            SelectPolicy::Disabled => i64::from(current),
            SelectPolicy::Max => proposals.max().unwrap_or(i64::MIN),
            SelectPolicy::Min => proposals.min().unwrap_or(i64::MAX),
        }
    }

    /// Upstream `calculateScaleDownLimitWithBehaviors`: the fewest replicas the
    /// policies allow now. `Max` picks the largest change, i.e. the lowest count.
    fn scale_down_limit(&self, now: Duration, current: u32, rules: &ScalingRules) -> i64 {
        let proposals = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, current, policy.period);
            match policy.kind {
                PolicyKind::Pods => start - i64::from(policy.value),
                // Truncated, as Go's int32 conversion does: removes at least the percent
                // (5 replicas at 50 % go to 2).
                PolicyKind::Percent => {
                    (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64
                }
            }
        });
        match rules.select_policy {
            SelectPolicy::Disabled => i64::from(current),
            SelectPolicy::Max => proposals.min().unwrap_or(i64::MAX),
            SelectPolicy::Min => proposals.max().unwrap_or(i64::MIN),
        }
    }

    /// Upstream `storeScaleEvent` (with `markScaleEventsOutdated`): remember a rescale
    /// from `previous` to `new` for the rate limits. The legacy path has none, so
    /// nothing is stored without `behavior`.
    pub(crate) fn record_scale_event(
        &mut self,
        behavior: Option<&Behavior>,
        previous: u32,
        new: u32,
        now: Duration,
    ) {
        let Some(behavior) = behavior else {
            return;
        };
        let (events, rules, change) = if new > previous {
            (
                &mut self.scale_up_events,
                &behavior.scale_up,
                new - previous,
            )
        } else {
            (
                &mut self.scale_down_events,
                &behavior.scale_down,
                previous - new,
            )
        };
        let longest_period = rules
            .policies
            .iter()
            .map(|policy| policy.period)
            .max()
            .unwrap_or_default();
        let mut stale = None;
        for (i, event) in events.iter_mut().enumerate() {
            if before(event.at, now, longest_period) {
                event.outdated = true;
            }
            if event.outdated {
                stale = Some(i);
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match stale.and_then(|i| events.get_mut(i)) {
            Some(slot) => *slot = event,
            None => events.push(event),
        }
    }
}
