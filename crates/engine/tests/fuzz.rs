//! Property tests: no input makes the condition parser or the rules loader panic, and every
//! condition the parser accepts prints in a canonical form that parses back to itself.
//! Bounded case counts keep this inside `make test`.

use peregrine_engine::filter;
use peregrine_engine::replay::JsonEvent;
use peregrine_engine::{Matching, RulesLoader};
use proptest::prelude::*;

/// Tokens of the condition language, so generated text often gets deep into the parser.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("proc.name".to_string()),
        Just("fd.name".to_string()),
        Just("proc.aname[2]".to_string()),
        Just("evt.arg.flags".to_string()),
        Just("evt.type".to_string()),
        Just("user.uid".to_string()),
        Just("and".to_string()),
        Just("or".to_string()),
        Just("not".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("!=".to_string()),
        Just("<=".to_string()),
        Just("in".to_string()),
        Just("contains".to_string()),
        Just("glob".to_string()),
        Just("pmatch".to_string()),
        Just("exists".to_string()),
        Just("tolower(".to_string()),
        Just("val(".to_string()),
        Just("\"a b\\\"c\"".to_string()),
        Just("'x\\'y'".to_string()),
        Just("\"\\x4".to_string()),
        Just("bash".to_string()),
        Just("-1".to_string()),
        Just("0x1f".to_string()),
        Just("my_macro".to_string()),
        "[a-z_./*?\\[\\]0-9-]{1,8}",
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (token(), prop_oneof![Just(" "), Just(""), Just("\n")]),
        0..24,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(t, sep)| format!("{t}{sep}"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_any_text(text in "\\PC{0,80}") {
        let _ = filter::parse(&text);
    }

    #[test]
    fn accepted_conditions_round_trip_through_their_canonical_form(text in condition()) {
        if let Ok(expr) = filter::parse(&text) {
            let canonical = expr.to_string();
            let again = filter::parse(&canonical).unwrap_or_else(|e| panic!("{text:?} printed as {canonical:?}, which does not parse: {e:?}"));
            prop_assert_eq!(again.to_string(), canonical);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_loader_never_panics_on_generated_rules(cond in condition(), prio in "[A-Za-z]{0,10}", extra in "\\PC{0,40}") {
        let text = format!(
            "- list: l\n  items: [a, \"b c\"]\n- macro: m\n  condition: {cond:?}\n- rule: r\n  desc: d\n  condition: m and {cond:?}\n  output: out %proc.name {extra:?}\n  priority: {prio}\n  exceptions:\n    - name: e\n      fields: [proc.name]\n      values: [[l]]\n"
        );
        let mut loader = RulesLoader::new();
        loader.add_str("gen.yaml", &text);
        let result = loader.load();
        let _ = result.render();
    }

    #[test]
    fn the_loader_never_panics_on_a_damaged_falco_file(cuts in prop::collection::vec((0usize..63_000, "\\PC{0,3}"), 1..4)) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/falco-rules/falco_rules.yaml");
        let mut text = std::fs::read_to_string(path).unwrap();
        for (at, insert) in cuts {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + insert.len()).min(text.len());
            let mut end = end;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(at..end, &insert);
        }
        let mut loader = RulesLoader::new();
        loader.add_str("damaged.yaml", &text);
        let result = loader.load();
        let _ = result.render();
    }

    #[test]
    fn evaluation_never_panics_on_odd_events(
        values in prop::collection::vec(prop_oneof![
            Just(serde_json::json!(null)),
            Just(serde_json::json!(-1)),
            Just(serde_json::json!("")),
            Just(serde_json::json!(["a", 1, true])),
            Just(serde_json::json!(true)),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
        ], 12),
        evt_type in prop_oneof![Just("execve"), Just("openat"), Just("connect"), Just("ptrace"), Just("nope")],
    ) {
        use std::sync::OnceLock;
        static RULES: OnceLock<peregrine_engine::Ruleset> = OnceLock::new();
        let rules = RULES.get_or_init(|| {
            let mut loader = RulesLoader::new();
            for f in ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"] {
                loader.add_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/falco-rules").join(f));
            }
            let mut r = loader.load();
            // Evaluating nothing never panics: the three files must really be there.
            assert!(r.ruleset.rules().len() > 80, "the rules files did not load: {:?}", r.render());
            r.ruleset.matching = Matching::All;
            r.ruleset
        });
        let keys = ["proc.name", "proc.cmdline", "fd.name", "proc.aname", "user.uid", "proc.tty", "fd.sip", "evt.arg.flags", "proc.args", "fd.directory", "container.id", "evt.buffer"];
        let mut map: std::collections::HashMap<String, serde_json::Value> = keys.iter().map(|k| k.to_string()).zip(values).collect();
        map.insert("evt.type".into(), serde_json::json!(evt_type));
        let event = JsonEvent::from_map(map).unwrap();
        let mut out = Vec::new();
        rules.evaluate(&event, &mut out);
        for rule in out {
            let _ = rule.alert(&event, "h").to_json_bytes();
        }
    }
}

/// Found by the fuzzer: a lexer error right after a backslash, before a three-byte character,
/// pointed into the middle of that character and the loader panicked while locating it.
#[test]
fn an_error_inside_a_multibyte_character_is_located_without_panicking() {
    let text = "- rule: r\n  desc: d\n  condition: (proc.name=containerd and fd.name startswith \"/var/lib/contai\\⑇𝔚pshotter\" or fd.name startswith \"/var\n  output: o\n  priority: WARNING\n";
    let mut loader = RulesLoader::new();
    loader.add_str("damaged.yaml", text);
    let result = loader.load();
    let rendered = result.render().join("\n");
    assert!(rendered.contains("damaged.yaml:3:"), "{rendered}");
}
