//! YAML documents that remember where every node came from.
//!
//! Rules-file errors must point at a line and column. serde_yaml is archived and only locates
//! syntax errors, so we build our own small tree from yaml-rust2's event parser, which reports a
//! marker with every event. yaml-rust2 is maintained, implements YAML 1.2, and its event API lets
//! us keep exactly what we need: scalars with their quoting style, sequences, mappings, positions.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        }
    }
}

/// A YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar and whether it was written plain (unquoted, so `true`, `12`, `~` keep their
    /// YAML meaning) or quoted/block (always a string).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Key order is kept: later duplicate keys win when looked up, as most YAML loaders do.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for `~`, `null`, an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A YAML 1.2 boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping (the last one if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// What kind of node this is, for messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses every document of `text`.
///
/// Falco reads rules with yaml-cpp, which accepts a flow collection whose continuation lines
/// (typically the closing `]`) are indented less than YAML 1.2 requires; Falco's own sandbox
/// rules file has such lists. yaml-rust2 follows the specification, so when it reports an
/// indentation error we indent that line like the line before it and parse again. Only leading
/// spaces are added, so every line number stays right (columns on a re-indented line shift).
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut text = std::borrow::Cow::Borrowed(text);
    // Each round fixes one line; a file needing more than this is not a yaml-cpp quirk.
    for _ in 0..256 {
        match parse_strict(&text) {
            Err(e) if e.message.starts_with("invalid indentation") => {
                match reindent(&text, e.pos.line) {
                    Some(fixed) => text = std::borrow::Cow::Owned(fixed),
                    None => return Err(e),
                }
            }
            other => return other,
        }
    }
    parse_strict(&text)
}

/// Indents 1-based `line` to match the previous non-blank line, if that adds indentation.
fn reindent(text: &str, line: u32) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let idx = (line as usize).checked_sub(1)?;
    let target = lines.get(idx)?;
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let previous = lines[..idx].iter().rev().find(|l| !l.trim().is_empty())?;
    let want = indent_of(previous);
    let have = indent_of(target);
    if want <= have {
        return None;
    }
    let mut out = String::with_capacity(text.len() + want - have);
    for (i, l) in lines.iter().enumerate() {
        if i == idx {
            out.push_str(&" ".repeat(want - have));
        }
        out.push_str(l);
    }
    Some(out)
}

fn parse_strict(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        pos: Pos::from_marker(e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            pos: builder.error_pos,
            message,
        });
    }
    Ok(builder.documents)
}

#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    /// Open collections: the node being built and, for mappings, a pending key.
    stack: Vec<(Node, Option<Node>)>,
    anchors: HashMap<usize, Node>,
    /// Anchor ids of the open collections, to register them when they close.
    anchor_ids: Vec<usize>,
    error: Option<String>,
    error_pos: Pos,
}

impl Builder {
    fn insert(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some((parent, pending_key)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                Kind::Scalar { .. } => unreachable!("scalars are never open"),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(&mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    pos,
                    kind: Kind::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.insert(node);
            }
            Event::SequenceStart(anchor, _) => {
                self.anchor_ids.push(anchor);
                self.stack.push((
                    Node {
                        pos,
                        kind: Kind::Seq(Vec::new()),
                    },
                    None,
                ));
            }
            Event::MappingStart(anchor, _) => {
                self.anchor_ids.push(anchor);
                self.stack.push((
                    Node {
                        pos,
                        kind: Kind::Map(Vec::new()),
                    },
                    None,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (mut node, _) = self.stack.pop().expect("balanced events");
                // A block mapping's start marker sits oddly (after its first key); the first key
                // is where a reader looks for the item.
                if let Kind::Map(entries) = &node.kind {
                    if let Some((key, _)) = entries.first() {
                        node.pos = node.pos.min(key.pos);
                    }
                }
                let anchor = self.anchor_ids.pop().unwrap_or(0);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.insert(node);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = Node {
                        pos,
                        ..node.clone()
                    };
                    self.insert(node);
                }
                None => {
                    if self.error.is_none() {
                        self.error = Some("unknown alias".to_string());
                        self.error_pos = pos;
                    }
                }
            },
            Event::DocumentEnd => {
                // An empty document produces no node; keep documents aligned with the source.
            }
            Event::DocumentStart | Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_styles_and_documents() {
        let text =
            "- list: a\n  items: [x, \"y\"]\n---\n- macro: m\n  condition: >\n    proc.name = x\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 2);
        let first = &docs[0].as_seq().unwrap()[0];
        assert_eq!(first.pos, Pos { line: 1, col: 3 });
        let items = first.get("items").unwrap().as_seq().unwrap();
        assert_eq!(
            items[0].kind,
            Kind::Scalar {
                text: "x".into(),
                plain: true
            }
        );
        assert_eq!(
            items[1].kind,
            Kind::Scalar {
                text: "y".into(),
                plain: false
            }
        );
        assert_eq!(items[1].pos, Pos { line: 2, col: 14 });
        let cond = docs[1].as_seq().unwrap()[0].get("condition").unwrap();
        assert_eq!(cond.as_str(), Some("proc.name = x\n"));
    }

    #[test]
    fn accepts_yaml_cpp_flow_indentation() {
        let text = "- list: a\n  items: [\n    x,\n    y\n  ]\n\n- list: b\n  items: [z]\n";
        let docs = parse(text).unwrap();
        let seq = docs[0].as_seq().unwrap();
        assert_eq!(seq[0].get("items").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(seq[1].pos.line, 7);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("- rule: a\n  desc: [unclosed\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        assert!(!e.message.is_empty());
    }

    #[test]
    fn scalars_know_their_yaml_meaning() {
        let docs = parse("a: true\nb: 'true'\nc: ~\nd:\n").unwrap();
        let m = &docs[0];
        assert_eq!(m.get("a").unwrap().as_bool(), Some(true));
        assert_eq!(m.get("b").unwrap().as_bool(), None);
        assert!(m.get("c").unwrap().is_null());
        assert!(m.get("d").unwrap().is_null());
    }
}
