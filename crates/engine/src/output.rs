//! Output format strings: `%field` and `%field[arg]` substitution as Falco's formatter does, and
//! the typed `output_fields` of the JSON alert.

use serde_json::Value as Json;

use crate::eval::{Event, Extracted, Val};
use crate::fields::{self, FieldArg, ResolvedField};
use crate::time::EventTime;

/// The fields Falco's container plugin marks "suggested": appended to every rule's output.
pub const SUGGESTED: [(&str, &str); 6] = [
    ("container_id", "container.id"),
    ("container_name", "container.name"),
    ("container_image_repository", "container.image.repository"),
    ("container_image_tag", "container.image.tag"),
    ("k8s_pod_name", "k8s.pod.name"),
    ("k8s_ns_name", "k8s.ns.name"),
];

/// The text appended to every rule output.
pub fn suggested_suffix() -> String {
    SUGGESTED
        .iter()
        .map(|(label, field)| format!("{label}=%{field}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Field { index: usize, width: Option<usize> },
}

/// A compiled output format.
#[derive(Debug, Clone)]
pub struct OutputFormat {
    segments: Vec<Segment>,
    /// Each distinct field expression (as written) and its resolved field, in order of use.
    fields: Vec<(String, ResolvedField)>,
}

/// A problem in a format string: the byte offset of the `%` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub offset: usize,
    pub message: String,
}

/// Whether `%container.info` was found and dropped (a deprecation Falco warns about).
#[derive(Debug)]
pub struct Compiled {
    pub format: OutputFormat,
    pub dropped_container_info: bool,
}

pub fn compile(text: &str) -> Result<Compiled, FormatError> {
    let mut format = FormatBuilder::default();
    let mut dropped_container_info = false;
    let mut i = 0;
    while i < text.len() {
        if text.as_bytes()[i] != b'%' {
            let next = text[i..].find('%').map_or(text.len(), |p| i + p);
            format.literal(&text[i..next]);
            i = next;
            continue;
        }
        let (directive, end) = directive(text, i)?;
        match directive {
            Directive::ContainerInfo => dropped_container_info = true,
            Directive::Field {
                expr,
                resolved,
                width,
            } => format.field(expr, resolved, width),
        }
        i = end;
    }
    Ok(Compiled {
        format: format.finish(),
        dropped_container_info,
    })
}

/// What one `%` in a format string stands for.
enum Directive {
    /// `%container.info`: removed from Falco's outputs (container fields are appended to every
    /// rule's output now), so it is dropped.
    ContainerInfo,
    /// `%[width]field`: the field as written (`proc.aname[2]`) and resolved.
    Field {
        expr: String,
        resolved: ResolvedField,
        width: Option<usize>,
    },
}

/// Reads the directive whose `%` is at `at`: what it is and where it ends.
fn directive(text: &str, at: usize) -> Result<(Directive, usize), FormatError> {
    let bytes = text.as_bytes();
    let width_start = at + 1;
    let name_start = width_start
        + bytes[width_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let width = text[width_start..name_start].parse::<usize>().ok();
    if text[name_start..].starts_with("container.info")
        && !bytes
            .get(name_start + 14)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return Ok((Directive::ContainerInfo, name_start + 14));
    }
    let end = name_start
        + bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
            .count();
    let Some((resolved, stop)) = longest_field(text, name_start, end) else {
        let message = if name_start == end {
            "'%' is not followed by a field name (write %% for a literal %?)".to_string()
        } else {
            format!("unknown output field '%{}'", &text[name_start..end])
        };
        return Err(FormatError {
            offset: at,
            message,
        });
    };
    let expr = text[name_start..stop].to_string();
    if resolved.info().filter_only {
        return Err(FormatError {
            offset: at,
            message: format!("field '{expr}' can only be used in conditions, not in outputs"),
        });
    }
    let field = Directive::Field {
        expr,
        resolved,
        width,
    };
    Ok((field, stop))
}

/// The longest prefix of the name in `text[start..end]` that is a known field, with its
/// `[arg]` if one follows, and where the reference stops: in `%proc.name.` or `%fd.name.x` the
/// field is `proc.name` or `fd.name` and the rest is text.
fn longest_field(text: &str, start: usize, end: usize) -> Option<(ResolvedField, usize)> {
    let bytes = text.as_bytes();
    let mut cut = end;
    while cut > start {
        let candidate = &text[start..cut];
        let has_arg = bytes.get(cut) == Some(&b'[');
        let arg_end = if has_arg {
            text[cut..].find(']').map(|p| cut + p)
        } else {
            None
        };
        let arg = arg_end.map(|e| &text[cut + 1..e]);
        if let Ok(resolved) = fields::resolve(candidate, arg) {
            return Some((resolved, arg_end.map_or(cut, |e| e + 1)));
        }
        if has_arg {
            if let Ok(resolved) = fields::resolve(candidate, None) {
                return Some((resolved, cut));
            }
        }
        cut -= 1;
        while cut > start && bytes[cut - 1] == b'.' {
            cut -= 1;
        }
    }
    None
}

/// A format as it is read: literal text is gathered until a field ends it, and each distinct
/// field expression is resolved once however often it is used.
#[derive(Default)]
struct FormatBuilder {
    segments: Vec<Segment>,
    fields: Vec<(String, ResolvedField)>,
    literal: String,
}

impl FormatBuilder {
    fn literal(&mut self, text: &str) {
        self.literal.push_str(text);
    }

    fn field(&mut self, expr: String, resolved: ResolvedField, width: Option<usize>) {
        self.flush_literal();
        let index = match self.fields.iter().position(|(e, _)| *e == expr) {
            Some(p) => p,
            None => {
                self.fields.push((expr, resolved));
                self.fields.len() - 1
            }
        };
        self.segments.push(Segment::Field { index, width });
    }

    fn flush_literal(&mut self) {
        if !self.literal.is_empty() {
            let literal = std::mem::take(&mut self.literal);
            self.segments.push(Segment::Literal(literal));
        }
    }

    fn finish(mut self) -> OutputFormat {
        self.flush_literal();
        OutputFormat {
            segments: self.segments,
            fields: self.fields,
        }
    }
}

impl OutputFormat {
    /// The field expressions the format uses, as written.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(e, _)| e.as_str())
    }

    /// Renders the text, `<NA>` for missing values (Falco always formats rule outputs with `*`).
    pub fn render(&self, event: &dyn Event) -> String {
        let values: Vec<Option<String>> =
            self.fields.iter().map(|(_, f)| text_of(f, event)).collect();
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Field { index, width } => {
                    let v = values[*index].as_deref().unwrap_or("<NA>");
                    match width {
                        Some(w) => {
                            let cut: String = v.chars().take(*w).collect();
                            out.push_str(&format!("{cut:<w$}", w = *w));
                        }
                        None => out.push_str(v),
                    }
                }
            }
        }
        out
    }

    /// The typed values for the alert's `output_fields`; missing ones are `null`.
    pub fn json_fields(&self, event: &dyn Event, into: &mut serde_json::Map<String, Json>) {
        for (expr, f) in &self.fields {
            into.insert(expr.clone(), json_of(f, event));
        }
    }
}

/// A field's text as the formatter prints it.
pub fn text_of(f: &ResolvedField, event: &dyn Event) -> Option<String> {
    let extracted = event.extract(f);
    let values = extracted.values();
    if values.is_empty() {
        return None;
    }
    if f.info().name == "evt.time" && f.arg == FieldArg::None {
        if let Val::Int(ns) = values[0] {
            return Some(clock_time(ns));
        }
    }
    Some(
        values
            .iter()
            .map(|v| v.to_text().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn json_of(f: &ResolvedField, event: &dyn Event) -> Json {
    let extracted = event.extract(f);
    match extracted {
        Extracted::Missing => Json::Null,
        Extracted::One(v) => typed(&v),
        Extracted::Many(vs) => Json::String(
            vs.iter()
                .map(|v| v.to_text().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

fn typed(v: &Val<'_>) -> Json {
    match v {
        Val::Str(s) => Json::String(s.to_string()),
        Val::Int(n) => Json::from(*n),
        Val::Bool(b) => Json::Bool(*b),
        Val::Ip(ip) => Json::String(ip.to_string()),
        Val::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// `%evt.time`: `HH:MM:SS.nnnnnnnnn`. Falco prints local time; Peregrine prints UTC, which is
/// what the machines it runs on use and what the JSON `time` says.
pub fn clock_time(ns: i64) -> String {
    let dt = EventTime::from_unix_nanos(ns).to_offset_date_time();
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.nanosecond()
    )
}

/// `%evt.time.iso8601`: `2026-06-12T09:23:10.123456789+0000`.
pub fn iso8601(ns: i64) -> String {
    let t = EventTime::from_unix_nanos(ns).to_string();
    format!("{}+0000", t.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    struct E;
    impl Event for E {
        fn event_type(&self) -> Option<usize> {
            None
        }
        fn extract(&self, f: &ResolvedField) -> Extracted<'_> {
            match (f.info().name, &f.arg) {
                ("proc.name", _) => Extracted::One(Val::Str(Cow::Borrowed("cat"))),
                ("proc.aname", FieldArg::Index(2)) => {
                    Extracted::One(Val::Str(Cow::Borrowed("sshd")))
                }
                ("user.uid", _) => Extracted::One(Val::Int(0)),
                ("evt.arg", FieldArg::Key(k)) if k.as_ref() == "flags" => {
                    Extracted::One(Val::Str(Cow::Borrowed("O_RDONLY")))
                }
                _ => Extracted::Missing,
            }
        }
    }

    #[test]
    fn longest_field_prefix_and_missing_values() {
        let c = compile("file opened by %proc.name (parent=%proc.aname[2]) uid=%user.uid flags=%evt.arg.flags. cwd=%proc.cwd)").unwrap();
        assert_eq!(
            c.format.render(&E),
            "file opened by cat (parent=sshd) uid=0 flags=O_RDONLY. cwd=<NA>)"
        );
        let mut m = serde_json::Map::new();
        c.format.json_fields(&E, &mut m);
        assert_eq!(m["proc.aname[2]"], "sshd");
        assert_eq!(m["user.uid"], 0);
        assert_eq!(m["evt.arg.flags"], "O_RDONLY");
        assert!(m["proc.cwd"].is_null());
    }

    #[test]
    fn bad_formats() {
        assert!(compile("x %nope.field y")
            .unwrap_err()
            .message
            .contains("unknown output field '%nope.field'"));
        assert!(compile("100%").is_err());
        assert!(compile("ip=%fd.ip")
            .unwrap_err()
            .message
            .contains("only be used in conditions"));
        assert!(compile("%container.info x").unwrap().dropped_container_info);
    }

    #[test]
    fn times() {
        assert_eq!(clock_time(1_781_256_190_123_456_789), "09:23:10.123456789");
        assert_eq!(
            iso8601(1_781_256_190_123_456_789),
            "2026-06-12T09:23:10.123456789+0000"
        );
    }
}
