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

#[derive(Debug, Clone)]
pub struct CList {
    pub name: String,
    pub loc: Loc,
    pub items: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct CMacro {
    pub name: String,
    pub loc: Loc,
    /// Condition fragments: appends are joined with one space, as Falco concatenates text.
    pub condition: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct CRule {
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

#[derive(Default)]
pub struct Collected {
    pub lists: Vec<CList>,
    pub macros: Vec<CMacro>,
    pub rules: Vec<CRule>,
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
        let item = ItemRef {
            kind: "list",
            name: l.name.clone(),
        };
        let diag = |code, message: String| Diagnostic {
            code,
            loc: l.loc,
            item: Some(item.clone()),
            message,
        };
        if l.append && !l.overrides.is_empty() {
            diags.push(diag(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'items: append') under 'override' instead.".into()));
            return;
        }
        let mut op = None;
        for (key, o) in &l.overrides {
            if key != "items" {
                diags.push(diag(
                    Code::YamlValidate,
                    format!("Key '{key}' cannot be overridden in a list: only 'items' can"),
                ));
                return;
            }
            op = Some(o.clone());
        }
        if l.append {
            diags.push(diag(Code::DeprecatedItem, "The 'append' key is deprecated. Add an 'override' key with 'items: append' instead.".into()));
            op = Some(OverrideOp::Append);
        }
        let existing = self.list_index.get(&l.name).copied();
        match (op, existing) {
            (Some(OverrideOp::Append), Some(i)) => self.lists[i].items.extend(l.items),
            (Some(OverrideOp::Replace), Some(i)) => self.lists[i].items = l.items,
            (Some(o), None) => diags.push(diag(
                Code::Validate,
                format!(
                    "List has an {} but no list by that name already exists",
                    describe_op(&o, l.append)
                ),
            )),
            (None, Some(i)) => {
                self.lists[i].items = l.items;
                self.lists[i].loc = l.loc;
            }
            (None, None) => {
                self.list_index.insert(l.name.clone(), self.lists.len());
                self.lists.push(CList {
                    name: l.name,
                    loc: l.loc,
                    items: l.items,
                });
            }
        }
    }

    fn macro_item(&mut self, m: MacroItem, diags: &mut Vec<Diagnostic>) {
        let item = ItemRef {
            kind: "macro",
            name: m.name.clone(),
        };
        let diag = |code, message: String| Diagnostic {
            code,
            loc: m.loc,
            item: Some(item.clone()),
            message,
        };
        if m.append && !m.overrides.is_empty() {
            diags.push(diag(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.".into()));
            return;
        }
        let mut op = None;
        for (key, o) in &m.overrides {
            if key != "condition" {
                diags.push(diag(
                    Code::YamlValidate,
                    format!("Key '{key}' cannot be overridden in a macro: only 'condition' can"),
                ));
                return;
            }
            op = Some(o.clone());
        }
        if m.append {
            diags.push(diag(Code::DeprecatedItem, "The 'append' key is deprecated. Add an 'override' key with 'condition: append' instead.".into()));
            op = Some(OverrideOp::Append);
        }
        let condition = m.condition.expect("the reader requires a condition");
        let existing = self.macro_index.get(&m.name).copied();
        match (op, existing) {
            (Some(OverrideOp::Append), Some(i)) => self.macros[i].condition.push(condition),
            (Some(OverrideOp::Replace), Some(i)) => self.macros[i].condition = vec![condition],
            (Some(o), None) => diags.push(diag(
                Code::Validate,
                format!(
                    "Macro has an {} but no macro by that name already exists",
                    describe_op(&o, m.append)
                ),
            )),
            (None, Some(i)) => {
                self.macros[i].condition = vec![condition];
                self.macros[i].loc = m.loc;
            }
            (None, None) => {
                self.macro_index.insert(m.name.clone(), self.macros.len());
                self.macros.push(CMacro {
                    name: m.name,
                    loc: m.loc,
                    condition: vec![condition],
                });
            }
        }
    }

    fn rule(&mut self, r: RuleItem, diags: &mut Vec<Diagnostic>) {
        let item = ItemRef {
            kind: "rule",
            name: r.name.clone(),
        };
        let loc = r.loc;
        let diag = |code, message: String| Diagnostic {
            code,
            loc,
            item: Some(item.clone()),
            message,
        };
        let existing = self.rule_index.get(&r.name).copied();
        let present = present_keys(&r);

        if r.append && !r.overrides.is_empty() {
            diags.push(diag(Code::YamlValidate, "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.".into()));
            return;
        }

        if r.append {
            diags.push(diag(Code::DeprecatedItem, "The 'append' key is deprecated. Add an 'override' key with 'append' entries instead.".into()));
            let Some(i) = existing else {
                diags.push(diag(
                    Code::Validate,
                    "Rule has 'append' key but no rule by that name already exists".into(),
                ));
                return;
            };
            if r.condition.is_none() && r.exceptions.is_none() {
                diags.push(diag(
                    Code::YamlValidate,
                    "Appended rule must have exceptions or condition property".into(),
                ));
                return;
            }
            if let Some(c) = r.condition {
                self.rules[i].condition.push(c);
            }
            if let Some(e) = r.exceptions {
                append_exceptions(&mut self.rules[i], e, &item, diags);
            }
            return;
        }

        if !r.overrides.is_empty() {
            for key in &present {
                if !r.overrides.iter().any(|(k, _)| k == key) {
                    diags.push(diag(Code::YamlValidate, format!("Unexpected key '{key}': no corresponding entry under 'override' is defined.")));
                    return;
                }
            }
            for (key, op) in &r.overrides {
                let allowed = match op {
                    OverrideOp::Append => RULE_APPENDABLE,
                    OverrideOp::Replace => RULE_REPLACEABLE,
                };
                if !allowed.contains(&key.as_str()) {
                    let what = if *op == OverrideOp::Append {
                        "appended to"
                    } else {
                        "replaced"
                    };
                    diags.push(diag(
                        Code::YamlValidate,
                        format!("Key '{key}' cannot be {what}"),
                    ));
                    return;
                }
                if !present.contains(&key.as_str()) {
                    let what = if *op == OverrideOp::Append {
                        "An append"
                    } else {
                        "A replace"
                    };
                    diags.push(diag(
                        Code::YamlValidate,
                        format!(
                            "{what} override for '{key}' was specified but '{key}' is not defined"
                        ),
                    ));
                    return;
                }
            }
            let Some(i) = existing else {
                let op = &r.overrides[0].1;
                let what = if *op == OverrideOp::Append {
                    "an append"
                } else {
                    "a replace"
                };
                diags.push(diag(
                    Code::Validate,
                    format!("Rule has {what} override but no rule by that name already exists"),
                ));
                return;
            };
            let target = &mut self.rules[i];
            for (key, op) in r.overrides.clone() {
                let append = op == OverrideOp::Append;
                match key.as_str() {
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
                        if append {
                            append_exceptions(
                                target,
                                r.exceptions.clone().unwrap_or_default(),
                                &item,
                                diags,
                            );
                        } else {
                            target.exceptions = r.exceptions.clone().unwrap_or_default();
                        }
                    }
                    "priority" => target.priority = r.priority.expect("present"),
                    "enabled" => target.enabled = r.enabled.expect("present"),
                    "warn_evttypes" => target.warn_evttypes = r.warn_evttypes.expect("present"),
                    "skip-if-unknown-filter" => {
                        target.skip_if_unknown_filter = r.skip_if_unknown_filter.expect("present")
                    }
                    "capture" => target.capture = r.capture.expect("present"),
                    "capture_duration" => {
                        target.capture_duration = r.capture_duration.expect("present")
                    }
                    _ => unreachable!("checked against the allowed keys"),
                }
            }
            return;
        }

        let defines =
            r.condition.is_some() || r.output.is_some() || r.desc.is_some() || r.priority.is_some();
        if !defines {
            if let Some(enabled) = r.enabled {
                diags.push(diag(Code::DeprecatedItem, "Using only 'enabled' to toggle a rule is deprecated. Add an 'override' key with 'enabled: replace' instead.".into()));
                match existing {
                    Some(i) => self.rules[i].enabled = enabled,
                    None => diags.push(diag(
                        Code::Validate,
                        "Rule has 'enabled' key but no rule by that name already exists".into(),
                    )),
                }
                return;
            }
        }
        for (key, missing) in [
            ("condition", r.condition.is_none()),
            ("output", r.output.is_none()),
            ("desc", r.desc.is_none()),
            ("priority", r.priority.is_none()),
        ] {
            if missing {
                diags.push(diag(
                    Code::YamlValidate,
                    format!("Item has no mapping for key '{key}'"),
                ));
                return;
            }
        }
        for (key, text) in [
            ("condition", &r.condition),
            ("output", &r.output),
            ("desc", &r.desc),
        ] {
            if text.as_ref().is_some_and(|t| t.text.trim().is_empty()) {
                diags.push(diag(
                    Code::YamlValidate,
                    format!("Mapping for key '{key}' is empty"),
                ));
                return;
            }
        }
        let mut seen = BTreeSet::new();
        for e in r.exceptions.iter().flatten() {
            if !seen.insert(e.name.clone()) {
                diags.push(Diagnostic {
                    code: Code::ExceptionNameNotUnique,
                    loc: e.loc,
                    item: Some(item.clone()),
                    message: format!(
                        "Multiple definitions of exception '{}' in the same rule",
                        e.name
                    ),
                });
            }
        }
        let source_explicit = r.source.is_some();
        let source = r.source.clone().unwrap_or_else(|| "syscall".to_string());
        let rule = CRule {
            name: r.name.clone(),
            loc,
            desc: vec![r.desc.expect("checked")],
            condition: vec![r.condition.expect("checked")],
            output: vec![r.output.expect("checked")],
            priority: r.priority.expect("checked"),
            tags: r.tags.unwrap_or_default().into_iter().collect(),
            enabled: r.enabled.unwrap_or(true),
            source,
            source_explicit,
            exceptions: r.exceptions.unwrap_or_default(),
            warn_evttypes: r.warn_evttypes.unwrap_or(true),
            skip_if_unknown_filter: r.skip_if_unknown_filter.unwrap_or(false),
            capture: r.capture.unwrap_or(false),
            capture_duration: r.capture_duration.unwrap_or(0),
        };
        match existing {
            Some(i) => {
                if source_explicit && self.rules[i].source != rule.source {
                    diags.push(diag(
                        Code::Validate,
                        format!(
                            "Rule has been re-defined with a different source ('{}', was '{}')",
                            rule.source, self.rules[i].source
                        ),
                    ));
                    return;
                }
                self.rules[i] = rule;
            }
            None => {
                self.rule_index.insert(r.name, self.rules.len());
                self.rules.push(rule);
            }
        }
    }
}

fn describe_op(op: &OverrideOp, legacy: bool) -> &'static str {
    match (op, legacy) {
        (_, true) => "'append' key",
        (OverrideOp::Append, false) => "append override",
        (OverrideOp::Replace, false) => "replace override",
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
fn append_exceptions(
    rule: &mut CRule,
    new: Vec<Exception>,
    item: &ItemRef,
    diags: &mut Vec<Diagnostic>,
) {
    for e in new {
        if !e.has_values {
            diags.push(Diagnostic {
                code: Code::AppendNoValues,
                loc: e.loc,
                item: Some(item.clone()),
                message: format!("Overriding/appending exception '{}' with no values", e.name),
            });
        }
        match rule.exceptions.iter_mut().find(|x| x.name == e.name) {
            Some(existing) => {
                if e.fields.is_some() || e.comps.is_some() {
                    diags.push(Diagnostic {
                        code: Code::Validate,
                        loc: e.loc,
                        item: Some(item.clone()),
                        message: format!("Can not append exception fields or comps to existing exception '{}', only values", e.name),
                    });
                    continue;
                }
                existing.values.extend(e.values);
                existing.has_values |= e.has_values;
            }
            None => {
                if e.fields.is_none() {
                    diags.push(Diagnostic {
                        code: Code::Validate,
                        loc: e.loc,
                        item: Some(item.clone()),
                        message: format!("Rule exception new item '{}': must have fields property with a list of fields", e.name),
                    });
                    continue;
                }
                rule.exceptions.push(e);
            }
        }
    }
}
