//! Alert text made inert in each service's markup.
//!
//! Alert text is attacker-controlled (a file name, a command line, a rule name posted to the
//! gateway). Whatever markup a service reads, text from an alert must show as itself: no
//! mention that pages a channel, no link with a misleading label, no formatting that hides the
//! rest of the message.

/// A service's markup, and how alert text is escaped for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// Markdown as Discord, Mattermost and Rocket.Chat read it. Every character those parsers
    /// treat as markup is backslash-escaped (CommonMark lets any ASCII punctuation be escaped,
    /// and shows it literally), so no emphasis, heading, quote, code span or `[label](url)` link
    /// comes from an alert. `@` is followed by a word joiner (U+2060): `@here`, `@channel`,
    /// `@all` and `@everyone` still read as such but are no longer the word the servers look
    /// for to notify.
    Markdown,
    /// Telegram's `parse_mode: HTML`: `&`, `<` and `>` as the entities Telegram documents, so no
    /// tag and no `<a href>` comes from an alert.
    Html,
    /// Google Chat's text markup: `<` and `>` (which open links and `<users/all>` mentions) and
    /// `&` as HTML entities, which Chat shows as the characters.
    GoogleChat,
    /// No markup at all (ntfy and Gotify as plain text, Opsgenie, Grafana OnCall): nothing acts,
    /// so nothing is escaped.
    Plain,
}

const WORD_JOINER: char = '\u{2060}';

/// Characters the Markdown dialects act on.
const MARKDOWN_ACTIVE: &str = "\\`*_~|<>#[]()!&";

impl Markup {
    /// `text` as it must be written to show literally.
    pub fn escape(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + text.len() / 8);
        for c in text.chars() {
            match (self, c) {
                (Markup::Markdown, c) if MARKDOWN_ACTIVE.contains(c) => {
                    out.push('\\');
                    out.push(c);
                }
                (Markup::Markdown, '@') => {
                    out.push('@');
                    out.push(WORD_JOINER);
                }
                (Markup::Html | Markup::GoogleChat, '&') => out.push_str("&amp;"),
                (Markup::Html | Markup::GoogleChat, '<') => out.push_str("&lt;"),
                (Markup::Html | Markup::GoogleChat, '>') => out.push_str("&gt;"),
                (_, c) => out.push(c),
            }
        }
        out
    }

    /// The longest prefix of escaped `text` that is at most `max` UTF-16 units (the unit most
    /// services count in) and does not end inside an escape: no `&am`, no lone trailing `\`.
    pub fn cut(self, text: &str, max: usize) -> String {
        self.cut_in(text, max, Measure::Utf16)
    }

    /// [`Markup::cut`], counting in `measure`.
    pub fn cut_in(self, text: &str, max: usize, measure: Measure) -> String {
        let mut end = 0;
        let mut units = 0;
        for (i, c) in text.char_indices() {
            units += measure.of_char(c);
            if units > max {
                break;
            }
            end = i + c.len_utf8();
        }
        let mut kept = &text[..end];
        match self {
            Markup::Html | Markup::GoogleChat => {
                // An entity is at most `&amp;`: an `&` among the last four characters with no
                // `;` after it is one cut short.
                if let Some(i) = kept.rfind('&') {
                    if kept.len() - i <= 4 && !kept[i..].contains(';') {
                        kept = &kept[..i];
                    }
                }
            }
            Markup::Markdown => {
                let backslashes = kept.len() - kept.trim_end_matches('\\').len();
                if backslashes % 2 == 1 {
                    kept = &kept[..kept.len() - 1];
                }
            }
            Markup::Plain => {}
        }
        kept.to_string()
    }
}

/// A text's length as most services count it (JavaScript and Telegram count UTF-16 units).
pub fn length(text: &str) -> usize {
    Measure::Utf16.of(text)
}

/// What a service's length limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// UTF-16 code units (JavaScript's `length`; never fewer than characters).
    Utf16,
    /// UTF-8 bytes (ntfy's message size).
    Bytes,
}

impl Measure {
    pub fn of(self, text: &str) -> usize {
        match self {
            Measure::Utf16 => text.encode_utf16().count(),
            Measure::Bytes => text.len(),
        }
    }

    fn of_char(self, c: char) -> usize {
        match self {
            Measure::Utf16 => c.len_utf16(),
            Measure::Bytes => c.len_utf8(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_shows_markup_and_mentions_literally() {
        let got = Markup::Markdown.escape("**bold** [x](https://evil) @everyone `c` > q");
        assert_eq!(
            got,
            "\\*\\*bold\\*\\* \\[x\\]\\(https://evil\\) @\u{2060}everyone \\`c\\` \\> q"
        );
        assert_eq!(Markup::Markdown.escape(r"C:\tmp"), r"C:\\tmp");
    }

    #[test]
    fn html_and_google_chat_take_entities() {
        let text = "<a href=\"x\">me</a> & <users/all>";
        let want = "&lt;a href=\"x\"&gt;me&lt;/a&gt; &amp; &lt;users/all&gt;";
        assert_eq!(Markup::Html.escape(text), want);
        assert_eq!(Markup::GoogleChat.escape(text), want);
        assert_eq!(Markup::Plain.escape(text), text);
    }

    #[test]
    fn a_cut_never_ends_inside_an_escape() {
        assert_eq!(Markup::Html.cut("ab&amp;c", 4), "ab");
        assert_eq!(Markup::Html.cut("ab&amp;c", 7), "ab&amp;");
        assert_eq!(Markup::Markdown.cut("ab\\*c", 3), "ab");
        assert_eq!(Markup::Markdown.cut("ab\\\\c", 4), "ab\\\\");
        // Counted in UTF-16 units: an emoji is two.
        assert_eq!(Markup::Plain.cut("a😀b", 2), "a");
        assert_eq!(length("a😀b"), 4);
    }
}
