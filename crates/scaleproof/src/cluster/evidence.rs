//! Evidence in one line: the events and log lines that say what went wrong, as the
//! rollout wait's stall notices and the diagnostics bundle both quote them.

use k8s_openapi::api::core::v1::Event;

/// The last `count` events, oldest first, one line each.
pub fn recent_events(mut events: Vec<Event>, count: usize) -> Vec<String> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(when);
    let skip = events.len().saturating_sub(count);
    events
        .iter()
        .skip(skip)
        .map(|e| {
            let object = &e.involved_object;
            let times = match e.count {
                Some(n) if n > 1 => format!(" (x{n})"),
                _ => String::new(),
            };
            format!(
                "{} {} {}/{}: {}{times}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or("?"),
                object.kind.as_deref().unwrap_or("?").to_lowercase(),
                object.name.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or("").trim()
            )
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
