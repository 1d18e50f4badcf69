//! `docs/report-schema.md` and `docs/report.schema.json`, generated from the types
//! of `report.json` ([`super::Report`]): their doc comments are the descriptions, so
//! the documentation cannot drift from the code. A test regenerates both and fails
//! when the files in the repository differ (as rust-analyzer does for its generated
//! docs); running the test writes the fresh versions, to be committed.

use schemars::{Schema, generate::SchemaSettings};
use serde_json::Value;

use super::{Report, SCHEMA_VERSION};

/// The JSON Schema of `report.json` (draft 2020-12), pretty-printed.
pub fn json_schema() -> String {
    let mut text = serde_json::to_string_pretty(schema().as_value()).unwrap_or_default();
    text.push('\n');
    text
}

fn schema() -> Schema {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Report>()
}

const INTRO: &str = "\
`cargo xtask stress` writes `report.json` next to `junit.xml`, `summary.md` and
`timeline.svg` (default directory `target/scaleproof/`). It is the machine-readable
record of a run: what was set up, what each scenario sent and measured, what the
autoscaler did, and how every expectation was judged. `--baseline OLD/report.json`
reads the same format; `scaleproof load --json` prints a [LoadReport](#loadreport).

Compatibility: `schema_version` changes when a field changes meaning or disappears.
Adding a field does not change it, so readers should ignore fields they do not know.
Every field carries its unit in its name (`_ms`, `_s`, `_per_s`, `_pct`,
`_millicores`); rates are fractions between 0 and 1 (`success_rate`). The JSON Schema
is in [report.schema.json](report.schema.json).

The exit code of `cargo xtask stress` follows from the verdicts: `2` if a setup step
or a scenario has an error (or a verdict has outcome `error`), else `1` if a verdict
failed, else `0`.
";

/// The Markdown reference: the intro, then one table per type, `Report` first and
/// the others in the order they are first referenced.
pub fn markdown() -> String {
    let schema = schema();
    let root = schema.as_value();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = format!(
        "<!-- Generated from crates/scaleproof/src/report/model.rs by \
         `cargo test -p scaleproof schema_doc`; edit the doc comments there, not this file. -->\n\n\
         # `report.json` schema (version {SCHEMA_VERSION})\n\n{INTRO}"
    );
    let mut order = vec![("Report".to_string(), root.clone())];
    let mut seen = vec!["Report".to_string()];
    let mut i = 0;
    while i < order.len() {
        let (name, definition) = order[i].clone();
        for referenced in references(&definition) {
            if !seen.contains(&referenced)
                && let Some(def) = defs.get(&referenced)
            {
                seen.push(referenced.clone());
                order.push((referenced, def.clone()));
            }
        }
        out.push_str(&section(&name, &definition));
        i += 1;
    }
    out
}

/// One type: its description, then its fields (or its values, for an enumeration).
fn section(name: &str, definition: &Value) -> String {
    let mut text = format!("\n## {name}\n\n");
    if let Some(description) = definition.get("description").and_then(Value::as_str) {
        text.push_str(&paragraph(description));
        text.push_str("\n\n");
    }
    if let Some(values) = enumeration(definition) {
        text.push_str(&format!("One of {}.\n", values.join(", ")));
        return text;
    }
    let Some(properties) = definition.get("properties").and_then(Value::as_object) else {
        return text;
    };
    let required: Vec<&str> = definition
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    text.push_str("| field | type | meaning |\n|---|---|---|\n");
    for (field, property) in properties {
        let mut kind = type_of(property);
        // Options are written as null; only fields that may be absent are optional.
        if !required.contains(&field.as_str()) && !kind.contains("null") {
            kind.push_str(" (optional)");
        }
        let meaning = property
            .get("description")
            .and_then(Value::as_str)
            .map(paragraph)
            .unwrap_or_default();
        text.push_str(&format!(
            "| `{field}` | {kind} | {} |\n",
            meaning.replace('|', "\\|")
        ));
    }
    text
}

/// Doc-comment lines joined into one line (Markdown tables cannot hold line breaks).
fn paragraph(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The values of a string enumeration, quoted.
fn enumeration(definition: &Value) -> Option<Vec<String>> {
    let quoted = |v: &Value| v.as_str().map(|s| format!("`{s}`"));
    if let Some(values) = definition.get("enum").and_then(Value::as_array) {
        return Some(values.iter().filter_map(quoted).collect());
    }
    let variants = definition.get("oneOf").and_then(Value::as_array)?;
    variants
        .iter()
        .map(|v| v.get("const").and_then(quoted))
        .collect()
}

/// A property's type in words, linking referenced types.
fn type_of(property: &Value) -> String {
    if let Some(reference) = property.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(any) = property.get("anyOf").and_then(Value::as_array) {
        let kinds: Vec<String> = any.iter().map(type_of).collect();
        return kinds.join(" or ");
    }
    match property.get("type") {
        Some(Value::String(t)) => simple(t, property),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| simple(t, property))
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

fn simple(kind: &str, property: &Value) -> String {
    match kind {
        "array" => {
            let item = property.get("items").map_or("any".into(), type_of);
            format!("array of {item}")
        }
        "object" => match property.get("additionalProperties") {
            Some(values) if values.is_object() => format!("object of {}", type_of(values)),
            _ => "object".into(),
        },
        other => other.to_string(),
    }
}

/// The names of the definitions a schema refers to, in order of appearance.
fn references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect(value, &mut found);
    found
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref")
                && let Some(name) = reference.rsplit('/').next()
                && !found.iter().any(|f| f == name)
            {
                found.push(name.to_string());
            }
            for (key, inner) in map {
                if key != "$defs" {
                    collect(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Compares `path` with `contents`; when they differ, writes `contents` and
    /// returns the path, so the fix is to commit the regenerated file.
    fn regenerate_if_stale(path: &Path, contents: &str) -> Option<String> {
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current == contents {
            return None;
        }
        std::fs::write(path, contents).expect("the generated doc is writable");
        Some(path.display().to_string())
    }

    #[test]
    fn schema_doc_is_up_to_date() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let stale: Vec<String> = [
            regenerate_if_stale(&docs.join("report-schema.md"), &markdown()),
            regenerate_if_stale(&docs.join("report.schema.json"), &json_schema()),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(
            stale.is_empty(),
            "out of date with the report types (crates/scaleproof/src/report/model.rs), now \
             regenerated: {}. Review and commit them.",
            stale.join(", ")
        );
    }

    #[test]
    fn every_type_of_the_report_has_a_section() {
        let md = markdown();
        for heading in [
            "## Report",
            "## RunMeta",
            "## ScenarioReport",
            "## LoadReport",
            "## SampleReport",
            "## VerdictReport",
            "## Outcome",
        ] {
            assert!(md.contains(heading), "{heading} missing from:\n{md}");
        }
        assert!(md.contains("| `p95_ms` | number |"), "{md}");
        assert!(
            md.contains("One of `pass`, `fail`, `error`."),
            "enumerations list their values:\n{md}"
        );
    }
}
