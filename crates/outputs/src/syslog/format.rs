//! Syslog lines: RFC 5424 (default) or RFC 3164, and how they are framed on a stream.
//!
//! Falco's priorities are syslog's severities, in the same order (Emergency 0 … Debug 7).
//! RFC 5424 carries the alert's time in UTC with microseconds, the host, `app_name`, MSGID
//! `falco`, and the alert's id, rule, priority and source as structured data
//! `[falco@32473 …]` (32473 is the private enterprise number RFC 5612 reserves for examples:
//! Peregrine has none of its own, and receivers match the SD-ID by name). The message is the
//! alert's JSON or Falco's output text.

use peregrine_engine::Alert;
use time::macros::format_description;

use crate::envelope::Envelope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Message {
    /// The alert as Falco's JSON.
    Json,
    /// Falco's output text.
    Output,
}

/// How messages are delimited on TCP and TLS (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `LEN SP MSG`: any byte may be in a message.
    OctetCounting,
    /// `MSG LF`: line breaks in the message become spaces.
    Newline,
}

/// The facilities by name, as `facility:` takes them.
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// What every line of one output shares.
#[derive(Debug, Clone)]
pub struct LineFormat {
    pub format: Format,
    pub message: Message,
    /// The facility's number (0 to 23).
    pub facility: u8,
    pub app_name: String,
    /// The longest line; a longer message is cut (on a character boundary).
    pub max_bytes: usize,
}

impl LineFormat {
    /// One alert as a syslog line, without framing.
    pub fn line(&self, envelope: &Envelope) -> String {
        let a = envelope.alert();
        let pri = u16::from(self.facility) * 8 + u16::from(a.priority.level());
        let head = match self.format {
            Format::Rfc5424 => self.head_5424(pri, envelope),
            Format::Rfc3164 => self.head_3164(pri, a),
        };
        let message = match self.message {
            Message::Json => String::from_utf8_lossy(&envelope.json).into_owned(),
            Message::Output => a.output.clone(),
        };
        let room = self.max_bytes.saturating_sub(head.len());
        format!("{head}{}", cut(&message, room))
    }

    fn head_5424(&self, pri: u16, envelope: &Envelope) -> String {
        let a = envelope.alert();
        let time = a
            .time
            .to_offset_date_time()
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .unwrap_or_else(|_| "-".into());
        let host = header_field(a.hostname.as_deref().unwrap_or(""), 255);
        let sd = format!(
            "[falco@32473 uuid=\"{}\" rule=\"{}\" priority=\"{}\" source=\"{}\"]",
            sd_value(envelope.id()),
            sd_value(&a.rule),
            a.priority,
            sd_value(&a.source)
        );
        format!("<{pri}>1 {time} {host} {} - falco {sd} ", self.app_name)
    }

    fn head_3164(&self, pri: u16, a: &Alert) -> String {
        let time = a
            .time
            .to_offset_date_time()
            .format(format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let host = header_field(a.hostname.as_deref().unwrap_or("localhost"), 255);
        format!("<{pri}>{time} {host} {}: ", self.app_name)
    }
}

/// Frames a line for a stream.
pub fn frame(line: &str, framing: Framing, out: &mut Vec<u8>) {
    match framing {
        Framing::OctetCounting => {
            out.extend_from_slice(format!("{} ", line.len()).as_bytes());
            out.extend_from_slice(line.as_bytes());
        }
        Framing::Newline => {
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            out.push(b'\n');
        }
    }
}

/// A header field (host, app name): printable ASCII without spaces, at most `max` characters,
/// `-` when empty.
pub fn header_field(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424 §6.3.3).
fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::envelope;

    fn format(format: Format, message: Message) -> LineFormat {
        LineFormat {
            format,
            message,
            facility: 16,
            app_name: "falco".into(),
            max_bytes: 8192,
        }
    }

    fn alert() -> Envelope {
        envelope(serde_json::json!({
            "rule": "Rule with \"quotes\" and ]", "priority": "Critical", "time": "2026-06-12T09:23:10.123456789Z",
            "output": "line one\nline two", "hostname": "node 1", "source": "syscall",
            "output_fields": {}, "tags": []
        }))
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let e = alert();
        let line = format(Format::Rfc5424, Message::Output).line(&e);
        // local0 (16) * 8 + Critical (2)
        assert_eq!(
            line,
            format!("<130>1 2026-06-12T09:23:10.123456Z node_1 falco - falco [falco@32473 uuid=\"{}\" rule=\"Rule with \\\"quotes\\\" and \\]\" priority=\"Critical\" source=\"syscall\"] line one\nline two", e.id())
        );
    }

    #[test]
    fn rfc3164_and_framing() {
        let line = format(Format::Rfc3164, Message::Output).line(&alert());
        assert_eq!(
            line,
            "<130>Jun 12 09:23:10 node_1 falco: line one\nline two"
        );
        let mut out = Vec::new();
        frame(&line, Framing::Newline, &mut out);
        assert_eq!(
            out,
            b"<130>Jun 12 09:23:10 node_1 falco: line one line two\n"
        );
        out.clear();
        frame("abc", Framing::OctetCounting, &mut out);
        assert_eq!(out, b"3 abc");
    }

    #[test]
    fn a_long_message_is_cut_to_the_limit() {
        let mut f = format(Format::Rfc3164, Message::Json);
        f.max_bytes = 100;
        let line = f.line(&alert());
        assert!(line.len() <= 100 && line.len() > 90, "{}", line.len());
    }
}
