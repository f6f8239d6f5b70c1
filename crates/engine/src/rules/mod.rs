//! Loading Falco rules files: read every file, collect (append/override in load order), then
//! compile once, as Falco's result is the compilation of everything collected.

pub mod collect;
pub mod diag;
mod exceptions;
pub mod reader;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::compile::{self, CompileError, CompiledMacro, Compiler};
use crate::filter::{self, Expr, Rhs, Span, Value};
use crate::output::{self, OutputFormat};
use crate::ruleset::{CompiledRule, Ruleset};

use collect::{Collected, CollectedMacro, CollectedRule};
use diag::{Code, Diagnostic, ItemRef, Loc, Severity, Source};
use reader::Text;

/// The rules-engine version Peregrine reports (Falco's engine numbering; major 0).
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 62, 0);

/// The version of the natively provided `container` plugin fields.
pub const CONTAINER_PLUGIN_VERSION: (u64, u64, u64) = (0, 6, 0);

/// Event sources this engine evaluates.
pub const SOURCES: &[&str] = &["syscall"];

/// Counts of what was loaded (after redefinitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub rules: usize,
    pub macros: usize,
    pub lists: usize,
}

/// The result of loading: the ruleset (whatever compiled), every diagnostic, and the sources
/// they point into.
pub struct LoadResult {
    pub sources: Vec<Arc<Source>>,
    pub diagnostics: Vec<Diagnostic>,
    pub ruleset: Ruleset,
    pub counts: Counts,
}

impl LoadResult {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Every diagnostic rendered for a terminal, errors first.
    pub fn render(&self) -> Vec<String> {
        let mut d: Vec<&Diagnostic> = self.diagnostics.iter().collect();
        d.sort_by_key(|d| (d.severity(), d.loc));
        d.iter().map(|d| d.render(&self.sources)).collect()
    }
}

/// Collects rules files in order, then compiles them together.
#[derive(Default)]
pub struct RulesLoader {
    sources: Vec<Arc<Source>>,
    collected: Collected,
    diagnostics: Vec<Diagnostic>,
}

impl RulesLoader {
    pub fn new() -> Self {
        RulesLoader::default()
    }

    /// Reads and collects a file. A file that cannot be read is an error diagnostic.
    pub fn add_file(&mut self, path: &Path) {
        match std::fs::read_to_string(path) {
            Ok(text) => self.add_str(&path.display().to_string(), &text),
            Err(e) => {
                let file = self.sources.len();
                self.sources.push(Arc::new(Source {
                    name: path.display().to_string(),
                    text: String::new(),
                }));
                self.diagnostics.push(Diagnostic {
                    code: Code::FileRead,
                    loc: Loc {
                        file,
                        pos: crate::yaml::Pos { line: 1, col: 1 },
                    },
                    item: None,
                    message: format!("cannot read the file: {e}"),
                });
            }
        }
    }

    /// Collects rules text under a name (used in diagnostics).
    pub fn add_str(&mut self, name: &str, text: &str) {
        let file = self.sources.len();
        self.sources.push(Arc::new(Source {
            name: name.to_string(),
            text: text.to_string(),
        }));
        let items = reader::read(file, text, &mut self.diagnostics);
        for item in items {
            self.collected.add(item, &mut self.diagnostics);
        }
    }

    /// Compiles everything collected.
    pub fn load(self) -> LoadResult {
        let RulesLoader {
            sources,
            collected,
            mut diagnostics,
        } = self;
        let mut b = Builder {
            sources: &sources,
            diags: &mut diagnostics,
            used_lists: HashSet::new(),
            failed_macros: HashSet::new(),
        };
        b.check_versions(&collected);
        let lists = b.lists(&collected);
        let mut compiler = Compiler::new();
        for m in &collected.macros {
            b.macro_item(m, &lists, &mut compiler);
        }
        let mut rules = Vec::new();
        for r in &collected.rules {
            if let Some(rule) = b.rule(r, &lists, &mut compiler) {
                rules.push(rule);
            }
        }
        b.unused(&collected, &compiler);
        let counts = Counts {
            rules: collected.rules.len(),
            macros: collected.macros.len(),
            lists: collected.lists.len(),
        };
        LoadResult {
            sources,
            diagnostics,
            ruleset: Ruleset::new(rules),
            counts,
        }
    }
}

/// A condition assembled from fragments (appends are joined with one space).
struct Assembled {
    text: String,
    /// Start offset of each fragment in `text`.
    starts: Vec<usize>,
}

fn assemble(frags: &[Text]) -> Assembled {
    let mut text = String::new();
    let mut starts = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        starts.push(text.len());
        text.push_str(&f.text);
    }
    Assembled { text, starts }
}

struct Builder<'a> {
    sources: &'a [Arc<Source>],
    diags: &'a mut Vec<Diagnostic>,
    used_lists: HashSet<String>,
    /// Macros that did not compile: an "unused" warning on them would only be noise.
    failed_macros: HashSet<String>,
}

impl Builder<'_> {
    fn push(&mut self, code: Code, loc: Loc, item: ItemRef, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            code,
            loc,
            item: Some(item),
            message: message.into(),
        });
    }

    /// Maps a span of an assembled condition back to a file position: the fragment holding it,
    /// then the n-th occurrence of the offending token in the source after the fragment's start
    /// (YAML folding changes whitespace, never the token itself).
    fn locate(&self, frags: &[Text], asm: &Assembled, span: Span) -> Loc {
        let k = asm
            .starts
            .iter()
            .rposition(|&s| s <= span.start)
            .unwrap_or(0);
        let frag = &frags[k];
        let offset = span.start - asm.starts[k];
        // A lexer error can point inside a multi-byte character; widen to whole characters.
        let start = floor_boundary(&asm.text, span.start);
        let end = ceil_boundary(&asm.text, span.end.max(span.start));
        let token: String = asm.text[start..end]
            .split(char::is_whitespace)
            .next()
            .unwrap_or("")
            .to_string();
        let Some(source) = self.sources.get(frag.loc.file) else {
            return frag.loc;
        };
        if token.is_empty() {
            return frag.loc;
        }
        let nth = frag.text[..floor_boundary(&frag.text, offset)]
            .matches(token.as_str())
            .count();
        // Byte offset of the fragment's start in the file.
        let mut start = 0usize;
        for (i, line) in source.text.split_inclusive('\n').enumerate() {
            if i + 1 == frag.loc.pos.line as usize {
                start += (frag.loc.pos.col as usize)
                    .saturating_sub(1)
                    .min(line.len());
                break;
            }
            start += line.len();
        }
        let Some(found) = source.text[start.min(source.text.len())..]
            .match_indices(token.as_str())
            .nth(nth)
            .map(|(i, _)| start + i)
        else {
            return frag.loc;
        };
        let before = &source.text[..found];
        let line = before.matches('\n').count() as u32 + 1;
        let col = (found - before.rfind('\n').map_or(0, |p| p + 1)) as u32 + 1;
        Loc {
            file: frag.loc.file,
            pos: crate::yaml::Pos { line, col },
        }
    }

    fn check_versions(&mut self, c: &Collected) {
        if let Some((required, loc)) = c.engine_version {
            let ok = required.0 == ENGINE_VERSION.0 && required <= ENGINE_VERSION;
            if !ok {
                self.diags.push(Diagnostic {
                    code: Code::Validate,
                    loc,
                    item: None,
                    message: format!(
                        "Rules require engine version {}.{}.{}, but engine version is {}.{}.{}",
                        required.0,
                        required.1,
                        required.2,
                        ENGINE_VERSION.0,
                        ENGINE_VERSION.1,
                        ENGINE_VERSION.2
                    ),
                });
            }
        }
        for req in &c.plugins {
            let candidates = std::iter::once((req.name.as_str(), req.version.as_str())).chain(
                req.alternatives
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str())),
            );
            let mut problem = None;
            let mut satisfied = false;
            for (name, version) in candidates {
                if name != "container" {
                    problem.get_or_insert_with(|| format!("Plugin '{name}' is required but is not available (Peregrine provides 'container' natively)"));
                    continue;
                }
                let v = reader::parse_semver(version).unwrap_or((u64::MAX, 0, 0));
                if v.0 == CONTAINER_PLUGIN_VERSION.0 && v <= CONTAINER_PLUGIN_VERSION {
                    satisfied = true;
                    break;
                }
                problem = Some(format!(
                    "Plugin 'container' version {version} is required, the built-in provider is {}.{}.{}",
                    CONTAINER_PLUGIN_VERSION.0, CONTAINER_PLUGIN_VERSION.1, CONTAINER_PLUGIN_VERSION.2
                ));
            }
            if !satisfied {
                self.diags.push(Diagnostic {
                    code: Code::Validate,
                    loc: req.loc,
                    item: None,
                    message: problem.unwrap_or_default(),
                });
            }
        }
    }

    /// Lists with their items expanded: an item naming a list defined earlier is replaced by
    /// that list's items.
    fn lists(&mut self, c: &Collected) -> HashMap<String, Vec<String>> {
        let mut done: HashMap<String, Vec<String>> = HashMap::new();
        for l in &c.lists {
            if !is_identifier(&l.name) {
                self.push(
                    Code::InvalidListName,
                    l.loc,
                    ItemRef {
                        kind: "list",
                        name: l.name.clone(),
                    },
                    "List name is invalid: it should match [a-zA-Z]+[a-zA-Z0-9_]*",
                );
            }
            let mut items = Vec::new();
            for item in &l.items {
                match done.get(&item.text) {
                    Some(earlier) => {
                        self.used_lists.insert(item.text.clone());
                        items.extend(earlier.iter().cloned());
                    }
                    None => items.push(item.text.clone()),
                }
            }
            done.insert(l.name.clone(), items);
        }
        done
    }

    /// Parses a condition and substitutes lists, reporting problems at the item.
    fn parse_condition(
        &mut self,
        frags: &[Text],
        lists: &HashMap<String, Vec<String>>,
        item: &ItemRef,
        loc: Loc,
    ) -> Option<(Expr, Assembled)> {
        let asm = assemble(frags);
        let mut expr = match filter::parse(&asm.text) {
            Ok(e) => e,
            Err(e) => {
                let at = self.locate(frags, &asm, e.span);
                self.push(Code::CompileCondition, at, item.clone(), e.message);
                return None;
            }
        };
        if let Err(e) = expand_lists(&mut expr, lists, &mut self.used_lists) {
            let at = self.locate(frags, &asm, e.span);
            self.push(Code::CompileCondition, at, item.clone(), e.message);
            return None;
        }
        let _ = loc;
        Some((expr, asm))
    }

    fn macro_item(
        &mut self,
        m: &CollectedMacro,
        lists: &HashMap<String, Vec<String>>,
        compiler: &mut Compiler,
    ) {
        let item = ItemRef {
            kind: "macro",
            name: m.name.clone(),
        };
        if !is_identifier(&m.name) {
            self.push(
                Code::InvalidMacroName,
                m.loc,
                item.clone(),
                "Macro name is invalid: it should match [a-zA-Z]+[a-zA-Z0-9_]*",
            );
        }
        let Some((expr, asm)) = self.parse_condition(&m.condition, lists, &item, m.loc) else {
            self.failed_macros.insert(m.name.clone());
            return;
        };
        compiler.warnings.clear();
        match compiler.compile(&expr) {
            Ok(compiled) => {
                self.deprecations(compiler, &m.condition, &asm, &item);
                compiler.add_macro(&m.name, compiled);
            }
            Err(e) => {
                self.failed_macros.insert(m.name.clone());
                let at = self.locate(&m.condition, &asm, e.span);
                self.push(Code::CompileCondition, at, item, e.message);
            }
        }
    }

    fn deprecations(
        &mut self,
        compiler: &mut Compiler,
        frags: &[Text],
        asm: &Assembled,
        item: &ItemRef,
    ) {
        for (span, message) in std::mem::take(&mut compiler.warnings) {
            let at = self.locate(frags, asm, span);
            self.push(Code::DeprecatedItem, at, item.clone(), message);
        }
    }

    /// Compiles one rule: its condition with the exceptions folded in, then its output. `None`
    /// when it cannot run here (another source) or did not compile; the reason is reported.
    fn rule(
        &mut self,
        r: &CollectedRule,
        lists: &HashMap<String, Vec<String>>,
        compiler: &mut Compiler,
    ) -> Option<CompiledRule> {
        let item = ItemRef {
            kind: "rule",
            name: r.name.clone(),
        };
        if !SOURCES.contains(&r.source.as_str()) {
            self.push(
                Code::UnknownSource,
                r.loc,
                item,
                format!("Unknown source {}, skipping", r.source),
            );
            return None;
        }
        let (expr, asm) = self.parse_condition(&r.condition, lists, &item, r.loc)?;
        let expr = self.with_exceptions(expr, r, lists, &item)?;
        let compiled = self.compile_condition(&expr, &asm, r, compiler, &item)?;
        let output = self.compile_output(r, &item)?;
        let event_types = compile::event_types(&compiled.node);
        if r.warn_evttypes && event_types.len() > 100 {
            self.push(Code::NoEvttype, r.loc, item, format!(
                "Rule matches too many evt.type values ({}). This has a significant performance penalty.",
                event_types.len()
            ));
        }
        Some(CompiledRule {
            name: r.name.clone(),
            description: assemble(&r.desc).text,
            priority: r.priority,
            source: r.source.clone(),
            tags: r.tags.iter().cloned().collect(),
            enabled: r.enabled,
            condition: compiled.expanded.to_string(),
            filter: compiled.node,
            output,
            event_types,
        })
    }

    /// The condition as Falco rewrites it for exceptions: `(C) and not (E1) and not (E2) ...`,
    /// lists substituted in each exception as in the condition.
    fn with_exceptions(
        &mut self,
        expr: Expr,
        r: &CollectedRule,
        lists: &HashMap<String, Vec<String>>,
        item: &ItemRef,
    ) -> Option<Expr> {
        if r.exceptions.is_empty() {
            return Some(expr);
        }
        let extra = match exceptions::build(&r.exceptions) {
            Ok(extra) => extra,
            Err((loc, message)) => {
                self.push(Code::Validate, loc, item.clone(), message);
                return None;
            }
        };
        if extra.is_empty() {
            return Some(expr);
        }
        let mut all = vec![expr];
        for mut e in extra {
            if let Err(err) = expand_lists(&mut e, lists, &mut self.used_lists) {
                let message = format!("exception: {}", err.message);
                self.push(Code::Validate, r.loc, item.clone(), message);
                return None;
            }
            all.push(Expr::Not(Box::new(e)));
        }
        Some(Expr::And(all))
    }

    /// Compiles a rule's condition. An error on a synthetic exception node (outside the
    /// condition text) points at the rule itself.
    fn compile_condition(
        &mut self,
        expr: &Expr,
        asm: &Assembled,
        r: &CollectedRule,
        compiler: &mut Compiler,
        item: &ItemRef,
    ) -> Option<CompiledMacro> {
        compiler.warnings.clear();
        match compiler.compile(expr) {
            Ok(compiled) => {
                self.deprecations(compiler, &r.condition, asm, item);
                Some(compiled)
            }
            Err(e) => {
                let unknown = e
                    .message
                    .starts_with("filter_check called with nonexistent field")
                    || e.message.starts_with("unknown event type");
                let at = if e.span.end <= asm.text.len() {
                    self.locate(&r.condition, asm, e.span)
                } else {
                    r.loc
                };
                self.compile_failed(r, at, item, Code::CompileCondition, e.message, unknown);
                None
            }
        }
    }

    /// Compiles a rule's output with the container fields appended, as Falco does.
    fn compile_output(&mut self, r: &CollectedRule, item: &ItemRef) -> Option<OutputFormat> {
        let out = assemble(&r.output);
        let full_output = format!("{} {}", out.text, output::suggested_suffix());
        match output::compile(&full_output) {
            Ok(c) => {
                if c.dropped_container_info {
                    self.push(Code::DeprecatedItem, r.output[0].loc, item.clone(), "%container.info is deprecated and was removed from the output (container fields are appended to every output)");
                }
                Some(c.format)
            }
            Err(e) => {
                let span = Span::new(
                    e.offset.min(out.text.len()),
                    (e.offset + 1).min(out.text.len()),
                );
                let at = self.locate(&r.output, &out, span);
                let unknown = e.message.starts_with("unknown output field");
                self.compile_failed(r, at, item, Code::CompileOutput, e.message, unknown);
                None
            }
        }
    }

    /// Reports a rule that did not compile: as `code`, or as a mere warning when the problem is
    /// an unknown field or event type and the rule says `skip-if-unknown-filter`.
    fn compile_failed(
        &mut self,
        r: &CollectedRule,
        at: Loc,
        item: &ItemRef,
        code: Code,
        message: String,
        unknown: bool,
    ) {
        if unknown && r.skip_if_unknown_filter {
            let message = format!("{message} (skipping the rule: skip-if-unknown-filter is set)");
            self.push(Code::UnknownFilter, at, item.clone(), message);
        } else {
            self.push(code, at, item.clone(), message);
        }
    }

    fn unused(&mut self, c: &Collected, compiler: &Compiler) {
        for l in &c.lists {
            if !self.used_lists.contains(&l.name) {
                self.push(
                    Code::UnusedList,
                    l.loc,
                    ItemRef {
                        kind: "list",
                        name: l.name.clone(),
                    },
                    "List not referred to by any other rule/macro",
                );
            }
        }
        for m in &c.macros {
            if !compiler.used_macros.contains(&m.name) && !self.failed_macros.contains(&m.name) {
                self.push(
                    Code::UnusedMacro,
                    m.loc,
                    ItemRef {
                        kind: "macro",
                        name: m.name.clone(),
                    },
                    "Macro not referred to by any other rule/macro",
                );
            }
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Substitutes list names the way Falco's textual substitution does: an unquoted value in a
/// value list that names a list becomes that list's items (each read as Falco would read the
/// substituted text: items with a space are quoted, quoted items are unescaped).
fn expand_lists(
    expr: &mut Expr,
    lists: &HashMap<String, Vec<String>>,
    used: &mut HashSet<String>,
) -> Result<(), CompileError> {
    match expr {
        Expr::And(c) | Expr::Or(c) => c.iter_mut().try_for_each(|e| expand_lists(e, lists, used)),
        Expr::Not(inner) => expand_lists(inner, lists, used),
        Expr::Macro(_) => Ok(()),
        Expr::Check(check) => match &mut check.rhs {
            Rhs::ListName(ident) => match lists.get(&ident.name) {
                Some(items) => {
                    used.insert(ident.name.clone());
                    check.rhs = Rhs::List(list_values(items, ident.span)?);
                    Ok(())
                }
                None => Err(CompileError {
                    span: ident.span,
                    message: format!("Undefined list '{}' used in filter.", ident.name),
                }),
            },
            Rhs::List(values) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values.drain(..) {
                    match lists.get(&v.text).filter(|_| !v.quoted) {
                        Some(items) => {
                            used.insert(v.text.clone());
                            out.extend(list_values(items, v.span)?);
                        }
                        None => out.push(v),
                    }
                }
                *values = out;
                Ok(())
            }
            Rhs::Value(v) if !v.quoted && lists.contains_key(&v.text) => {
                used.insert(v.text.clone());
                let items = list_values(&lists[&v.text], v.span)?;
                match <[Value; 1]>::try_from(items) {
                    Ok([one]) => {
                        *v = one;
                        Ok(())
                    }
                    Err(_) => Err(CompileError {
                        span: v.span,
                        message: format!(
                            "list '{}' is used where a single value is expected",
                            v.text
                        ),
                    }),
                }
            }
            _ => Ok(()),
        },
    }
}

/// A list's items as values, read like Falco's substituted text.
fn list_values(items: &[String], span: Span) -> Result<Vec<Value>, CompileError> {
    let mut out = Vec::new();
    for item in items {
        let text = if item.contains(' ') && !item.starts_with(['"', '\'']) {
            format!("\"{item}\"")
        } else {
            item.clone()
        };
        if text.is_empty() {
            continue;
        }
        let values = filter::parse_list_items(&text).map_err(|e| CompileError {
            span,
            message: format!("list item '{item}': {}", e.message),
        })?;
        out.extend(values.into_iter().map(|v| Value { span, ..v }));
    }
    Ok(out)
}

/// The largest character boundary of `s` at or before `i` (clamped to its length).
fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary of `s` at or after `i` (clamped to its length).
fn ceil_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}
