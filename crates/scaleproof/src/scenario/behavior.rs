//! `[scenario.hpa.behavior]`: a scenario's changes to the HPA's `spec.behavior`,
//! written with the autoscaling/v2 field names (`scaleDown.stabilizationWindowSeconds`,
//! `policies`, `selectPolicy`, ...), so a scale-in scenario can shorten the
//! stabilization window and still exercise the manifest's real policies.
//!
//! The table is typed as k8s-openapi's `HorizontalPodAutoscalerBehavior` (a key it
//! does not declare is an error, as server-side apply would make it) and checked with
//! the API server's own rules (kubernetes `pkg/apis/autoscaling/validation/
//! validation.go`: `validateScalingRules`, `validateScalingPolicy`) before anything
//! runs. Laid over the manifest's behavior direction by direction, field by field:
//! what the scenario names replaces the manifest's, the rest stays.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// `MaxStabilizationWindowSeconds` of the upstream validation.
const MAX_STABILIZATION_WINDOW_S: i32 = 3600;
/// `MaxPeriodSeconds` of the upstream validation.
const MAX_PERIOD_S: i32 = 1800;

/// Types `value` (a TOML table) as an HPA behavior; the error names the first key
/// the type does not declare, or why a value has the wrong type.
pub fn parse(value: &toml::Value) -> Result<HorizontalPodAutoscalerBehavior, String> {
    let raw = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let typed: HorizontalPodAutoscalerBehavior =
        serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if let Some(key) = scaleproof_sim::api::apply::first_lost_key(&raw, &again, String::new()) {
        return Err(format!(
            "{key}: not a field of autoscaling/v2 HorizontalPodAutoscalerBehavior (scaleUp, \
             scaleDown; each: stabilizationWindowSeconds, selectPolicy, policies, tolerance)"
        ));
    }
    Ok(typed)
}

/// The API server's checks of a behavior, as `path: message` lines (empty: valid).
pub fn validate(behavior: &HorizontalPodAutoscalerBehavior) -> Vec<String> {
    let mut errors = Vec::new();
    for (direction, rules) in [
        ("scaleUp", &behavior.scale_up),
        ("scaleDown", &behavior.scale_down),
    ] {
        if let Some(rules) = rules {
            validate_rules(direction, rules, &mut errors);
        }
    }
    errors
}

fn validate_rules(direction: &str, rules: &HPAScalingRules, errors: &mut Vec<String>) {
    if let Some(window) = rules.stabilization_window_seconds {
        if window < 0 {
            errors.push(format!(
                "{direction}.stabilizationWindowSeconds: {window}: must be greater than or equal to zero"
            ));
        }
        if window > MAX_STABILIZATION_WINDOW_S {
            errors.push(format!(
                "{direction}.stabilizationWindowSeconds: {window}: must be less than or equal to {MAX_STABILIZATION_WINDOW_S}"
            ));
        }
    }
    if let Some(select) = &rules.select_policy
        && !["Disabled", "Max", "Min"].contains(&select.as_str())
    {
        errors.push(format!(
            "{direction}.selectPolicy: {select:?}: supported values: \"Disabled\", \"Max\", \"Min\""
        ));
    }
    match &rules.policies {
        Some(policies) if policies.is_empty() => errors.push(format!(
            "{direction}.policies: must specify at least one Policy"
        )),
        Some(policies) => {
            for (i, policy) in policies.iter().enumerate() {
                let at = format!("{direction}.policies[{i}]");
                if !["Percent", "Pods"].contains(&policy.type_.as_str()) {
                    errors.push(format!(
                        "{at}.type: {:?}: supported values: \"Percent\", \"Pods\"",
                        policy.type_
                    ));
                }
                if policy.value <= 0 {
                    errors.push(format!(
                        "{at}.value: {}: must be greater than zero",
                        policy.value
                    ));
                }
                if policy.period_seconds <= 0 {
                    errors.push(format!(
                        "{at}.periodSeconds: {}: must be greater than zero",
                        policy.period_seconds
                    ));
                }
                if policy.period_seconds > MAX_PERIOD_S {
                    errors.push(format!(
                        "{at}.periodSeconds: {}: must be less than or equal to {MAX_PERIOD_S}",
                        policy.period_seconds
                    ));
                }
            }
        }
        None => {}
    }
}

/// `over` laid over `base`: per direction, each field `over` sets replaces the
/// base's (a `policies` list replaces the whole list).
pub fn overlay(
    base: Option<&HorizontalPodAutoscalerBehavior>,
    over: &HorizontalPodAutoscalerBehavior,
) -> HorizontalPodAutoscalerBehavior {
    let rules = |base: Option<&HPAScalingRules>, over: Option<&HPAScalingRules>| match (base, over)
    {
        (base, None) => base.cloned(),
        (None, Some(over)) => Some(over.clone()),
        (Some(base), Some(over)) => Some(HPAScalingRules {
            policies: over.policies.clone().or_else(|| base.policies.clone()),
            select_policy: over
                .select_policy
                .clone()
                .or_else(|| base.select_policy.clone()),
            stabilization_window_seconds: over
                .stabilization_window_seconds
                .or(base.stabilization_window_seconds),
            tolerance: over.tolerance.clone().or_else(|| base.tolerance.clone()),
        }),
    };
    HorizontalPodAutoscalerBehavior {
        scale_up: rules(
            base.and_then(|b| b.scale_up.as_ref()),
            over.scale_up.as_ref(),
        ),
        scale_down: rules(
            base.and_then(|b| b.scale_down.as_ref()),
            over.scale_down.as_ref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> toml::Value {
        toml::from_str(text).expect("TOML")
    }

    #[test]
    fn a_shorter_window_keeps_the_manifests_policies() {
        let manifest = parse(&toml(
            "[scaleDown]\nstabilizationWindowSeconds = 60\n[[scaleDown.policies]]\ntype = \"Percent\"\nvalue = 50\nperiodSeconds = 15\n",
        ))
        .expect("valid");
        let over = parse(&toml("[scaleDown]\nstabilizationWindowSeconds = 15\n")).expect("valid");
        let merged = overlay(Some(&manifest), &over);
        let down = merged.scale_down.expect("scaleDown");
        assert_eq!(down.stabilization_window_seconds, Some(15));
        assert_eq!(down.policies.expect("policies")[0].value, 50);
        assert!(validate(&overlay(Some(&manifest), &over)).is_empty());
    }

    #[test]
    fn unknown_keys_and_the_api_servers_limits_are_refused() {
        let err = parse(&toml("[scaleDown]\nstabilizationWindowSecond = 15\n")).unwrap_err();
        assert!(
            err.starts_with("scaleDown.stabilizationWindowSecond: not a field"),
            "{err}"
        );
        let err = parse(&toml("[scaleDown]\nstabilizationWindowSeconds = \"15s\"\n")).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let bad = parse(&toml(
            "[scaleUp]\nstabilizationWindowSeconds = 3601\nselectPolicy = \"Fastest\"\n[[scaleUp.policies]]\ntype = \"Replicas\"\nvalue = 0\nperiodSeconds = 1801\n",
        ))
        .expect("types fine");
        assert_eq!(
            validate(&bad),
            vec![
                "scaleUp.stabilizationWindowSeconds: 3601: must be less than or equal to 3600",
                "scaleUp.selectPolicy: \"Fastest\": supported values: \"Disabled\", \"Max\", \"Min\"",
                "scaleUp.policies[0].type: \"Replicas\": supported values: \"Percent\", \"Pods\"",
                "scaleUp.policies[0].value: 0: must be greater than zero",
                "scaleUp.policies[0].periodSeconds: 1801: must be less than or equal to 1800",
            ]
        );
    }
}
