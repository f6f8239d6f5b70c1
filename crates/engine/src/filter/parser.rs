//! A recursive-descent parser for Falco conditions, following libsinsp's grammar
//! (`userspace/libsinsp/filter/parser.h`):
//!
//! ```text
//! Expr     ::= And ('or' And)*
//! And      ::= Not ('and' Not)*
//! Not      ::= 'not' Not | Check
//! Check    ::= '(' Expr ')' | Operand Op [Rhs] | Identifier
//! Operand  ::= Field | Transformer '(' Operand (',' Operand)* ')'
//! Field    ::= Name ('.' Segment)+ ['[' Arg ']']
//! Rhs      ::= Value | '(' [Value (',' Value)*] ')' | Identifier | 'val(' Field ')' | Transformer
//! ```
//! Keywords are lower case and must be followed by whitespace or `(`; word operators by
//! whitespace (list operators also by `(`). Every error carries the span where it was found.

use super::ast::*;

/// Transformers libsinsp knows. `val` marks a field compared against another field.
pub const TRANSFORMERS: [&str; 8] = [
    "tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt",
];

/// The deepest nesting accepted (Falco raises libsinsp's 100 to 1000).
const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: Span,
}

pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    p.skip_blanks();
    if p.at_end() {
        return Err(p.error_here("empty condition"));
    }
    let expr = p.or_expr()?;
    p.skip_blanks();
    if !p.at_end() {
        let token = p.peek_token();
        if token == ")" {
            return Err(p.error_at(
                p.pos,
                1,
                "unbalanced parentheses: ')' without a matching '('",
            ));
        }
        let before = p.text[..p.pos].trim_end();
        let last = before
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("");
        return Err(p.error_at(
            p.pos,
            token.len().max(1),
            format!("unexpected token '{token}' after '{last}', expecting 'or', 'and'"),
        ));
    }
    Ok(expr)
}

/// Reads text as the inside of a value list (`a, "b c", d`): how a list item is read when Falco
/// substitutes the list's items into a condition.
pub fn parse_list_items(text: &str) -> Result<Vec<Value>, ParseError> {
    let wrapped = format!("({text})");
    let mut p = Parser {
        text: &wrapped,
        pos: 0,
        depth: 0,
    };
    let items = p.list()?;
    p.skip_blanks();
    if !p.at_end() {
        return Err(p.error_here("unexpected text after the list"));
    }
    Ok(items)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x08)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Characters that end a bare value.
fn ends_bare(b: u8) -> bool {
    is_blank(b) || matches!(b, b'(' | b')' | b'"' | b'\'' | b'=' | b',')
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn byte_at(&self, i: usize) -> Option<u8> {
        self.text.as_bytes().get(i).copied()
    }

    fn skip_blanks(&mut self) {
        while self.byte().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    fn error_at(&self, start: usize, len: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            span: Span::new(start, (start + len).min(self.text.len()).max(start)),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        let len = self.peek_token().len().max(1);
        self.error_at(self.pos, len, message)
    }

    /// The next whitespace-delimited token, for messages.
    fn peek_token(&self) -> &'a str {
        let rest = &self.text[self.pos.min(self.text.len())..];
        if rest.starts_with(['(', ')', ',']) {
            return &rest[..1];
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ','))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// True if `word` is at the cursor and followed by whitespace, `(` (when allowed) or the end.
    fn at_keyword(&self, word: &str, paren_ok: bool) -> bool {
        let rest = &self.text.as_bytes()[self.pos..];
        if !rest.starts_with(word.as_bytes()) {
            return false;
        }
        match rest.get(word.len()) {
            None => true,
            Some(&b) => is_blank(b) || (paren_ok && b == b'('),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.and_expr()?;
        let mut children = vec![first];
        loop {
            self.skip_blanks();
            if self.at_keyword("or", true) {
                self.pos += 2;
                children.push(self.and_expr()?);
            } else {
                break;
            }
        }
        Ok(if children.len() == 1 {
            children.pop().expect("one")
        } else {
            Expr::Or(children)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.not_expr()?;
        let mut children = vec![first];
        loop {
            self.skip_blanks();
            if self.at_keyword("and", true) {
                self.pos += 3;
                children.push(self.not_expr()?);
            } else {
                break;
            }
        }
        Ok(if children.len() == 1 {
            children.pop().expect("one")
        } else {
            Expr::And(children)
        })
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        self.skip_blanks();
        if self.at_keyword("not", true) {
            self.pos += 3;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error_here("condition nested too deeply"));
            }
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.check()
    }

    fn check(&mut self) -> Result<Expr, ParseError> {
        self.skip_blanks();
        let start = self.pos;
        match self.byte() {
            None => {
                let before = self.text.trim_end();
                let last = before
                    .rsplit(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("");
                Err(self.error_at(
                    self.text.len().saturating_sub(1),
                    1,
                    format!("unexpected end of condition after '{last}'"),
                ))
            }
            Some(b'(') => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.error_here("condition nested too deeply"));
                }
                let inner = self.or_expr()?;
                self.depth -= 1;
                self.skip_blanks();
                if self.byte() != Some(b')') {
                    if self.at_end() {
                        return Err(self.error_at(
                            start,
                            1,
                            "unbalanced parentheses: this '(' is never closed",
                        ));
                    }
                    return Err(self.error_here(format!(
                        "expected ')' or 'and'/'or', found '{}'",
                        self.peek_token()
                    )));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(b')') => Err(self.error_at(
                self.pos,
                1,
                "unbalanced parentheses: ')' without a matching '('",
            )),
            Some(b) if is_name_start(b) => {
                let (name, has_dot) = self.name();
                let name_span = Span::new(start, self.pos);
                if !has_dot && self.byte() == Some(b'(') && TRANSFORMERS.contains(&name) {
                    let lhs = self.transformer(name.to_string(), start)?;
                    return self.condition(lhs, start);
                }
                if !has_dot {
                    if matches!(name, "and" | "or" | "not") {
                        return Err(self.error_at(
                            start,
                            name.len(),
                            format!("expected a condition, found keyword '{name}'"),
                        ));
                    }
                    return Ok(Expr::Macro(Ident {
                        name: name.to_string(),
                        span: name_span,
                    }));
                }
                let field = self.field_arg(name.to_string(), start)?;
                self.condition(Operand::Field(field), start)
            }
            Some(_) => Err(self.error_here(format!(
                "expected a field, a macro or '(', found '{}'",
                self.peek_token()
            ))),
        }
    }

    /// A dotted or plain name at the cursor, and whether it had a dot (fields do, macros don't).
    fn name(&mut self) -> (&'a str, bool) {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && is_name_char(bytes[self.pos]) {
            self.pos += 1;
        }
        let mut has_dot = false;
        while self.byte() == Some(b'.') && self.byte_at(self.pos + 1).is_some_and(is_name_char) {
            has_dot = true;
            self.pos += 1;
            while self.pos < bytes.len() && is_name_char(bytes[self.pos]) {
                self.pos += 1;
            }
        }
        (&self.text[start..self.pos], has_dot)
    }

    /// An optional `[arg]` right after a field name.
    fn field_arg(&mut self, name: String, start: usize) -> Result<FieldRef, ParseError> {
        let mut arg = None;
        if self.byte() == Some(b'[') {
            let open = self.pos;
            self.pos += 1;
            let value = match self.byte() {
                Some(q @ (b'"' | b'\'')) => self.quoted(q)?,
                _ => {
                    let s = self.pos;
                    while self
                        .byte()
                        .is_some_and(|b| !is_blank(b) && !matches!(b, b'[' | b']' | b'"' | b'\''))
                    {
                        self.pos += 1;
                    }
                    self.text[s..self.pos].to_string()
                }
            };
            if self.byte() != Some(b']') {
                return Err(self.error_at(
                    open,
                    self.pos - open + 1,
                    "field argument is not closed with ']'",
                ));
            }
            if value.is_empty() {
                return Err(self.error_at(open, 2, format!("empty argument for field '{name}'")));
            }
            self.pos += 1;
            arg = Some(value);
        }
        Ok(FieldRef {
            name,
            arg,
            span: Span::new(start, self.pos),
        })
    }

    /// `name(operand, ...)` with the cursor on `(`.
    fn transformer(&mut self, name: String, start: usize) -> Result<Operand, ParseError> {
        self.pos += 1;
        let mut args = Vec::new();
        loop {
            self.skip_blanks();
            let arg_start = self.pos;
            let arg = match self.byte() {
                Some(b) if is_name_start(b) => {
                    let (inner, has_dot) = self.name();
                    if !has_dot && self.byte() == Some(b'(') && TRANSFORMERS.contains(&inner) {
                        self.transformer(inner.to_string(), arg_start)?
                    } else if has_dot {
                        Operand::Field(self.field_arg(inner.to_string(), arg_start)?)
                    } else {
                        return Err(self.error_at(
                            arg_start,
                            inner.len(),
                            format!("expected a field inside {name}(), found '{inner}'"),
                        ));
                    }
                }
                _ => return Err(self.error_here(format!("expected a field inside {name}()"))),
            };
            args.push(arg);
            self.skip_blanks();
            match self.byte() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.error_here(format!("expected ',' or ')' to close {name}("))),
            }
        }
        Ok(Operand::Transform {
            name,
            args,
            span: Span::new(start, self.pos),
        })
    }

    /// The operator and right side after an operand.
    fn condition(&mut self, lhs: Operand, start: usize) -> Result<Expr, ParseError> {
        let lhs_text = self.text[lhs.span().start..lhs.span().end].to_string();
        self.skip_blanks();
        let op_start = self.pos;
        let op = self.operator().ok_or_else(|| {
            let token = self.peek_token();
            if token.is_empty() {
                self.error_at(
                    op_start.saturating_sub(1),
                    1,
                    format!("expected an operator after '{lhs_text}'"),
                )
            } else {
                self.error_here(format!("unknown operator '{token}' after '{lhs_text}'"))
            }
        })?;
        let rhs = if op == Op::Exists {
            Rhs::None
        } else {
            self.skip_blanks();
            self.rhs(op)?
        };
        Ok(Expr::Check(Check {
            lhs,
            op,
            rhs,
            span: Span::new(start, self.pos),
        }))
    }

    fn operator(&mut self) -> Option<Op> {
        let rest = &self.text.as_bytes()[self.pos..];
        let symbols: [(&[u8], Op); 7] = [
            (b"==", Op::Eq),
            (b"!=", Op::Ne),
            (b"<=", Op::Le),
            (b">=", Op::Ge),
            (b"=", Op::Eq),
            (b"<", Op::Lt),
            (b">", Op::Gt),
        ];
        for (sym, op) in symbols {
            if rest.starts_with(sym) {
                self.pos += sym.len();
                return Some(op);
            }
        }
        for op in Op::WORDS {
            // `exists` may close a parenthesis at once: `(proc.name exists)`.
            let closes = op == Op::Exists
                && rest.starts_with(op.as_str().as_bytes())
                && rest.get(op.as_str().len()) == Some(&b')');
            if closes || self.at_keyword(op.as_str(), op.takes_list()) {
                self.pos += op.as_str().len();
                return Some(op);
            }
        }
        None
    }

    fn rhs(&mut self, op: Op) -> Result<Rhs, ParseError> {
        let start = self.pos;
        // val(field) and transformers on the right side.
        if self.byte().is_some_and(is_name_start) {
            let save = self.pos;
            let (name, has_dot) = self.name();
            if !has_dot && self.byte() == Some(b'(') {
                if name == "val" {
                    self.pos += 1;
                    self.skip_blanks();
                    let fstart = self.pos;
                    let (fname, dotted) = self.name();
                    if !dotted {
                        return Err(self.error_at(
                            fstart,
                            fname.len().max(1),
                            "val() takes a field",
                        ));
                    }
                    let field = self.field_arg(fname.to_string(), fstart)?;
                    self.skip_blanks();
                    if self.byte() != Some(b')') {
                        return Err(self.error_here("expected ')' to close val("));
                    }
                    self.pos += 1;
                    return Ok(Rhs::Operand(Operand::Transform {
                        name: "val".into(),
                        args: vec![Operand::Field(field)],
                        span: Span::new(start, self.pos),
                    }));
                }
                if TRANSFORMERS.contains(&name) {
                    return Ok(Rhs::Operand(self.transformer(name.to_string(), start)?));
                }
            }
            if op.takes_list()
                && !has_dot
                && !name.is_empty()
                && self.byte().is_none_or(|b| is_blank(b) || b == b')')
            {
                // A list given by name without parentheses (`in my_list`).
                return Ok(Rhs::ListName(Ident {
                    name: name.to_string(),
                    span: Span::new(start, self.pos),
                }));
            }
            self.pos = save;
        }
        if op.takes_list() {
            if self.byte() != Some(b'(') {
                return Err(self.error_here(format!("'{op}' takes a list such as (a, b)")));
            }
            return Ok(Rhs::List(self.list()?));
        }
        if op.takes_number() {
            let n = self.number().ok_or_else(|| {
                self.error_here(format!(
                    "'{op}' takes a number, found '{}'",
                    self.peek_token()
                ))
            })?;
            return Ok(Rhs::Value(n));
        }
        match self.byte() {
            Some(b'(') => Err(self.error_here(format!("'{op}' takes a single value, not a list"))),
            None | Some(b')') => Err(self.error_at(
                start.saturating_sub(1),
                1,
                format!("expected a value after '{op}'"),
            )),
            _ => Ok(Rhs::Value(self.value()?)),
        }
    }

    fn list(&mut self) -> Result<Vec<Value>, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_blanks();
        if self.byte() == Some(b')') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_blanks();
            match self.byte() {
                None => {
                    return Err(self.error_at(
                        open,
                        1,
                        "unbalanced parentheses: this list is never closed",
                    ))
                }
                Some(b',' | b')') => return Err(self.error_here("expected a value in the list")),
                _ => items.push(self.value()?),
            }
            self.skip_blanks();
            match self.byte() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => {
                    return Err(self.error_at(
                        open,
                        1,
                        "unbalanced parentheses: this list is never closed",
                    ))
                }
                _ => {
                    return Err(self.error_here(format!(
                        "expected ',' or ')' in the list, found '{}'",
                        self.peek_token()
                    )))
                }
            }
        }
    }

    /// A bare or quoted value.
    fn value(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        match self.byte() {
            Some(q @ (b'"' | b'\'')) => {
                let text = self.quoted(q)?;
                Ok(Value {
                    text,
                    quoted: true,
                    span: Span::new(start, self.pos),
                })
            }
            _ => {
                while self.byte().is_some_and(|b| !ends_bare(b)) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error_here("expected a value"));
                }
                Ok(Value {
                    text: self.text[start..self.pos].to_string(),
                    quoted: false,
                    span: Span::new(start, self.pos),
                })
            }
        }
    }

    /// A number as libsinsp accepts after `<`, `<=`, `>`, `>=`.
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
            let digits = i;
            while bytes.get(i).is_some_and(u8::is_ascii_hexdigit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        } else {
            let digits = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
            if bytes.get(i) == Some(&b'.') {
                i += 1;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                    i = j;
                }
            }
        }
        if bytes.get(i).is_some_and(|&b| !ends_bare(b)) {
            return None;
        }
        self.pos = i;
        Some(Value {
            text: self.text[start..i].to_string(),
            quoted: false,
            span: Span::new(start, i),
        })
    }

    /// A quoted string starting at the cursor, unescaped as libsinsp's lexer does.
    fn quoted(&mut self, quote: u8) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.byte() else {
                return Err(self.error_at(start, 1, "unterminated string"));
            };
            self.pos += 1;
            if b == quote {
                break;
            }
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let esc_at = self.pos - 1;
            let Some(e) = self.byte() else {
                return Err(self.error_at(start, 1, "unterminated string"));
            };
            self.pos += 1;
            match e {
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'"' if quote == b'"' => out.push(b'"'),
                b'\'' if quote == b'\'' => out.push(b'\''),
                // libsinsp's legacy quirk: backslash-space yields a backslash.
                b' ' => {
                    out.push(b'\\');
                    self.pos -= 1;
                }
                b'x' => {
                    let hex = self.text.get(self.pos..self.pos + 2).unwrap_or("");
                    let v = u8::from_str_radix(hex, 16).map_err(|_| {
                        self.error_at(esc_at, 4, "invalid \\x escape (write \\xHH)")
                    })?;
                    out.push(v);
                    self.pos += 2;
                }
                other => {
                    return Err(self.error_at(
                        esc_at,
                        2,
                        format!("invalid escape sequence '\\{}'", other as char),
                    ));
                }
            }
        }
        String::from_utf8(out)
            .map_err(|_| self.error_at(start, self.pos - start, "string is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .to_string()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().message
    }

    #[test]
    fn precedence_is_or_then_and_then_not() {
        assert_eq!(canon("not a and b"), "(not a and b)");
        assert_eq!(canon("a or b and c"), "(a or (b and c))");
        assert_eq!(canon("not (a or b)"), "not (a or b)");
        assert_eq!(canon("not not a"), "not not a");
        assert_eq!(canon("(a)"), "a");
        assert_eq!(canon("a and b and c or d"), "((a and b and c) or d)");
    }

    #[test]
    fn a_list_of_any_length_is_not_taken_for_exists() {
        // Six bytes after `in`, a ')' once made the parser read `exists` (`- list: ab`).
        assert_eq!(canon("proc.name in (ab)"), "proc.name in (ab)");
        assert_eq!(
            canon("proc.name in (zz) and (fd.name exists)"),
            "(proc.name in (zz) and fd.name exists)"
        );
        assert_eq!(canon("proc.name in (a)"), "proc.name in (a)");
    }

    #[test]
    fn checks_values_and_lists() {
        assert_eq!(canon("proc.name=bash"), "proc.name = bash");
        assert_eq!(canon("proc.name!=\"sshd\""), "proc.name != sshd");
        assert_eq!(
            canon("proc.name in (bash, 'sh', \"a b\")"),
            "proc.name in (bash, sh, \"a b\")"
        );
        assert_eq!(canon("fd.name exists"), "fd.name exists");
        assert_eq!(canon("(container.id exists)"), "container.id exists");
        assert_eq!(canon("proc.aname[2] = sshd"), "proc.aname[2] = sshd");
        assert_eq!(
            canon("evt.arg.flags contains O_WRONLY"),
            "evt.arg.flags contains O_WRONLY"
        );
        assert_eq!(canon("proc.name in ()"), "proc.name in ()");
        assert_eq!(
            canon("fd.num >= -1 and evt.rawres < 0x10"),
            "(fd.num >= -1 and evt.rawres < 0x10)"
        );
        assert_eq!(
            canon("proc.pname = val(proc.name)"),
            "proc.pname = val(proc.name)"
        );
        assert_eq!(
            canon("tolower(proc.name) = bash"),
            "tolower(proc.name) = bash"
        );
        assert_eq!(canon("evt.dir = <"), "evt.dir = <");
        assert_eq!(
            canon("container.mount.dest[/var/run/docker.sock] != \"\""),
            "container.mount.dest[/var/run/docker.sock] != \"\""
        );
        assert_eq!(
            canon("proc.cmdline contains \"runc:[0:PARENT]\""),
            "proc.cmdline contains runc:[0:PARENT]"
        );
    }

    #[test]
    fn escapes_follow_libsinsp() {
        let Expr::Check(c) = parse(r#"proc.cmdline = "a\tb\x41\"\\""#).unwrap() else {
            panic!()
        };
        assert!(matches!(c.rhs, Rhs::Value(ref v) if v.text == "a\tbA\"\\"));
        let Expr::Check(c) = parse(r"proc.cmdline = 'it\'s'").unwrap() else {
            panic!()
        };
        assert!(matches!(c.rhs, Rhs::Value(ref v) if v.text == "it's"));
        assert!(err(r#"proc.name = "a\qb""#).contains("invalid escape"));
        assert!(err(r#"proc.name = "abc"#).contains("unterminated string"));
    }

    #[test]
    fn errors_name_the_problem_and_where() {
        assert!(err("(proc.name = a").contains("unbalanced parentheses"));
        assert!(err("proc.name = a)").contains("unbalanced parentheses"));
        assert!(err("proc.name equals a").contains("unknown operator 'equals'"));
        assert!(err("proc.name = a b")
            .contains("unexpected token 'b' after 'a', expecting 'or', 'and'"));
        assert!(err("proc.name >= abc").contains("takes a number"));
        assert!(err("proc.name in bash, sh").contains("takes a list"));
        assert!(err("proc.name in (a,").contains("never closed"));
        assert!(err("proc.aname[] = a").contains("empty argument"));
        assert!(err("a and").contains("unexpected end"));
        assert!(err("").contains("empty condition"));
        let e = parse("proc.name = a and fd.name bogus x").unwrap_err();
        assert_eq!(
            &"proc.name = a and fd.name bogus x"[e.span.start..e.span.end],
            "bogus"
        );
    }

    #[test]
    fn keywords_need_a_separator() {
        // `andx` is a macro name, not `and x`.
        assert_eq!(canon("a or andx"), "(a or andx)");
        assert_eq!(canon("not(a)"), "not a");
        assert_eq!(canon("a and(b)"), "(a and b)");
        assert!(parse("a AND b").is_err(), "keywords are lower case");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        // 1000 levels need more stack than a test thread's 2 MiB in a debug build; a real
        // program's main thread has 8 MiB and release frames are smaller.
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(|| {
                let deep = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
                assert!(err(&deep).contains("nested too deeply"));
                let nots = format!("{}a", "not ".repeat(5000));
                assert!(err(&nots).contains("nested too deeply"));
                let ok = format!("{}a{}", "(".repeat(999), ")".repeat(999));
                assert_eq!(canon(&ok), "a");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
