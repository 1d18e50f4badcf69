//! Evidence in one line: the events and log lines that say what went wrong, as the
//! rollout wait's stall notices and the diagnostics bundle both quote them.

use k8s_openapi::api::core::v1::Event;

/// When an event was last seen: its `lastTimestamp`, else its `eventTime`, else
/// when it was created.
pub fn last_seen(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// One event as `kubectl get events` would summarize it: type, reason, object,
/// message, and how often it repeated.
pub fn describe(event: &Event) -> String {
    let object = &event.involved_object;
    let times = match event.count {
        Some(n) if n > 1 => format!(" (x{n})"),
        _ => String::new(),
    };
    format!(
        "{} {} {}/{}: {}{times}",
        event.type_.as_deref().unwrap_or("Normal"),
        event.reason.as_deref().unwrap_or("?"),
        object.kind.as_deref().unwrap_or("?").to_lowercase(),
        object.name.as_deref().unwrap_or("?"),
        event.message.as_deref().unwrap_or("").trim()
    )
}

/// The last `count` events, oldest first, one line each.
pub fn recent_events(mut events: Vec<Event>, count: usize) -> Vec<String> {
    events.sort_by_key(last_seen);
    let skip = events.len().saturating_sub(count);
    events.iter().skip(skip).map(describe).collect()
}

/// Every event, oldest first, each line led by when it happened (`first..last` for
/// one that repeated): what a person needs to line the events of a bundle up with
/// the scenario's timeline and the pods' Ready times.
pub fn timed_events(mut events: Vec<Event>) -> Vec<String> {
    events.sort_by_key(last_seen);
    events
        .iter()
        .map(|e| {
            let first = e.first_timestamp.as_ref().map(|t| t.0);
            let when = match (first, last_seen(e)) {
                (Some(first), Some(last)) if first != last => format!("{first}..{last}"),
                (_, Some(last)) => last.to_string(),
                (first, None) => first.map_or_else(|| "(no time)".into(), |t| t.to_string()),
            };
            format!("{when} {}", describe(e))
        })
        .collect()
}

/// The line of a log that most likely says what went wrong: the last one that reads
/// like an error, else the last line.
pub fn decisive_line(log: &str) -> Option<String> {
    const SIGNS: [&str; 8] = [
        "error", "fatal", "panic", "fail", "refus", "denied", "invalid", "cannot",
    ];
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| {
            let lower = l.to_lowercase();
            SIGNS.iter().any(|s| lower.contains(s))
        })
        .or(lines.last())?;
    let mut quote: String = line.chars().take(400).collect();
    if line.chars().count() > 400 {
        quote.push('…');
    }
    Some(quote)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn event(reason: &str, first: Option<&str>, last: Option<&str>, count: i32) -> Event {
        let at = |t: &str| Time(t.parse::<Timestamp>().expect("a timestamp"));
        Event {
            type_: Some("Warning".into()),
            reason: Some(reason.into()),
            message: Some(format!("{reason} happened")),
            count: Some(count),
            first_timestamp: first.map(at),
            last_timestamp: last.map(at),
            involved_object: k8s_openapi::api::core::v1::ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn timed_events_lead_with_when_oldest_first_and_span_repeats() {
        let lines = timed_events(vec![
            event(
                "Unhealthy",
                Some("2026-12-07T15:31:58Z"),
                Some("2026-12-07T15:32:05Z"),
                70,
            ),
            event(
                "Failed",
                Some("2026-12-07T15:31:57Z"),
                Some("2026-12-07T15:31:57Z"),
                1,
            ),
            event("Odd", None, None, 1),
        ]);
        assert_eq!(
            lines,
            [
                "(no time) Warning Odd pod/web-1: Odd happened",
                "2026-12-07T15:31:57Z Warning Failed pod/web-1: Failed happened",
                "2026-12-07T15:31:58Z..2026-12-07T15:32:05Z Warning Unhealthy pod/web-1: \
                 Unhealthy happened (x70)",
            ]
        );
    }

    #[test]
    fn recent_events_keep_the_last_count_untimed() {
        let lines = recent_events(
            vec![
                event("B", None, Some("2026-12-07T15:32:05Z"), 1),
                event("A", None, Some("2026-12-07T15:31:05Z"), 2),
            ],
            1,
        );
        assert_eq!(lines, ["Warning B pod/web-1: B happened"]);
    }
}
