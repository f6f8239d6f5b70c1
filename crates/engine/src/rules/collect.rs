//! Falco's collector: definitions, `append: true` and `override:` across files, in load order.
//!
//! Redefining an item replaces it but keeps its original position (evaluation follows definition
//! order). Appending to or replacing an item that does not exist yet is an error.

use std::collections::{BTreeSet, HashMap};

use crate::priority::Priority;

use super::diag::{Code, Diagnostic, ItemRef, Loc};
use super::reader::{
    Exception, Item, ListItem, MacroItem, OverrideOp, PluginRequirement, RuleItem, Text,
};

/// A list as collected across files (appends and overrides applied), before the builder expands
/// the list names among its items.
#[derive(Debug, Clone)]
pub struct CollectedList {
    pub name: String,
    pub loc: Loc,
    pub items: Vec<Text>,
}

/// A macro as collected across files: its condition text, not yet parsed or compiled.
#[derive(Debug, Clone)]
pub struct CollectedMacro {
    pub name: String,
    pub loc: Loc,
    /// Condition fragments: appends are joined with one space, as Falco concatenates text.
    pub condition: Vec<Text>,
}

/// A rule as collected across files, with Falco's defaults filled in; the builder compiles it
/// into a [`CompiledRule`](crate::ruleset::CompiledRule).
#[derive(Debug, Clone)]
pub struct CollectedRule {
    pub name: String,
    pub loc: Loc,
    pub desc: Vec<Text>,
    pub condition: Vec<Text>,
    pub output: Vec<Text>,
    pub priority: Priority,
    pub tags: BTreeSet<String>,
    pub enabled: bool,
    pub source: String,
    pub source_explicit: bool,
    pub exceptions: Vec<Exception>,
    pub warn_evttypes: bool,
    pub skip_if_unknown_filter: bool,
    pub capture: bool,
    pub capture_duration: u64,
}

/// Everything collected so far, in definition order.
#[derive(Default)]
pub struct Collected {
    pub lists: Vec<CollectedList>,
    pub macros: Vec<CollectedMacro>,
    pub rules: Vec<CollectedRule>,
    list_index: HashMap<String, usize>,
    macro_index: HashMap<String, usize>,
    rule_index: HashMap<String, usize>,
    pub engine_version: Option<((u64, u64, u64), Loc)>,
    pub plugins: Vec<PluginRequirement>,
}

const RULE_APPENDABLE: &[&str] = &["condition", "output", "desc", "tags", "exceptions"];
const RULE_REPLACEABLE: &[&str] = &[
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
];

impl Collected {
    pub fn add(&mut self, item: Item, diags: &mut Vec<Diagnostic>) {
        match item {
            Item::EngineVersion { version, loc } => {
                if self.engine_version.is_none_or(|(v, _)| version > v) {
                    self.engine_version = Some((version, loc));
                }
            }
            Item::PluginVersions(reqs) => self.plugins.extend(reqs),
            Item::List(l) => self.list(l, diags),
            Item::Macro(m) => self.macro_item(m, diags),
            Item::Rule(r) => self.rule(*r, diags),
        }
    }

    fn list(&mut self, l: ListItem, diags: &mut Vec<Diagnostic>) {
        let mut report = Report::new("list", &l.name, l.loc, diags);
        if l.append && !l.overrides.is_empty() {
            report.push(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'items: append') under 'override' instead.");
            return;
        }
        let mut op = None;
        for (key, o) in &l.overrides {
            if key != "items" {
                report.push(
                    Code::YamlValidate,
                    format!("Key '{key}' cannot be overridden in a list: only 'items' can"),
                );
                return;
            }
            op = Some(o.clone());
        }
        if l.append {
            report.push(Code::DeprecatedItem, "The 'append' key is deprecated. Add an 'override' key with 'items: append' instead.");
            op = Some(OverrideOp::Append);
        }
        let existing = self.list_index.get(&l.name).copied();
        match (op, existing) {
            (Some(OverrideOp::Append), Some(i)) => self.lists[i].items.extend(l.items),
            (Some(OverrideOp::Replace), Some(i)) => self.lists[i].items = l.items,
            (Some(o), None) => report.push(
                Code::Validate,
                format!(
                    "List has an {} but no list by that name already exists",
                    describe_op(&o, l.append)
                ),
            ),
            (None, Some(i)) => {
                self.lists[i].items = l.items;
                self.lists[i].loc = l.loc;
            }
            (None, None) => {
                self.list_index.insert(l.name.clone(), self.lists.len());
                self.lists.push(CollectedList {
                    name: l.name,
                    loc: l.loc,
                    items: l.items,
                });
            }
        }
    }

    fn macro_item(&mut self, m: MacroItem, diags: &mut Vec<Diagnostic>) {
        let mut report = Report::new("macro", &m.name, m.loc, diags);
        if m.append && !m.overrides.is_empty() {
            report.push(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.");
            return;
        }
        let mut op = None;
        for (key, o) in &m.overrides {
            if key != "condition" {
                report.push(
                    Code::YamlValidate,
                    format!("Key '{key}' cannot be overridden in a macro: only 'condition' can"),
                );
                return;
            }
            op = Some(o.clone());
        }
        if m.append {
            report.push(Code::DeprecatedItem, "The 'append' key is deprecated. Add an 'override' key with 'condition: append' instead.");
            op = Some(OverrideOp::Append);
        }
        let condition = m.condition.expect("the reader requires a condition");
        let existing = self.macro_index.get(&m.name).copied();
        match (op, existing) {
            (Some(OverrideOp::Append), Some(i)) => self.macros[i].condition.push(condition),
            (Some(OverrideOp::Replace), Some(i)) => self.macros[i].condition = vec![condition],
            (Some(o), None) => report.push(
                Code::Validate,
                format!(
                    "Macro has an {} but no macro by that name already exists",
                    describe_op(&o, m.append)
                ),
            ),
            (None, Some(i)) => {
                self.macros[i].condition = vec![condition];
                self.macros[i].loc = m.loc;
            }
            (None, None) => {
                self.macro_index.insert(m.name.clone(), self.macros.len());
                self.macros.push(CollectedMacro {
                    name: m.name,
                    loc: m.loc,
                    condition: vec![condition],
                });
            }
        }
    }

    /// A rule item does one of four things, told apart as Falco does: a legacy `append: true`,
    /// an `override:` of named keys, a deprecated `enabled`-only toggle, or a (re)definition.
    fn rule(&mut self, r: RuleItem, diags: &mut Vec<Diagnostic>) {
        let mut report = Report::new("rule", &r.name, r.loc, diags);
        let existing = self.rule_index.get(&r.name).copied();
        if r.append && !r.overrides.is_empty() {
            report.push(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.");
        } else if r.append {
            self.append_to_rule(r, existing, &mut report);
        } else if !r.overrides.is_empty() {
            self.override_rule(r, existing, &mut report);
        } else if let Some(enabled) = only_enabled(&r) {
            self.toggle_rule(enabled, existing, &mut report);
        } else {
            self.define_rule(r, existing, &mut report);
        }
    }

    /// `append: true` (deprecated): adds the item's condition and exceptions to an existing rule.
    fn append_to_rule(&mut self, r: RuleItem, existing: Option<usize>, report: &mut Report) {
        report.push(
            Code::DeprecatedItem,
            "The 'append' key is deprecated. Add an 'override' key with 'append' entries instead.",
        );
        let Some(i) = existing else {
            report.push(
                Code::Validate,
                "Rule has 'append' key but no rule by that name already exists",
            );
            return;
        };
        if r.condition.is_none() && r.exceptions.is_none() {
            report.push(
                Code::YamlValidate,
                "Appended rule must have exceptions or condition property",
            );
            return;
        }
        if let Some(c) = r.condition {
            self.rules[i].condition.push(c);
        }
        if let Some(e) = r.exceptions {
            append_exceptions(&mut self.rules[i], e, report);
        }
    }

    /// `override: {key: append|replace}`: checked whole before anything changes, so a bad
    /// override leaves the rule as it was.
    fn override_rule(&mut self, r: RuleItem, existing: Option<usize>, report: &mut Report) {
        if let Err(message) = check_overrides(&r) {
            report.push(Code::YamlValidate, message);
            return;
        }
        let Some(i) = existing else {
            let what = match r.overrides[0].1 {
                OverrideOp::Append => "an append",
                OverrideOp::Replace => "a replace",
            };
            report.push(
                Code::Validate,
                format!("Rule has {what} override but no rule by that name already exists"),
            );
            return;
        };
        for (key, op) in &r.overrides {
            apply_override(&mut self.rules[i], &r, key, op, report);
        }
    }

    /// `enabled` alone (deprecated): switches an existing rule on or off.
    fn toggle_rule(&mut self, enabled: bool, existing: Option<usize>, report: &mut Report) {
        report.push(Code::DeprecatedItem, "Using only 'enabled' to toggle a rule is deprecated. Add an 'override' key with 'enabled: replace' instead.");
        match existing {
            Some(i) => self.rules[i].enabled = enabled,
            None => report.push(
                Code::Validate,
                "Rule has 'enabled' key but no rule by that name already exists",
            ),
        }
    }

    /// A full definition: a new rule, or a replacement that keeps the old one's position.
    fn define_rule(&mut self, r: RuleItem, existing: Option<usize>, report: &mut Report) {
        if let Err(message) = check_definition(&r) {
            report.push(Code::YamlValidate, message);
            return;
        }
        report_duplicate_exceptions(&r, report);
        let rule = CollectedRule::defined(r);
        match existing {
            Some(i) => {
                if rule.source_explicit && self.rules[i].source != rule.source {
                    report.push(
                        Code::Validate,
                        format!(
                            "Rule has been re-defined with a different source ('{}', was '{}')",
                            rule.source, self.rules[i].source
                        ),
                    );
                    return;
                }
                self.rules[i] = rule;
            }
            None => {
                self.rule_index.insert(rule.name.clone(), self.rules.len());
                self.rules.push(rule);
            }
        }
    }
}

impl CollectedRule {
    /// A rule from a definition that passed [`check_definition`], with Falco's defaults for the
    /// keys it leaves out.
    fn defined(r: RuleItem) -> CollectedRule {
        CollectedRule {
            name: r.name,
            loc: r.loc,
            desc: vec![r.desc.expect("checked")],
            condition: vec![r.condition.expect("checked")],
            output: vec![r.output.expect("checked")],
            priority: r.priority.expect("checked"),
            tags: r.tags.unwrap_or_default().into_iter().collect(),
            enabled: r.enabled.unwrap_or(true),
            source_explicit: r.source.is_some(),
            source: r.source.unwrap_or_else(|| "syscall".to_string()),
            exceptions: r.exceptions.unwrap_or_default(),
            warn_evttypes: r.warn_evttypes.unwrap_or(true),
            skip_if_unknown_filter: r.skip_if_unknown_filter.unwrap_or(false),
            capture: r.capture.unwrap_or(false),
            capture_duration: r.capture_duration.unwrap_or(0),
        }
    }
}

/// Diagnostics about one item: they all name it, and point at its definition unless they say
/// otherwise (an exception points at itself).
struct Report<'a> {
    item: ItemRef,
    loc: Loc,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    fn new(kind: &'static str, name: &str, loc: Loc, diags: &'a mut Vec<Diagnostic>) -> Self {
        let item = ItemRef {
            kind,
            name: name.to_string(),
        };
        Report { item, loc, diags }
    }

    fn push(&mut self, code: Code, message: impl Into<String>) {
        self.push_at(self.loc, code, message);
    }

    fn push_at(&mut self, loc: Loc, code: Code, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            code,
            loc,
            item: Some(self.item.clone()),
            message: message.into(),
        });
    }
}

fn describe_op(op: &OverrideOp, legacy: bool) -> &'static str {
    match (op, legacy) {
        (_, true) => "'append' key",
        (OverrideOp::Append, false) => "append override",
        (OverrideOp::Replace, false) => "replace override",
    }
}

/// The value of `enabled` when it is all the item says about the rule (no condition, output,
/// desc or priority): Falco's deprecated way to switch a rule on or off.
fn only_enabled(r: &RuleItem) -> Option<bool> {
    let defines =
        r.condition.is_some() || r.output.is_some() || r.desc.is_some() || r.priority.is_some();
    r.enabled.filter(|_| !defines)
}

/// Falco's checks on `override:`, in its order: every key given has an override entry, every
/// entry may append or replace its key, and every entry's key is given.
fn check_overrides(r: &RuleItem) -> Result<(), String> {
    let present = present_keys(r);
    for key in &present {
        if !r.overrides.iter().any(|(k, _)| k == key) {
            return Err(format!(
                "Unexpected key '{key}': no corresponding entry under 'override' is defined."
            ));
        }
    }
    for (key, op) in &r.overrides {
        let (allowed, done, an_override) = match op {
            OverrideOp::Append => (RULE_APPENDABLE, "appended to", "An append"),
            OverrideOp::Replace => (RULE_REPLACEABLE, "replaced", "A replace"),
        };
        if !allowed.contains(&key.as_str()) {
            return Err(format!("Key '{key}' cannot be {done}"));
        }
        if !present.contains(&key.as_str()) {
            return Err(format!(
                "{an_override} override for '{key}' was specified but '{key}' is not defined"
            ));
        }
    }
    Ok(())
}

/// Applies one checked override entry: `key` of `r` appended to or replacing `target`'s.
fn apply_override(
    target: &mut CollectedRule,
    r: &RuleItem,
    key: &str,
    op: &OverrideOp,
    report: &mut Report,
) {
    let append = *op == OverrideOp::Append;
    match key {
        "condition" => apply_text(&mut target.condition, r.condition.clone(), append),
        "output" => apply_text(&mut target.output, r.output.clone(), append),
        "desc" => apply_text(&mut target.desc, r.desc.clone(), append),
        "tags" => {
            if !append {
                target.tags.clear();
            }
            target.tags.extend(r.tags.clone().unwrap_or_default());
        }
        "exceptions" => {
            let exceptions = r.exceptions.clone().unwrap_or_default();
            if append {
                append_exceptions(target, exceptions, report);
            } else {
                target.exceptions = exceptions;
            }
        }
        "priority" => target.priority = r.priority.expect("present"),
        "enabled" => target.enabled = r.enabled.expect("present"),
        "warn_evttypes" => target.warn_evttypes = r.warn_evttypes.expect("present"),
        "skip-if-unknown-filter" => {
            target.skip_if_unknown_filter = r.skip_if_unknown_filter.expect("present")
        }
        "capture" => target.capture = r.capture.expect("present"),
        "capture_duration" => target.capture_duration = r.capture_duration.expect("present"),
        _ => unreachable!("checked against the allowed keys"),
    }
}

/// A definition needs a non-empty condition, output and desc, and a priority; the first one
/// missing or empty is reported, as Falco stops at it.
fn check_definition(r: &RuleItem) -> Result<(), String> {
    for (key, missing) in [
        ("condition", r.condition.is_none()),
        ("output", r.output.is_none()),
        ("desc", r.desc.is_none()),
        ("priority", r.priority.is_none()),
    ] {
        if missing {
            return Err(format!("Item has no mapping for key '{key}'"));
        }
    }
    for (key, text) in [
        ("condition", &r.condition),
        ("output", &r.output),
        ("desc", &r.desc),
    ] {
        if text.as_ref().is_some_and(|t| t.text.trim().is_empty()) {
            return Err(format!("Mapping for key '{key}' is empty"));
        }
    }
    Ok(())
}

/// Two exceptions of one name in a definition: reported, but the rule is still defined.
fn report_duplicate_exceptions(r: &RuleItem, report: &mut Report) {
    let mut seen = BTreeSet::new();
    for e in r.exceptions.iter().flatten() {
        if !seen.insert(e.name.clone()) {
            report.push_at(
                e.loc,
                Code::ExceptionNameNotUnique,
                format!(
                    "Multiple definitions of exception '{}' in the same rule",
                    e.name
                ),
            );
        }
    }
}

/// Keys of a rule item that an override would change.
fn present_keys(r: &RuleItem) -> Vec<&'static str> {
    let mut keys = Vec::new();
    for (key, present) in [
        ("condition", r.condition.is_some()),
        ("output", r.output.is_some()),
        ("desc", r.desc.is_some()),
        ("priority", r.priority.is_some()),
        ("tags", r.tags.is_some()),
        ("exceptions", r.exceptions.is_some()),
        ("enabled", r.enabled.is_some()),
        ("warn_evttypes", r.warn_evttypes.is_some()),
        ("skip-if-unknown-filter", r.skip_if_unknown_filter.is_some()),
        ("capture", r.capture.is_some()),
        ("capture_duration", r.capture_duration.is_some()),
    ] {
        if present {
            keys.push(key);
        }
    }
    keys
}

fn apply_text(target: &mut Vec<Text>, text: Option<Text>, append: bool) {
    let text = text.expect("present");
    if append {
        target.push(text);
    } else {
        *target = vec![text];
    }
}

/// An exception with a known name gets only its values appended; a new one is added whole.
fn append_exceptions(rule: &mut CollectedRule, new: Vec<Exception>, report: &mut Report) {
    for e in new {
        if !e.has_values {
            report.push_at(
                e.loc,
                Code::AppendNoValues,
                format!("Overriding/appending exception '{}' with no values", e.name),
            );
        }
        match rule.exceptions.iter_mut().find(|x| x.name == e.name) {
            Some(existing) => {
                if e.fields.is_some() || e.comps.is_some() {
                    report.push_at(e.loc, Code::Validate, format!("Can not append exception fields or comps to existing exception '{}', only values", e.name));
                    continue;
                }
                existing.values.extend(e.values);
                existing.has_values |= e.has_values;
            }
            None => {
                if e.fields.is_none() {
                    report.push_at(e.loc, Code::Validate, format!("Rule exception new item '{}': must have fields property with a list of fields", e.name));
                    continue;
                }
                rule.exceptions.push(e);
            }
        }
    }
}
