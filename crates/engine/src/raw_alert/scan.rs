//! One pass over an alert's bytes that finds its members and checks its JSON, for the alerts
//! senders actually send.
//!
//! Why: serde_json captured the free-form members as raw JSON and a second pass told their shape;
//! the two were over a third of the instructions the gateway spends on an accepted alert. This
//! reader does both at once and is several times cheaper.
//!
//! It answers `None` for anything it does not read exactly as serde_json would, and
//! [`super::wire`] then decides. So it refuses, rather than judges: an escape other than the
//! two-character ones (`\u` may hold a lone surrogate, which serde_json refuses when it reads the
//! string), a number with an exponent or over 300 digits (serde_json may refuse it as out of
//! range), nesting deeper than [`MAX_DEPTH`], a known member given
//! twice, null, or with an escape in its name or in a string the router reads; and anything
//! invalid. What it accepts, serde_json reads to the same members (tested).

use std::borrow::Cow;

use super::Members;

/// Deepest nesting read in an unknown member's value: this reader recurses, so it bounds its own
/// stack; deeper values (serde_json skips them without recursing) are left to serde_json.
const MAX_DEPTH: usize = 100;

/// Longest number read (digits before and after the point): serde_json reads 400 nines as
/// infinity and refuses it.
const MAX_DIGITS: usize = 300;

/// The members of the alert in `text`, or `None` to leave the alert to serde_json.
pub(super) fn members(text: &str) -> Option<Members<'_>> {
    let mut reader = Reader { text, at: 0 };
    let mut members = Members::default();
    reader.skip_whitespace();
    reader.sequence(b'{', b'}', |r| r.member(&mut members))?;
    reader.skip_whitespace();
    (reader.at == text.len()).then_some(members)
}

/// Where a known member's value goes, and how it is read.
enum Slot<'s, 'a> {
    /// A string the router reads, kept decoded (here, as written: it may hold no escape).
    Text(&'s mut Option<Cow<'a, str>>),
    /// A free-form member, kept as JSON text of this shape.
    Json(&'s mut Option<&'a str>, Shape),
}

enum Shape {
    String,
    /// An object of strings, numbers, booleans and nulls.
    Scalars,
    /// An array of strings.
    Strings,
}

/// Keeps a member's value; `None` when it was already given (serde_json refuses a duplicate
/// field).
fn fill<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Skips JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// `open`, then items separated by commas, then `close`, with whitespace around each;
    /// `item` reads one item.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.expect(open)?;
        self.skip_whitespace();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => self.skip_whitespace(),
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// One member of the alert's object, into `members` when it is a known one.
    fn member(&mut self, members: &mut Members<'a>) -> Option<()> {
        let (name, escaped) = self.name()?;
        if escaped {
            return None; // it could spell a known member
        }
        let slot = match name {
            "rule" => Slot::Text(&mut members.rule),
            "priority" => Slot::Text(&mut members.priority),
            "time" => Slot::Text(&mut members.time),
            "uuid" => Slot::Text(&mut members.uuid),
            "source" => Slot::Text(&mut members.source),
            "hostname" => Slot::Json(&mut members.hostname, Shape::String),
            "output" => Slot::Json(&mut members.output, Shape::String),
            "output_fields" => Slot::Json(&mut members.output_fields, Shape::Scalars),
            "tags" => Slot::Json(&mut members.tags, Shape::Strings),
            _ => return self.value(1),
        };
        match slot {
            Slot::Text(slot) => match self.string()? {
                (text, false) => fill(slot, Cow::Borrowed(text)),
                (_, true) => None,
            },
            Slot::Json(slot, shape) => {
                let start = self.at;
                match shape {
                    Shape::String => self.string().map(drop)?,
                    Shape::Scalars => self.sequence(b'{', b'}', |r| {
                        r.name()?;
                        r.scalar()
                    })?,
                    Shape::Strings => self.sequence(b'[', b']', |r| r.string().map(drop))?,
                }
                fill(slot, &self.text[start..self.at])
            }
        }
    }

    /// A member's name and the colon after it; whether the name has escapes.
    fn name(&mut self) -> Option<(&'a str, bool)> {
        let name = self.string()?;
        self.skip_whitespace();
        self.expect(b':')?;
        self.skip_whitespace();
        Some(name)
    }

    /// Any JSON value at nesting `depth`.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            _ if depth > MAX_DEPTH => None,
            b'{' => self.sequence(b'{', b'}', |r| {
                r.name()?;
                r.value(depth + 1)
            }),
            b'[' => self.sequence(b'[', b']', |r| r.value(depth + 1)),
            _ => self.scalar(),
        }
    }

    /// A string, number, boolean or null.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.word("null"),
            _ => self.number(),
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        if self.text.as_bytes().get(self.at..end)? != word.as_bytes() {
            return None;
        }
        self.at = end;
        Some(())
    }

    /// A number without an exponent and of at most [`MAX_DIGITS`] digits.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        let mut digits = self.digits();
        if digits == 0 || (leading_zero && digits > 1) {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction = self.digits();
            if fraction == 0 {
                return None;
            }
            digits += fraction;
        }
        let exponent = matches!(self.peek(), Some(b'e' | b'E'));
        (!exponent && digits <= MAX_DIGITS).then_some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    /// A string: its contents as written, and whether they hold escapes (only the
    /// two-character ones are read; `\u` is left to serde_json).
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at += plain_run(&bytes[self.at..]);
            match self.next()? {
                b'"' => return Some((&self.text[start..self.at - 1], escaped)),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => escaped = true,
                    _ => return None,
                },
                _ => return None, // a control character, which JSON does not allow in a string
            }
        }
    }
}

/// Whether `s` can sit between quotes in JSON as it is: serde_json escapes only quotes,
/// backslashes and bytes below 0x20 (not DEL), the bytes [`plain_run`] stops at.
pub(super) fn needs_no_escape(s: &str) -> bool {
    plain_run(s.as_bytes()) == s.len()
}

/// How many bytes at the start of `bytes` can sit in a string as they are: up to the first
/// quote, backslash or byte below 0x20. Eight at a time, the way serde_json scans strings.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES * 0x80;
    // The high bit of each byte that is zero, and perhaps of bytes above one that is: the lowest
    // bit set is always a zero byte.
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut run = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let stops = zeros(x ^ (ONES * u64::from(b'"')))
            | zeros(x ^ (ONES * u64::from(b'\\')))
            | below_space;
        if stops != 0 {
            return run + (stops.trailing_zeros() / 8) as usize;
        }
        run += 8;
    }
    let rest = chunks.remainder();
    run + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_stop_at_quotes_backslashes_and_control_characters() {
        for (text, run) in [
            ("", 0),
            ("abc", 3),
            ("abcdefgh", 8),
            ("abcdefghijklmnop\"", 16),
            ("abcdefghijk\\lmnop", 11),
            ("abcdefghijklm\tnop", 13),
            ("é è ü ß 日本語 \u{7f}\"", 23),
            ("\"", 0),
            ("abcdefg\x1f", 7),
            ("abcdefgh ", 9),
        ] {
            assert_eq!(plain_run(text.as_bytes()), run, "{text:?}");
        }
    }

    /// A string is written between quotes as it is exactly when serde_json would write it so.
    #[test]
    fn strings_need_no_escape_exactly_when_serde_json_writes_them_as_they_are() {
        let mut texts: Vec<String> = (0..=0x7f_u8)
            .map(|b| format!("Read sensitive file{}untrusted", b as char))
            .collect();
        texts.extend(
            ["", "é", "日本語 \u{7f}", "\u{2028}", "a\u{0}", "\"quoted\""].map(String::from),
        );
        for text in texts {
            let as_is = serde_json::to_string(&text).unwrap() == format!("\"{text}\"");
            assert_eq!(needs_no_escape(&text), as_is, "{text:?}");
        }
    }

    /// Every stop byte, alone or after another, at every place in runs of every filler byte
    /// (including UTF-8's high bytes and the neighbours of the stops), against a plain scan.
    #[test]
    fn plain_runs_match_a_byte_by_byte_scan() {
        let stops = [b'"', b'\\', 0x00, 0x01, 0x1f];
        let fillers = [
            b'a', b' ', b'!', b'#', b'[', b']', 0x21, 0x7f, 0x80, 0xc3, 0xff,
        ];
        let by_bytes = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        for len in 0..20 {
            for fill in fillers {
                for (first, second) in stops
                    .iter()
                    .flat_map(|a| stops.iter().map(move |b| (*a, *b)))
                {
                    for at in 0..=len {
                        for then in at..=len {
                            let mut bytes = vec![fill; len];
                            if then < len {
                                bytes[then] = second;
                            }
                            if at < len {
                                bytes[at] = first;
                            }
                            assert_eq!(plain_run(&bytes), by_bytes(&bytes), "{bytes:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn reads_the_members_of_a_falco_alert() {
        let m = members(
            r#" { "rule" : "R", "priority":"Warning","time":"T","uuid":"u","source":"s",
                "hostname":"h","output":"a \"b\"","output_fields":{"a":1,"b":"x","c":null,"d":-0.5,"e":true},
                "tags":["t1", "t2"],"unknown":{"deep":[1,{"x":[]}]}} "#,
        )
        .expect("read in one pass");
        assert_eq!(
            (m.rule.as_deref(), m.priority.as_deref(), m.time.as_deref()),
            (Some("R"), Some("Warning"), Some("T"))
        );
        assert_eq!(
            (m.uuid.as_deref(), m.source.as_deref()),
            (Some("u"), Some("s"))
        );
        assert_eq!(
            (m.hostname, m.output),
            (Some(r#""h""#), Some(r#""a \"b\"""#))
        );
        assert_eq!(
            m.output_fields,
            Some(r#"{"a":1,"b":"x","c":null,"d":-0.5,"e":true}"#)
        );
        assert_eq!(m.tags, Some(r#"["t1", "t2"]"#));
    }

    #[test]
    fn leaves_to_serde_json_what_it_does_not_read_exactly_as_serde_json() {
        let base = r#""rule":"r","priority":"Warning","time":"2026-06-12T09:23:10Z""#;
        for rest in [
            r#""output":"\u00e9""#,
            r#""output_fields":{"a":1e3}"#,
            r#""output_fields":{"a":1E3}"#,
            r#""rule":"twice""#,
            r#""\u0072ule":"r""#,
            r#""hostname":null"#,
            r#""source":"a\/b""#,
            r#""tags":["a",1]"#,
            r#""output_fields":{"a":{}}"#,
            r#""output_fields":{"a":01}"#,
            r#""output_fields":{"a":1.}"#,
            r#""output_fields":{"a":-}"#,
            r#""output_fields":{"a":tru}"#,
            r#""output":"tab	in it""#,
            r#""output":"bad \x escape""#,
            r#""x":1,"#,
        ] {
            let body = format!("{{{base},{rest}}}");
            assert!(members(&body).is_none(), "{body}");
        }
        let deep = format!(r#"{{{base},"x":{}{}}}"#, "[".repeat(101), "]".repeat(101));
        assert!(members(&deep).is_none());
        let deep_enough = format!(r#"{{{base},"x":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(members(&deep_enough).is_some());
        let long = format!(r#"{{{base},"output_fields":{{"a":{}}}}}"#, "9".repeat(301));
        assert!(members(&long).is_none());
        assert!(members(&format!("{{{base}}} x")).is_none());
        assert!(members(&format!("[{{{base}}}]")).is_none());
    }
}
