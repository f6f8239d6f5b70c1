//! The conformance suite: table-driven cases in `tests/conformance/*.yaml`, each a condition, an
//! event and whether Falco's semantics say the rule matches. Every case loads a real rules file
//! through the loader and evaluates a replay event, so parsing, lists, macros, exceptions,
//! compilation, event-type indexing and evaluation are all on the path.

use std::path::Path;

use peregrine_engine::replay::JsonEvent;
use peregrine_engine::{Matching, RulesLoader};
use serde_yaml_ng::Value as Yaml;

/// The rule every plain case defines.
const RULE: &str = "t";

struct Case {
    group: String,
    condition: Option<String>,
    event: serde_json::Map<String, serde_json::Value>,
    expected: bool,
    prelude: String,
    rule: Option<String>,
}

fn load_cases(file: &str) -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let groups: Vec<Yaml> = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for g in groups {
        let group = g["group"].as_str().unwrap().to_string();
        let prelude = g
            .get("prelude")
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string();
        let rule = g.get("rule").and_then(Yaml::as_str).map(str::to_string);
        for c in g["cases"].as_sequence().unwrap() {
            let c = c.as_sequence().unwrap();
            let event: serde_json::Value = serde_json::to_value(&c[1]).unwrap();
            out.push(Case {
                group: group.clone(),
                condition: c[0].as_str().map(str::to_string),
                event: event.as_object().cloned().unwrap_or_default(),
                expected: c[2].as_bool().unwrap(),
                prelude: prelude.clone(),
                rule: rule.clone(),
            });
        }
    }
    out
}

/// Runs a file's cases and reports every failure at once.
fn run(file: &str) {
    let cases = load_cases(file);
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let (rules, name) = match (&case.rule, &case.condition) {
            (Some(rule), _) => (format!("{}\n{rule}", case.prelude), "with exceptions"),
            (None, Some(cond)) => (
                format!(
                    "{}\n- rule: {RULE}\n  desc: d\n  condition: {}\n  output: o %proc.name\n  priority: INFO\n",
                    case.prelude,
                    serde_json::to_string(cond).unwrap()
                ),
                RULE,
            ),
            (None, None) => panic!("a case needs a condition or a rule"),
        };
        let mut loader = RulesLoader::new();
        loader.add_str("case.yaml", &rules);
        let mut result = loader.load();
        let what = format!(
            "[{}] {:?} on {}",
            case.group,
            case.condition.as_deref().unwrap_or("(rule)"),
            serde_json::Value::Object(case.event.clone())
        );
        if result.has_errors() {
            failures.push(format!(
                "{what}: does not load:\n{}",
                result.render().join("\n")
            ));
            continue;
        }
        result.ruleset.matching = Matching::All;
        let event = JsonEvent::from_map(case.event.clone().into_iter().collect()).unwrap();
        let mut matched = Vec::new();
        result.ruleset.evaluate(&event, &mut matched);
        let got = matched.iter().any(|r| r.name == name);
        if got != case.expected {
            let condition = result
                .ruleset
                .rule(name)
                .map(|r| r.condition.clone())
                .unwrap_or_default();
            failures.push(format!(
                "{what}: expected {}, got {got} (compiled: {condition})",
                case.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn strings() {
    run("01_strings.yaml");
}

#[test]
fn types() {
    run("02_types.yaml");
}

#[test]
fn logic_ancestors_and_arguments() {
    run("03_logic.yaml");
}

#[test]
fn lists_and_macros() {
    run("04_lists_macros.yaml");
}

#[test]
fn exceptions_escapes_transformers() {
    run("05_exceptions_escapes.yaml");
}

#[test]
fn event_types() {
    run("06_event_types.yaml");
}

#[test]
fn the_suite_has_at_least_300_cases() {
    let n: usize = [
        "01_strings.yaml",
        "02_types.yaml",
        "03_logic.yaml",
        "04_lists_macros.yaml",
        "05_exceptions_escapes.yaml",
        "06_event_types.yaml",
    ]
    .iter()
    .map(|f| load_cases(f).len())
    .sum();
    assert!(n >= 300, "{n} cases");
}
