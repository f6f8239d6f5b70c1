//! Loading rules files: Falco's own files unchanged, Falco's append/override semantics, and
//! errors a user can act on, each at its file, line and column.

use std::path::PathBuf;

use peregrine_engine::rules::diag::Severity;
use peregrine_engine::{LoadResult, RulesLoader};

fn anchors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/falco-rules")
}

fn load_files(names: &[&str]) -> LoadResult {
    let mut loader = RulesLoader::new();
    for n in names {
        loader.add_file(&anchors().join(n));
    }
    loader.load()
}

fn load_text(text: &str) -> LoadResult {
    let mut loader = RulesLoader::new();
    loader.add_str("case.yaml", text);
    loader.load()
}

fn rendered(r: &LoadResult) -> String {
    r.render().join("\n")
}

#[test]
fn falcos_stable_rules_load_unchanged() {
    let r = load_files(&["falco_rules.yaml"]);
    assert!(r.diagnostics.is_empty(), "{}", rendered(&r));
    assert_eq!(
        (r.counts.rules, r.counts.macros, r.counts.lists),
        (25, 87, 49)
    );
    assert_eq!(r.ruleset.rules().len(), 25);
    assert!(r.ruleset.rules().iter().all(|rule| rule.enabled));
}

#[test]
fn stable_and_incubating_load_together() {
    let r = load_files(&["falco_rules.yaml", "falco-incubating_rules.yaml"]);
    assert!(r.diagnostics.is_empty(), "{}", rendered(&r));
    assert_eq!(r.counts.rules, 25 + 31);
}

#[test]
fn all_three_files_load_in_order() {
    let r = load_files(&[
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]);
    assert!(r.diagnostics.is_empty(), "{}", rendered(&r));
    assert_eq!(r.counts.rules, 25 + 31 + 37);
    // The sandbox disables 12 of its rules.
    assert_eq!(
        r.ruleset
            .rules()
            .iter()
            .filter(|rule| !rule.enabled)
            .count(),
        12
    );
}

#[test]
fn stable_rules_are_indexed_by_the_event_types_falco_derives() {
    let r = load_files(&["falco_rules.yaml"]);
    let types = |name: &str| r.ruleset.rule(name).unwrap().event_types.names();
    assert_eq!(
        types("Read sensitive file untrusted"),
        vec!["open", "openat", "openat2"]
    );
    assert_eq!(types("Run shell untrusted"), vec!["execve", "execveat"]);
    assert_eq!(
        types("Create Symlink Over Sensitive Files"),
        vec!["symlink", "symlinkat"]
    );
    assert_eq!(
        types("Disallowed SSH Connection Non Standard Port"),
        vec!["connect", "sendmsg", "sendto"]
    );
    assert_eq!(
        types("Redirect STDOUT/STDIN to Network Connection in Container"),
        vec!["dup", "dup2", "dup3"]
    );
    let union = r.ruleset.event_types().names();
    assert_eq!(union.len(), 19, "{union:?}");
}

#[test]
fn the_stable_file_defines_tags_sorted_and_the_container_fields_are_appended() {
    let r = load_files(&["falco_rules.yaml"]);
    let rule = r.ruleset.rule("Read sensitive file untrusted").unwrap();
    let mut sorted = rule.tags.clone();
    sorted.sort();
    assert_eq!(rule.tags, sorted);
    let names: Vec<&str> = rule.output.field_names().collect();
    for f in [
        "container.id",
        "container.name",
        "container.image.repository",
        "container.image.tag",
        "k8s.pod.name",
        "k8s.ns.name",
    ] {
        assert!(names.contains(&f), "{f} missing from {names:?}");
    }
}

#[test]
fn expanded_conditions_print_canonically() {
    let r = load_text(
        r#"
- list: shells
  items: [bash, sh]
- list: shells
  items: [pwsh]
  override:
    items: append
- macro: spawned
  condition: evt.type = execve
- macro: spawned
  condition: and proc.name exists
  override:
    condition: append
- rule: shell
  desc: d
  condition: spawned and proc.name in (shells, "my shell")
  output: o
  priority: NOTICE
  exceptions:
    - name: known
      fields: [proc.pname, proc.cwd]
      values: [[sshd, /root], [cron, "/var/spool x"]]
"#,
    );
    assert!(!r.has_errors(), "{}", rendered(&r));
    assert_eq!(
        r.ruleset.rule("shell").unwrap().condition,
        // libsinsp keeps a parenthesised group (and a substituted macro) as its own node, and
        // Falco rewrites exceptions as `(C) and not (E)`.
        r#"(((evt.type = execve and proc.name exists) and proc.name in (bash, sh, pwsh, "my shell")) and not ((proc.pname = sshd and proc.cwd = /root) or (proc.pname = cron and proc.cwd = "/var/spool x")))"#
    );
}

#[test]
fn rule_overrides_replace_and_append_each_key() {
    let r = load_text(
        r#"
- rule: r
  desc: first
  condition: proc.name = a
  output: out %proc.name
  priority: WARNING
  tags: [b, a]
- rule: r
  condition: or proc.name = b
  output: "and more"
  tags: [c]
  override:
    condition: append
    output: append
    tags: append
- rule: r
  priority: CRITICAL
  enabled: false
  override:
    priority: replace
    enabled: replace
"#,
    );
    assert!(!r.has_errors(), "{}", rendered(&r));
    let rule = r.ruleset.rule("r").unwrap();
    assert_eq!(rule.condition, "(proc.name = a or proc.name = b)");
    assert_eq!(rule.tags, vec!["a", "b", "c"]);
    assert_eq!(rule.priority.as_str(), "Critical");
    assert!(!rule.enabled);
}

#[test]
fn redefinition_replaces_but_keeps_the_position() {
    let r = load_text(
        r#"
- rule: first
  desc: d
  condition: proc.name = a
  output: o
  priority: INFO
- rule: second
  desc: d
  condition: proc.name = b
  output: o
  priority: INFO
- rule: first
  desc: d
  condition: proc.name = c
  output: o
  priority: INFO
"#,
    );
    let names: Vec<&str> = r.ruleset.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["first", "second"]);
    assert_eq!(r.ruleset.rule("first").unwrap().condition, "proc.name = c");
}

/// Each case: rules text, the expected `LINE:COL: error|warning:` and a message fragment.
const PROBLEMS: &[(&str, &str, &str)] = &[
    ("- rule: a\n  desc: [unclosed\n", "3:1: error:", "invalid YAML"),
    ("rule: a\n", "1:1: error:", "Rules content is not yaml array of objects"),
    ("- just a string\n", "1:3: error:", "Each element should be a yaml associative array"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: URGENT\n", "5:13: error:", "rule 'r': Invalid priority 'URGENT'"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a and not my_macro\n  output: o\n  priority: INFO\n", "3:36: error:", "Undefined macro 'my_macro' used in filter"),
    ("- rule: r\n  desc: d\n  condition: proc.name in my_list\n  output: o\n  priority: INFO\n", "3:27: error:", "Undefined list 'my_list' used in filter"),
    ("- rule: r\n  desc: d\n  condition: proc.nme = a\n  output: o\n  priority: INFO\n", "3:14: error:", "filter_check called with nonexistent field proc.nme"),
    ("- rule: r\n  desc: d\n  condition: proc.name startwith a\n  output: o\n  priority: INFO\n", "3:24: error:", "unknown operator 'startwith'"),
    ("- rule: r\n  desc: d\n  condition: (proc.name = a\n  output: o\n  priority: INFO\n", "3:14: error:", "unbalanced parentheses"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a)\n  output: o\n  priority: INFO\n", "3:27: error:", "unbalanced parentheses"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.name, fd.name]\n      comps: [=]\n      values: [[a, b]]\n", "7:7: error:", "fields and comps lists must have equal length"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: INFO\n  exceptions:\n    - name: e\n      fields: [proc.name, fd.name]\n      values: [[a]]\n", "7:7: error:", "value 1 has 1 elements but there are 2 fields"),
    ("- list: l\n  items: [a]\n  override:\n    items: append\n", "1:3: error:", "no list by that name already exists"),
    ("- macro: m\n  condition: or x\n  override:\n    condition: append\n", "1:3: error:", "no macro by that name already exists"),
    ("- rule: r\n  condition: or x\n  override:\n    condition: append\n", "1:3: error:", "no rule by that name already exists"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a\n  output: file=%fd.nme\n  priority: INFO\n", "4:16: error:", "unknown output field '%fd.nme'"),
    ("- required_engine_version: 0.99.0\n", "1:28: error:", "Rules require engine version 0.99.0, but engine version is 0.62.0"),
    ("- required_plugin_versions:\n    - name: k8saudit\n      version: 0.1.0\n", "2:7: error:", "Plugin 'k8saudit' is required but is not available"),
    ("- rule: r\n  desc: d\n  condition: proc.tty = abc\n  output: o\n  priority: INFO\n", "3:25: error:", "'abc' is not a number"),
    ("- rule: r\n  desc: d\n  condition: evt.type = opne\n  output: o\n  priority: INFO\n", "3:25: error:", "unknown event type 'opne'"),
    ("- rule: r\n  desc: d\n  condition: proc.tty contains 1\n  output: o\n  priority: INFO\n", "3:14: error:", "'contains' operator not supported for numeric filters"),
    ("- rule: r\n  desc: d\n  condition: fd.types = file\n  output: o\n  priority: INFO\n", "3:14: error:", "'=' operator not supported list filters"),
    ("- rule: r\n  desc: d\n  output: o\n  priority: INFO\n", "1:3: error:", "Item has no mapping for key 'condition'"),
    ("- list: unused_one\n  items: [a]\n", "1:3: warning:", "list 'unused_one': List not referred to by any other rule/macro"),
    ("- macro: unused_m\n  condition: proc.name = a\n", "1:3: warning:", "macro 'unused_m': Macro not referred to"),
    ("- list: l\n  items: [a]\n  colour: blue\n- macro: m\n  condition: proc.name in (l)\n- rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n", "3:3: warning:", "Unknown key 'colour'. The key will be ignored."),
    ("- list: l\n  items: [a]\n- list: l\n  items: [b]\n  append: true\n- rule: r\n  desc: d\n  condition: proc.name in (l)\n  output: o\n  priority: INFO\n", "3:3: warning:", "The 'append' key is deprecated"),
    ("- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: INFO\n  source: k8s_audit\n", "1:3: warning:", "Unknown source k8s_audit, skipping"),
];

#[test]
fn every_problem_is_located_and_named() {
    let mut failures = Vec::new();
    for (text, at, message) in PROBLEMS {
        let r = load_text(text);
        let lines = r.render();
        let found = lines
            .iter()
            .any(|l| l.starts_with(&format!("case.yaml:{at}")) && l.contains(message));
        if !found {
            failures.push(format!(
                "expected 'case.yaml:{at} ... {message}' for:\n{text}\ngot:\n{}\n",
                lines.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_show_the_line_and_a_caret() {
    let r = load_text("- rule: r\n  desc: d\n  condition: proc.name = a and bogus_macro\n  output: o\n  priority: INFO\n");
    let text = r.render().join("\n");
    assert_eq!(
        text,
        "case.yaml:3:32: error: rule 'r': Undefined macro 'bogus_macro' used in filter. (LOAD_ERR_COMPILE_CONDITION)\n      condition: proc.name = a and bogus_macro\n                                   ^"
    );
}

#[test]
fn errors_inside_folded_conditions_point_at_the_right_line() {
    let r = load_text(
        "- rule: r\n  desc: d\n  condition: >\n    proc.name = a\n    and fd.name = b\n    and proc.nmae = c\n  output: o\n  priority: INFO\n",
    );
    let first = r.render().remove(0);
    assert!(
        first.starts_with(
            "case.yaml:6:9: error: rule 'r': filter_check called with nonexistent field proc.nmae"
        ),
        "{first}"
    );
}

#[test]
fn skip_if_unknown_filter_demotes_to_a_warning() {
    let r = load_text("- rule: r\n  desc: d\n  condition: proc.future_field = a\n  output: o\n  priority: INFO\n  skip-if-unknown-filter: true\n");
    assert!(!r.has_errors(), "{}", rendered(&r));
    assert_eq!(r.warnings().count(), 1);
    assert!(r.ruleset.rule("r").is_none());
    assert!(r
        .diagnostics
        .iter()
        .all(|d| d.severity() == Severity::Warning));
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let mut loader = RulesLoader::new();
    loader.add_file(&PathBuf::from("/nonexistent/rules.yaml"));
    let r = loader.load();
    assert!(rendered(&r).contains("/nonexistent/rules.yaml:1:1: error: cannot read the file"));
}

#[test]
fn lists_and_macros_with_short_names_load() {
    let r = load_text(
        "- list: ab\n  items: [cat, dog]\n- macro: m\n  condition: proc.name in (ab)\n- rule: short names\n  desc: d\n  condition: evt.type = open and m and proc.pname in (ab)\n  output: \"%proc.name\"\n  priority: WARNING\n",
    );
    assert!(r.diagnostics.is_empty(), "{}", rendered(&r));
    assert_eq!((r.counts.rules, r.counts.macros, r.counts.lists), (1, 1, 1));
}

#[test]
fn the_rules_make_run_loads_are_the_ones_the_tests_use() {
    let shipped =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/rules/falco_rules.yaml");
    assert!(
        std::fs::read(shipped).unwrap() == std::fs::read(anchors().join("falco_rules.yaml")).unwrap(),
        "config/rules/falco_rules.yaml and tests/data/falco-rules/falco_rules.yaml must be the same file"
    );
}
