//! Load errors and warnings, located in the rules files and printed like a compiler's.

use std::fmt;
use std::sync::Arc;

use crate::yaml::Pos;

/// A rules file as read.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    /// The text of a 1-based line.
    pub fn line(&self, line: u32) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)? as usize)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Falco's load-result codes, kept so users can search Falco's documentation for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    // errors
    FileRead,
    YamlParse,
    YamlValidate,
    CompileCondition,
    CompileOutput,
    Validate,
    // warnings
    UnknownSource,
    NoEvttype,
    UnknownFilter,
    UnusedMacro,
    UnusedList,
    UnknownItem,
    DeprecatedItem,
    AppendNoValues,
    ExceptionNameNotUnique,
    InvalidMacroName,
    InvalidListName,
    CompileConditionWarning,
    UnknownKey,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::FileRead => "LOAD_ERR_FILE_READ",
            Code::YamlParse => "LOAD_ERR_YAML_PARSE",
            Code::YamlValidate => "LOAD_ERR_YAML_VALIDATE",
            Code::CompileCondition => "LOAD_ERR_COMPILE_CONDITION",
            Code::CompileOutput => "LOAD_ERR_COMPILE_OUTPUT",
            Code::Validate => "LOAD_ERR_VALIDATE",
            Code::UnknownSource => "LOAD_UNKNOWN_SOURCE",
            Code::NoEvttype => "LOAD_NO_EVTTYPE",
            Code::UnknownFilter => "LOAD_UNKNOWN_FILTER",
            Code::UnusedMacro => "LOAD_UNUSED_MACRO",
            Code::UnusedList => "LOAD_UNUSED_LIST",
            Code::UnknownItem => "LOAD_UNKNOWN_ITEM",
            Code::DeprecatedItem => "LOAD_DEPRECATED_ITEM",
            Code::AppendNoValues => "LOAD_APPEND_NO_VALUES",
            Code::ExceptionNameNotUnique => "LOAD_EXCEPTION_NAME_NOT_UNIQUE",
            Code::InvalidMacroName => "LOAD_INVALID_MACRO_NAME",
            Code::InvalidListName => "LOAD_INVALID_LIST_NAME",
            Code::CompileConditionWarning => "LOAD_COMPILE_CONDITION",
            Code::UnknownKey => "LOAD_UNKNOWN_KEY",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::FileRead
            | Code::YamlParse
            | Code::YamlValidate
            | Code::CompileCondition
            | Code::CompileOutput
            | Code::Validate => Severity::Error,
            _ => Severity::Warning,
        }
    }
}

/// Where something is: a file (index into the loaded sources) and a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Loc {
    pub file: usize,
    pub pos: Pos,
}

/// The item a problem belongs to: `rule 'X'`, `macro 'y'`, `list 'z'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    pub kind: &'static str,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub loc: Loc,
    pub item: Option<ItemRef>,
    pub message: String,
}

impl Diagnostic {
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// `FILE:LINE:COL: error: rule 'X': MESSAGE`, the offending line and a caret.
    pub fn render(&self, sources: &[Arc<Source>]) -> String {
        let source = sources.get(self.loc.file);
        let name = source.map_or("<unknown>", |s| s.name.as_str());
        let level = match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!(
            "{name}:{}:{}: {level}: {self}",
            self.loc.pos.line, self.loc.pos.col
        );
        if let Some(line) = source.and_then(|s| s.line(self.loc.pos.line)) {
            let caret_at = (self.loc.pos.col.max(1) - 1) as usize;
            let pad: String = line
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n    {line}\n    {pad}^"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(item) = &self.item {
            write!(f, "{} '{}': ", item.kind, item.name)?;
        }
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}
