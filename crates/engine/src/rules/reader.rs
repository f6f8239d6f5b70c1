//! Reading one rules file: YAML documents into typed items, with Falco's shape checks.

use crate::priority::Priority;
use crate::yaml::{self, Kind, Node, Pos};

use super::diag::{Code, Diagnostic, ItemRef, Loc};

/// A piece of text from a file (a condition, an output), with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideOp {
    Append,
    Replace,
}

#[derive(Debug, Clone)]
pub struct ListItem {
    pub name: String,
    pub loc: Loc,
    pub items: Vec<Text>,
    pub append: bool,
    pub overrides: Vec<(String, OverrideOp)>,
}

#[derive(Debug, Clone)]
pub struct MacroItem {
    pub name: String,
    pub loc: Loc,
    pub condition: Option<Text>,
    pub append: bool,
    pub overrides: Vec<(String, OverrideOp)>,
}

/// One exception of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub name: String,
    pub loc: Loc,
    /// `fields: f` (single) or `fields: [f1, f2]` (list form).
    pub fields: Option<OneOrMany>,
    pub comps: Option<OneOrMany>,
    /// Each value: for the list form a tuple of elements; for the single form one element.
    pub values: Vec<Vec<ExcElem>>,
    pub values_loc: Loc,
    pub has_values: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An exception value element: a scalar, or a list (for `in`-like comparisons).
#[derive(Debug, Clone, PartialEq)]
pub enum ExcElem {
    Scalar(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub struct RuleItem {
    pub name: String,
    pub loc: Loc,
    pub desc: Option<Text>,
    pub condition: Option<Text>,
    pub output: Option<Text>,
    pub priority: Option<Priority>,
    pub tags: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub source: Option<String>,
    pub exceptions: Option<Vec<Exception>>,
    pub warn_evttypes: Option<bool>,
    pub skip_if_unknown_filter: Option<bool>,
    pub capture: Option<bool>,
    pub capture_duration: Option<u64>,
    pub append: bool,
    pub overrides: Vec<(String, OverrideOp)>,
}

/// A version requirement: `required_plugin_versions` entry.
#[derive(Debug, Clone)]
pub struct PluginRequirement {
    pub name: String,
    pub version: String,
    pub alternatives: Vec<(String, String)>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub enum Item {
    EngineVersion { version: (u64, u64, u64), loc: Loc },
    PluginVersions(Vec<PluginRequirement>),
    List(ListItem),
    Macro(MacroItem),
    Rule(Box<RuleItem>),
}

/// Reads a file's items. Problems go to `diags`; an item with an error is left out.
pub fn read(file: usize, text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Item> {
    let docs = match yaml::parse(text) {
        Ok(d) => d,
        Err(e) => {
            diags.push(Diagnostic {
                code: Code::YamlParse,
                loc: Loc { file, pos: e.pos },
                item: None,
                message: format!("invalid YAML: {}", e.message),
            });
            return Vec::new();
        }
    };
    let mut r = Reader {
        file,
        diags,
        items: Vec::new(),
    };
    for doc in &docs {
        if doc.is_null() {
            continue;
        }
        let Some(entries) = doc.as_seq() else {
            r.error(
                doc.pos,
                None,
                Code::YamlValidate,
                "Rules content is not yaml array of objects",
            );
            continue;
        };
        for entry in entries {
            if entry.is_null() {
                continue;
            }
            r.item(entry);
        }
    }
    r.items
}

struct Reader<'d> {
    file: usize,
    diags: &'d mut Vec<Diagnostic>,
    items: Vec<Item>,
}

const LIST_KEYS: &[&str] = &["list", "items", "append", "override"];
const MACRO_KEYS: &[&str] = &["macro", "condition", "append", "override"];
const EXCEPTION_KEYS: &[&str] = &["name", "fields", "comps", "values"];
const RULE_KEYS: &[&str] = &[
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "tags",
    "enabled",
    "source",
    "exceptions",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
    "append",
    "override",
];

impl Reader<'_> {
    fn loc(&self, pos: Pos) -> Loc {
        Loc {
            file: self.file,
            pos,
        }
    }

    fn error(&mut self, pos: Pos, item: Option<&ItemRef>, code: Code, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            code,
            loc: self.loc(pos),
            item: item.cloned(),
            message: message.into(),
        });
    }

    fn warn(&mut self, pos: Pos, item: Option<&ItemRef>, code: Code, message: impl Into<String>) {
        self.error(pos, item, code, message);
    }

    fn item(&mut self, entry: &Node) {
        if entry.as_map().is_none() {
            self.error(
                entry.pos,
                None,
                Code::YamlValidate,
                "Unexpected element type. Each element should be a yaml associative array.",
            );
            return;
        }
        if let Some(v) = entry.get("required_engine_version") {
            self.engine_version(v);
        } else if let Some(v) = entry.get("required_plugin_versions") {
            self.plugin_versions(v);
        } else if entry.get("list").is_some() {
            self.list(entry);
        } else if entry.get("macro").is_some() {
            self.macro_item(entry);
        } else if entry.get("rule").is_some() {
            self.rule(entry);
        } else {
            self.warn(entry.pos, None, Code::UnknownItem, "Unknown top level item");
        }
    }

    /// A required, non-empty scalar name.
    fn name(&mut self, entry: &Node, key: &'static str) -> Option<String> {
        let node = entry.get(key)?;
        match node.as_str() {
            Some(s) if !s.trim().is_empty() && !node.is_null() => Some(s.to_string()),
            Some(_) => {
                self.error(
                    node.pos,
                    None,
                    Code::YamlValidate,
                    format!("Mapping for key '{key}' is empty"),
                );
                None
            }
            None => {
                self.error(
                    node.pos,
                    None,
                    Code::YamlValidate,
                    format!(
                        "Can't decode YAML scalar value: '{key}' must be a string, not {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    fn unknown_keys(&mut self, entry: &Node, known: &[&str], item: &ItemRef) {
        for (k, _) in entry.as_map().unwrap_or(&[]) {
            let key = k.as_str().unwrap_or("");
            if !known.contains(&key) {
                self.warn(
                    k.pos,
                    Some(item),
                    Code::UnknownKey,
                    format!("Unknown key '{key}'. The key will be ignored."),
                );
            }
        }
    }

    fn bool_key(&mut self, entry: &Node, key: &str, item: &ItemRef) -> Result<Option<bool>, ()> {
        match entry.get(key) {
            None => Ok(None),
            Some(v) => match v.as_bool() {
                Some(b) => Ok(Some(b)),
                None => {
                    self.error(
                        v.pos,
                        Some(item),
                        Code::YamlValidate,
                        format!("Can't decode YAML scalar value: '{key}' must be true or false"),
                    );
                    Err(())
                }
            },
        }
    }

    fn text_key(&mut self, entry: &Node, key: &str, item: &ItemRef) -> Result<Option<Text>, ()> {
        match entry.get(key) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) if !v.is_null() || key != "condition" => Ok(Some(Text {
                    text: s.to_string(),
                    loc: self.loc(v.pos),
                })),
                _ => {
                    self.error(
                        v.pos,
                        Some(item),
                        Code::YamlValidate,
                        format!(
                            "Can't decode YAML scalar value: '{key}' must be a string, not {}",
                            v.describe()
                        ),
                    );
                    Err(())
                }
            },
        }
    }

    /// `override: {key: append|replace}`.
    fn overrides(&mut self, entry: &Node, item: &ItemRef) -> Result<Vec<(String, OverrideOp)>, ()> {
        let Some(node) = entry.get("override") else {
            return Ok(Vec::new());
        };
        let Some(map) = node.as_map() else {
            self.error(
                node.pos,
                Some(item),
                Code::YamlValidate,
                "'override' must be a mapping of keys to append or replace",
            );
            return Err(());
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let key = k.as_str().unwrap_or("").to_string();
            let op = match v.as_str() {
                Some("append") => OverrideOp::Append,
                Some("replace") => OverrideOp::Replace,
                _ => {
                    self.error(v.pos, Some(item), Code::YamlValidate, format!("Invalid override operation for key '{key}': must be 'append' or 'replace'"));
                    return Err(());
                }
            };
            out.push((key, op));
        }
        Ok(out)
    }

    fn engine_version(&mut self, v: &Node) {
        let text = v.as_str().unwrap_or("").trim().to_string();
        let version = if let Ok(n) = text.parse::<u64>() {
            Some((0, n, 0))
        } else {
            parse_semver(&text)
        };
        match version {
            Some(version) => self.items.push(Item::EngineVersion { version, loc: self.loc(v.pos) }),
            None => self.error(v.pos, None, Code::YamlValidate, format!("Value of required_engine_version must be a number or a semver string, got '{text}'")),
        }
    }

    fn plugin_versions(&mut self, v: &Node) {
        let Some(seq) = v.as_seq() else {
            self.error(
                v.pos,
                None,
                Code::YamlValidate,
                "Value of required_plugin_versions must be a sequence",
            );
            return;
        };
        let mut reqs = Vec::new();
        for req in seq {
            let (Some(name), Some(version)) = (
                req.get("name").and_then(Node::as_str),
                req.get("version").and_then(Node::as_str),
            ) else {
                self.error(
                    req.pos,
                    None,
                    Code::YamlValidate,
                    "required_plugin_versions entries need 'name' and 'version'",
                );
                return;
            };
            if parse_semver(version).is_none() {
                self.error(
                    req.pos,
                    None,
                    Code::YamlValidate,
                    format!("plugin '{name}' version '{version}' is not semver"),
                );
                return;
            }
            let mut alternatives = Vec::new();
            for alt in req
                .get("alternatives")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
            {
                let (Some(an), Some(av)) = (
                    alt.get("name").and_then(Node::as_str),
                    alt.get("version").and_then(Node::as_str),
                ) else {
                    self.error(
                        alt.pos,
                        None,
                        Code::YamlValidate,
                        "plugin alternatives need 'name' and 'version'",
                    );
                    return;
                };
                if an == name || alternatives.iter().any(|(n, _): &(String, String)| n == an) {
                    self.error(
                        alt.pos,
                        None,
                        Code::YamlValidate,
                        format!("plugin '{an}' is named twice among the alternatives"),
                    );
                    return;
                }
                alternatives.push((an.to_string(), av.to_string()));
            }
            reqs.push(PluginRequirement {
                name: name.to_string(),
                version: version.to_string(),
                alternatives,
                loc: self.loc(req.pos),
            });
        }
        self.items.push(Item::PluginVersions(reqs));
    }

    fn list(&mut self, entry: &Node) {
        let Some(name) = self.name(entry, "list") else {
            return;
        };
        let item = ItemRef {
            kind: "list",
            name: name.clone(),
        };
        self.unknown_keys(entry, LIST_KEYS, &item);
        let Ok(append) = self.bool_key(entry, "append", &item) else {
            return;
        };
        let Ok(overrides) = self.overrides(entry, &item) else {
            return;
        };
        let items_node = match entry.get("items") {
            Some(n) => n,
            None => {
                self.error(
                    entry.pos,
                    Some(&item),
                    Code::YamlValidate,
                    "Item has no mapping for key 'items'",
                );
                return;
            }
        };
        let items = if items_node.is_null() {
            Vec::new()
        } else {
            let Some(seq) = items_node.as_seq() else {
                self.error(
                    items_node.pos,
                    Some(&item),
                    Code::YamlValidate,
                    "Value is not a sequence",
                );
                return;
            };
            let mut items = Vec::with_capacity(seq.len());
            for i in seq {
                match &i.kind {
                    Kind::Scalar { text, .. } => items.push(Text {
                        text: text.clone(),
                        loc: self.loc(i.pos),
                    }),
                    _ => {
                        self.error(
                            i.pos,
                            Some(&item),
                            Code::YamlValidate,
                            "Can't decode YAML scalar value: list items must be scalars",
                        );
                        return;
                    }
                }
            }
            items
        };
        self.items.push(Item::List(ListItem {
            name,
            loc: self.loc(entry.pos),
            items,
            append: append.unwrap_or(false),
            overrides,
        }));
    }

    fn macro_item(&mut self, entry: &Node) {
        let Some(name) = self.name(entry, "macro") else {
            return;
        };
        let item = ItemRef {
            kind: "macro",
            name: name.clone(),
        };
        self.unknown_keys(entry, MACRO_KEYS, &item);
        let Ok(append) = self.bool_key(entry, "append", &item) else {
            return;
        };
        let Ok(overrides) = self.overrides(entry, &item) else {
            return;
        };
        let Ok(condition) = self.text_key(entry, "condition", &item) else {
            return;
        };
        if condition.is_none() {
            self.error(
                entry.pos,
                Some(&item),
                Code::YamlValidate,
                "Item has no mapping for key 'condition'",
            );
            return;
        }
        self.items.push(Item::Macro(MacroItem {
            name,
            loc: self.loc(entry.pos),
            condition,
            append: append.unwrap_or(false),
            overrides,
        }));
    }

    fn rule(&mut self, entry: &Node) {
        let Some(name) = self.name(entry, "rule") else {
            return;
        };
        let item = ItemRef {
            kind: "rule",
            name: name.clone(),
        };
        self.unknown_keys(entry, RULE_KEYS, &item);
        if let Ok(r) = self.rule_keys(entry, name, &item) {
            self.items.push(Item::Rule(Box::new(r)));
        }
    }

    /// A rule's keys, each checked for its type in this order; the first bad one is reported
    /// and leaves the rule out.
    fn rule_keys(&mut self, entry: &Node, name: String, item: &ItemRef) -> Result<RuleItem, ()> {
        let desc = self.text_key(entry, "desc", item)?;
        let condition = self.text_key(entry, "condition", item)?;
        let output = self.text_key(entry, "output", item)?.map(|t| Text {
            text: t.text.trim().to_string(),
            ..t
        });
        let enabled = self.bool_key(entry, "enabled", item)?;
        let warn_evttypes = self.bool_key(entry, "warn_evttypes", item)?;
        let skip_if_unknown_filter = self.bool_key(entry, "skip-if-unknown-filter", item)?;
        let capture = self.bool_key(entry, "capture", item)?;
        let append = self.bool_key(entry, "append", item)?.unwrap_or(false);
        let overrides = self.overrides(entry, item)?;
        let priority = self.priority_key(entry, item)?;
        let source = self.source_key(entry, item)?;
        let capture_duration = self.capture_duration_key(entry, item)?;
        let tags = self.tags_key(entry, item)?;
        let exceptions = match entry.get("exceptions") {
            None => None,
            Some(e) => Some(self.exceptions(e, item).ok_or(())?),
        };
        Ok(RuleItem {
            name,
            loc: self.loc(entry.pos),
            desc,
            condition,
            output,
            priority,
            tags,
            enabled,
            source,
            exceptions,
            warn_evttypes,
            skip_if_unknown_filter,
            capture,
            capture_duration,
            append,
            overrides,
        })
    }

    /// `priority:`, one of Falco's priority names.
    fn priority_key(&mut self, entry: &Node, item: &ItemRef) -> Result<Option<Priority>, ()> {
        let Some(p) = entry.get("priority") else {
            return Ok(None);
        };
        match p.as_str().map(str::parse::<Priority>) {
            Some(Ok(priority)) => Ok(Some(priority)),
            _ => {
                self.error(
                    p.pos,
                    Some(item),
                    Code::YamlValidate,
                    format!("Invalid priority '{}'", p.as_str().unwrap_or("")),
                );
                Err(())
            }
        }
    }

    /// `source:`, a non-empty string.
    fn source_key(&mut self, entry: &Node, item: &ItemRef) -> Result<Option<String>, ()> {
        let Some(s) = entry.get("source") else {
            return Ok(None);
        };
        match s.as_str() {
            Some(text) if !text.is_empty() => Ok(Some(text.to_string())),
            _ => {
                self.error(
                    s.pos,
                    Some(item),
                    Code::YamlValidate,
                    "'source' must be a non-empty string",
                );
                Err(())
            }
        }
    }

    /// `capture_duration:`, milliseconds.
    fn capture_duration_key(&mut self, entry: &Node, item: &ItemRef) -> Result<Option<u64>, ()> {
        let Some(d) = entry.get("capture_duration") else {
            return Ok(None);
        };
        match d.as_str().and_then(|t| t.parse::<u64>().ok()) {
            Some(n) => Ok(Some(n)),
            None => {
                self.error(
                    d.pos,
                    Some(item),
                    Code::YamlValidate,
                    "'capture_duration' must be a number of milliseconds",
                );
                Err(())
            }
        }
    }

    /// `tags:`, a sequence of strings; an empty `tags:` is no tags (which an override can set).
    fn tags_key(&mut self, entry: &Node, item: &ItemRef) -> Result<Option<Vec<String>>, ()> {
        let Some(t) = entry.get("tags") else {
            return Ok(None);
        };
        if t.is_null() {
            return Ok(Some(Vec::new()));
        }
        let Some(seq) = t.as_seq() else {
            self.error(
                t.pos,
                Some(item),
                Code::YamlValidate,
                "Value is not a sequence ('tags')",
            );
            return Err(());
        };
        let mut tags = Vec::new();
        for tag in seq {
            match tag.as_str() {
                Some(s) => tags.push(s.to_string()),
                None => {
                    self.error(
                        tag.pos,
                        Some(item),
                        Code::YamlValidate,
                        "Can't decode YAML scalar value: tags must be strings",
                    );
                    return Err(());
                }
            }
        }
        Ok(Some(tags))
    }

    /// `exceptions:`, a sequence of exceptions; `None` when one is malformed (reported).
    fn exceptions(&mut self, node: &Node, item: &ItemRef) -> Option<Vec<Exception>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Some(seq) = node.as_seq() else {
            self.error(
                node.pos,
                Some(item),
                Code::YamlValidate,
                "Value is not a sequence ('exceptions')",
            );
            return None;
        };
        seq.iter().map(|e| self.exception(e, item)).collect()
    }

    /// One exception: a name, then `fields`, `comps` and `values` as written (their meaning is
    /// checked when the rule is compiled, after overrides have added to them).
    fn exception(&mut self, e: &Node, item: &ItemRef) -> Option<Exception> {
        let Some(name) = e
            .get("name")
            .and_then(Node::as_str)
            .filter(|n| !n.is_empty())
        else {
            self.error(
                e.pos,
                Some(item),
                Code::YamlValidate,
                "Item has no mapping for key 'name' (exception)",
            );
            return None;
        };
        // Problems inside an exception name it along with its rule.
        let exc_item = ItemRef {
            kind: "rule",
            name: format!("{}' exception '{name}", item.name),
        };
        self.unknown_keys(e, EXCEPTION_KEYS, &exc_item);
        let fields = match e.get("fields") {
            None => None,
            Some(f) => Some(self.one_or_many(f, &exc_item, "fields")?),
        };
        let comps = match e.get("comps") {
            None => None,
            Some(c) => Some(self.one_or_many(c, &exc_item, "comps")?),
        };
        let values_node = e.get("values");
        let values = match values_node.filter(|v| !v.is_null()) {
            None => Vec::new(),
            Some(vn) => {
                let single_field = matches!(fields, Some(OneOrMany::One(_)));
                self.exception_values(vn, single_field, &exc_item)?
            }
        };
        Some(Exception {
            name: name.to_string(),
            loc: self.loc(e.pos),
            fields,
            comps,
            values,
            values_loc: self.loc(values_node.map_or(e.pos, |v| v.pos)),
            has_values: values_node.is_some_and(|v| !v.is_null()),
        })
    }

    /// An exception's `values`: each a scalar or a tuple of elements. With a single field a
    /// tuple is one list element (`fields: proc.name` with `values: [[a, b]]` is `in (a, b)`).
    fn exception_values(
        &mut self,
        node: &Node,
        single_field: bool,
        item: &ItemRef,
    ) -> Option<Vec<Vec<ExcElem>>> {
        let Some(seq) = node.as_seq() else {
            self.error(
                node.pos,
                Some(item),
                Code::YamlValidate,
                "Value is not a sequence ('values')",
            );
            return None;
        };
        let mut values = Vec::new();
        for v in seq {
            let tuple = match &v.kind {
                Kind::Scalar { text, .. } => vec![ExcElem::Scalar(text.clone())],
                Kind::Seq(elems) => {
                    let tuple = elems
                        .iter()
                        .map(|el| self.exception_elem(el, item))
                        .collect::<Option<Vec<_>>>()?;
                    if single_field {
                        vec![ExcElem::List(scalars(tuple))]
                    } else {
                        tuple
                    }
                }
                Kind::Map(_) => {
                    self.values_not_scalar(v.pos, item);
                    return None;
                }
            };
            values.push(tuple);
        }
        Some(values)
    }

    /// One element of a value tuple: a scalar, or a list of scalars for an `in`-like comp.
    fn exception_elem(&mut self, el: &Node, item: &ItemRef) -> Option<ExcElem> {
        match &el.kind {
            Kind::Scalar { text, .. } => Some(ExcElem::Scalar(text.clone())),
            Kind::Seq(inner) => Some(ExcElem::List(
                inner
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            )),
            Kind::Map(_) => {
                self.values_not_scalar(el.pos, item);
                None
            }
        }
    }

    fn values_not_scalar(&mut self, pos: Pos, item: &ItemRef) {
        self.error(
            pos,
            Some(item),
            Code::YamlValidate,
            "exception values must be scalars or lists",
        );
    }

    fn one_or_many(&mut self, node: &Node, item: &ItemRef, key: &str) -> Option<OneOrMany> {
        match &node.kind {
            Kind::Scalar { text, .. } => Some(OneOrMany::One(text.clone())),
            Kind::Seq(items) => {
                let mut v = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) => v.push(s.to_string()),
                        None => {
                            self.error(
                                i.pos,
                                Some(item),
                                Code::YamlValidate,
                                format!("'{key}' entries must be strings"),
                            );
                            return None;
                        }
                    }
                }
                Some(OneOrMany::Many(v))
            }
            Kind::Map(_) => {
                self.error(
                    node.pos,
                    Some(item),
                    Code::YamlValidate,
                    format!("'{key}' must be a string or a list of strings"),
                );
                None
            }
        }
    }
}

/// The scalars of a value tuple; nested lists are left out.
fn scalars(tuple: Vec<ExcElem>) -> Vec<String> {
    tuple
        .into_iter()
        .filter_map(|x| match x {
            ExcElem::Scalar(s) => Some(s),
            ExcElem::List(_) => None,
        })
        .collect()
}

/// `x.y.z` (a missing part is 0).
pub fn parse_semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}
