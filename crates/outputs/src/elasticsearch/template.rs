//! The index template `create_index_template: true` installs: keywords for what people filter on,
//! text for the output, nanosecond dates, and strings under `output_fields` as keywords so that
//! a busy field does not turn every value into analysed text.

use serde_json::{json, Value};

use super::config::Target;

/// The template's name and body for `target`.
pub fn index_template(target: &Target) -> (String, Value) {
    let (name, patterns, data_stream) = match target {
        Target::Index { name, .. } => (
            format!("peregrine-{name}"),
            json!([name, format!("{name}-*")]),
            None,
        ),
        Target::DataStream(name) => (format!("peregrine-{name}"), json!([name]), Some(json!({}))),
    };
    let mut body = json!({
        "index_patterns": patterns,
        "priority": 200,
        "template": {
            "mappings": {
                "dynamic_templates": [{
                    "output_fields_strings": {
                        "path_match": "output_fields.*",
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword", "ignore_above": 4096}
                    }
                }],
                "properties": {
                    "@timestamp": {"type": "date_nanos"},
                    "time": {"type": "date_nanos"},
                    "uuid": {"type": "keyword"},
                    "rule": {"type": "keyword"},
                    "priority": {"type": "keyword"},
                    "source": {"type": "keyword"},
                    "hostname": {"type": "keyword"},
                    "tags": {"type": "keyword"},
                    "output": {"type": "text"},
                    "output_fields": {"type": "object"}
                }
            }
        },
        "_meta": {"managed_by": "peregrine"}
    });
    if let Some(ds) = data_stream {
        body["data_stream"] = ds;
    }
    (name, body)
}
