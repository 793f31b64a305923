//! Bounds in front of the `hcl` crate's parser, which recurses once for every bracket,
//! string, interpolation, template directive and operator it is inside of. Unbounded, a
//! policy of `a = ` and 600 minus signs overflowed a worker's stack and aborted the
//! daemon (a stored one again at the first request of a token carrying it, after every
//! restart); fuzzing a server config found the same. Policies arrive over the API, so every HCL text is held to bounds that no real
//! policy or config comes near: they nest three or four levels and hold literal values,
//! no operators at all (Vault reads them as HCL 1, which has none).
//!
//! The scan is a small lexer: it knows strings, heredocs, the interpolations inside both,
//! comments, and the `for` expression's `in` and `if`, so that a bracket or operator is
//! counted where the parser will see one, and not where it is text. Where the parser
//! reads text by rules the scan does not follow, it refuses instead: template directives
//! (`%{ if }`, whose bodies know no `\`, `"` or heredoc end) and a heredoc whose first
//! line starts with its marker (which ends it only if no later line does).

/// Deeper than any policy or config needs. Every open bracket, string, heredoc and
/// interpolation is a level.
pub const MAX_NESTING: usize = 16;

/// Operators in the whole text. Each is a level of the parser's recursion wherever it
/// stands, so the bound is on their number.
pub const MAX_OPERATORS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    #[error(
        "brackets, strings and interpolations nest deeper than {MAX_NESTING} levels at line {line}"
    )]
    Nesting { line: usize },
    #[error("more than {MAX_OPERATORS} operators (one too many at line {line}); policies and configs hold literal values")]
    Operators { line: usize },
    #[error("template directive (`%{{`) or ambiguous heredoc at line {line}; policies and configs hold literal values")]
    Template { line: usize },
}

impl BoundError {
    pub fn line(&self) -> usize {
        match self {
            BoundError::Nesting { line }
            | BoundError::Operators { line }
            | BoundError::Template { line } => *line,
        }
    }
}

enum Frame {
    /// Its closing byte: a bracket that does not match closes nothing, so no stray
    /// closer can lower the count.
    Bracket(u8),
    /// A quoted string: text, escapes and interpolations.
    Quoted,
    /// A heredoc's body, up to the line that starts with its marker; and where its
    /// first line starts.
    Heredoc(Vec<u8>, usize),
    /// `${ ... }` inside a string or heredoc: expressions again.
    Interpolation,
}

/// What the expression scanner is in the middle of: a word's `-` or an exponent's sign
/// is not an operator.
#[derive(Clone, Copy, PartialEq)]
enum Word {
    None,
    Identifier,
    Number,
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    stack: Vec<Frame>,
    operators: usize,
    word: Word,
    word_start: usize,
}

/// Refuses `text` when it nests deeper than [`MAX_NESTING`] or holds more than
/// [`MAX_OPERATORS`] operators; the error names the line.
pub fn check(text: &str) -> Result<(), BoundError> {
    let mut scan = Scan {
        text: text.as_bytes(),
        at: 0,
        line: 1,
        stack: Vec::new(),
        operators: 0,
        word: Word::None,
        word_start: 0,
    };
    while scan.at < scan.text.len() {
        match scan.stack.last() {
            Some(Frame::Quoted) => scan.quoted()?,
            Some(Frame::Heredoc(..)) => scan.heredoc()?,
            _ => scan.expression()?,
        }
    }
    Ok(())
}

impl Scan<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.text.get(self.at + ahead).copied().unwrap_or(0)
    }

    /// Moves past `n` bytes, counting the lines they end.
    fn advance(&mut self, n: usize) {
        let end = (self.at + n).min(self.text.len());
        self.line += self.text[self.at..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.at = end;
    }

    fn push(&mut self, frame: Frame) -> Result<(), BoundError> {
        if self.stack.len() >= MAX_NESTING {
            return Err(BoundError::Nesting { line: self.line });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn operator(&mut self, len: usize) -> Result<(), BoundError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(BoundError::Operators { line: self.line });
        }
        self.advance(len);
        Ok(())
    }

    /// `${` or `%{` at the cursor opens an interpolation or directive; `$${` and `%%{`
    /// are text. Returns whether it consumed anything.
    fn template_sequence(&mut self) -> Result<bool, BoundError> {
        let c = self.peek(0);
        if c != b'$' && c != b'%' {
            return Ok(false);
        }
        if self.peek(1) == c && self.peek(2) == b'{' {
            self.advance(3);
            return Ok(true);
        }
        if self.peek(1) != b'{' {
            return Ok(false);
        }
        if c == b'%' {
            // A directive's body is read by different rules (no `"`, `\\` or heredoc end),
            // so the scan cannot follow it: refuse.
            return Err(BoundError::Template { line: self.line });
        }
        self.push(Frame::Interpolation)?;
        self.word = Word::None;
        self.advance(2);
        Ok(true)
    }

    fn quoted(&mut self) -> Result<(), BoundError> {
        match self.peek(0) {
            b'\\' => self.advance(2),
            b'"' => {
                self.stack.pop();
                self.advance(1);
            }
            _ => {
                if !self.template_sequence()? {
                    self.advance(1);
                }
            }
        }
        Ok(())
    }

    fn heredoc(&mut self) -> Result<(), BoundError> {
        let line_start = self.at == 0 || self.text[self.at - 1] == b'\n';
        if line_start {
            // As the parser sees it: a line that starts, after spaces and tabs, with the
            // marker ends the heredoc, and the rest of that line is expression again.
            let indent = self.text[self.at..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            let closing = match self.stack.last() {
                Some(Frame::Heredoc(marker, first))
                    if self.text[self.at + indent..].starts_with(marker) =>
                {
                    // The parser ends a heredoc on its first body line only when no
                    // later line ends it: refuse rather than guess.
                    if self.at == *first {
                        return Err(BoundError::Template { line: self.line });
                    }
                    Some(indent + marker.len())
                }
                _ => None,
            };
            if let Some(len) = closing {
                self.stack.pop();
                self.advance(len);
                return Ok(());
            }
        }
        if !self.template_sequence()? {
            self.advance(1);
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<(), BoundError> {
        let c = self.peek(0);
        let next = self.peek(1);
        let mut word = self.word;
        // `if` and `in` are tags in `for`/`%{ if }`: what follows is a new expression.
        if word == Word::Identifier && matches!(&self.text[self.word_start..self.at], b"if" | b"in")
        {
            word = Word::None;
        }
        self.word = Word::None;
        match c {
            b'#' => self.skip_line(),
            b'/' if next == b'/' => self.skip_line(),
            b'/' if next == b'*' => {
                let end = self.text[self.at + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(self.text.len(), |p| self.at + 2 + p + 2);
                self.advance(end - self.at);
            }
            b'"' => {
                self.push(Frame::Quoted)?;
                self.advance(1);
            }
            b'<' if next == b'<' => match self.heredoc_marker() {
                Some((marker, len)) => {
                    self.push(Frame::Heredoc(marker, self.at + len + 1))?;
                    // Up to the newline: the body starts on the next line.
                    self.advance(len);
                }
                None => self.operator(1)?,
            },
            b'(' | b'[' | b'{' => {
                self.push(Frame::Bracket(match c {
                    b'(' => b')',
                    b'[' => b']',
                    _ => b'}',
                }))?;
                self.advance(1);
            }
            b')' | b']' | b'}' => {
                let closes = match self.stack.last() {
                    Some(Frame::Bracket(closer)) => *closer == c,
                    Some(Frame::Interpolation) => c == b'}',
                    _ => false,
                };
                if closes {
                    self.stack.pop();
                }
                self.advance(1);
            }
            b'=' if next == b'=' || next == b'>' => {
                if next == b'=' {
                    self.operator(2)?;
                } else {
                    self.advance(2);
                }
            }
            b'!' | b'<' | b'>' if next == b'=' => self.operator(2)?,
            b'&' | b'|' => self.operator(if next == c { 2 } else { 1 })?,
            b'-' | b'+' if word == Word::Number && self.exponent_sign() => {
                self.word = Word::Number;
                self.advance(1);
            }
            b'-' if word == Word::Identifier => {
                self.word = Word::Identifier;
                self.advance(1);
            }
            b'-' | b'+' | b'*' | b'/' | b'%' | b'!' | b'<' | b'>' | b'?' => self.operator(1)?,
            b'0'..=b'9' if word != Word::Identifier => {
                self.word = Word::Number;
                self.advance(1);
            }
            b'.' if word == Word::Number => {
                self.word = Word::Number;
                self.advance(1);
            }
            c if c == b'_' || c.is_ascii_alphanumeric() || c >= 0x80 => {
                self.word = match word {
                    Word::Number => Word::Number,
                    Word::Identifier => Word::Identifier,
                    Word::None => {
                        self.word_start = self.at;
                        Word::Identifier
                    }
                };
                self.advance(1);
            }
            _ => self.advance(1),
        }
        Ok(())
    }

    /// A sign right after a number's `e` or `E`.
    fn exponent_sign(&self) -> bool {
        self.at > 0 && matches!(self.text[self.at - 1], b'e' | b'E')
    }

    fn skip_line(&mut self) {
        let end = self.text[self.at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(self.text.len(), |p| self.at + p);
        self.advance(end - self.at);
    }

    /// `<<MARKER` or `<<-MARKER` then the line's end: the marker, and the length up to
    /// the newline.
    fn heredoc_marker(&self) -> Option<(Vec<u8>, usize)> {
        let mut len = 2;
        if self.peek(len) == b'-' {
            len += 1;
        }
        let start = len;
        // Wider than an identifier (any non-ASCII byte): where this takes a marker the
        // parser does not, the parser stops at the start line.
        while matches!(self.peek(len), b'_' | b'-' | 0x80..)
            || self.peek(len).is_ascii_alphanumeric()
        {
            len += 1;
        }
        let marker = self.text[self.at + start..self.at + len].to_vec();
        if self.peek(len) == b'\r' {
            len += 1;
        }
        (!marker.is_empty() && self.peek(len) == b'\n').then_some((marker, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses on a thread with a small stack: an accepted text must fit in far less
    /// than a worker's 2 MiB. (Tests build dependencies optimised, as release does; the
    /// figures in the comments below were measured with the parser unoptimised.)
    fn parses_on_a_small_stack(text: String) {
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let _ = hcl::parse(&text);
            })
            .expect("thread")
            .join()
            .expect("the parser finished");
    }

    #[test]
    fn the_inputs_the_fuzzer_found_are_refused_before_the_parser_sees_them() {
        let found = "sgas =C0.Z[Z0.ZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0.ZZZZZZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.Z[ZZZZZ0.ZZZZZ[Z[Z0.ZZZZz.ZZZZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0.ZZZZZ[egz.Z0.ZZZZZ[Z[Z0.ZZZZZZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0";
        assert_eq!(check(found), Err(BoundError::Nesting { line: 1 }));
        // The stack overflow: a chain of operators, bare or inside a string's
        // interpolation or a heredoc.
        for text in [
            format!("a = {}x\n", "-".repeat(600)),
            format!("a = x{}\n", "+x".repeat(600)),
            format!("a = \"${{{}x}}\"\n", "!".repeat(600)),
            format!("a = <<EOT\n${{{}x}}\nEOT\n", "-".repeat(600)),
            // `in` and `if` end a word: what follows them is a new expression.
            format!("a = [for x in{}y: x]\n", "-".repeat(600)),
            format!("a = [for x in y: x if{}z]\n", "-".repeat(600)),
            format!("a = [for x in y: x if1{}z]\n", "-".repeat(600)),
            format!("a = [for x in y: <<E\nfoo\nEif{}z]\n", "-".repeat(600)),
        ] {
            assert!(
                matches!(check(&text), Err(BoundError::Operators { line: 1..=3 })),
                "{text:.40}: {:?}",
                check(&text)
            );
        }
        // A line that starts with the marker ends a heredoc, whatever follows it.
        let heredocs = format!("a = <<-e\n\ne{}x\n", "-".repeat(600));
        assert_eq!(check(&heredocs), Err(BoundError::Operators { line: 3 }));
        let brackets = format!("a = <<-e\n\n  eof{}x\n", "[".repeat(600));
        assert_eq!(check(&brackets), Err(BoundError::Nesting { line: 3 }));
        // Text the parser reads by rules the scan does not follow is refused: inside a
        // directive `\`, `"` and a heredoc's marker are text to the parser; a heredoc's
        // first line ends it only when no later line does.
        let m = "-".repeat(600);
        for text in [
            format!("a = \"{}\"\n", "%{ if x }".repeat(100)),
            format!("a = \"%{{ if true }}\\${{ {m}x }}%{{ endif }}\"\n"),
            format!("a = \"%{{ if true }}\"# ${{ {m}x }}\n%{{ endif }}\"\n"),
            format!("a = <<E\n%{{ if true }}\nE\n# ${{ {m}x }}\n%{{ endif }}\nE\n"),
            format!("a = <<E\nE# ${{ {m}x }}\nE\n"),
            format!(
                "a = <<E\nE# ${{ {}x{} }}\nE\n",
                "[".repeat(600),
                "]".repeat(600)
            ),
        ] {
            assert!(
                matches!(check(&text), Err(BoundError::Template { line: 1 | 2 })),
                "{text:.50}: {:?}",
                check(&text)
            );
        }
        for text in [
            format!("a = {}\n", "\"${".repeat(20)),
            format!("a = <<EOT\n{}\nEOT\n", "${[".repeat(20)),
        ] {
            assert!(
                matches!(check(&text), Err(BoundError::Nesting { .. })),
                "{text:.40}"
            );
        }
    }

    #[test]
    fn real_policies_and_configs_pass() {
        let policy = r#"# a [[[[[[[[[[[[[[[[[[ comment, with - and + and ? and *
// another [[[[[[[[[[[[[[[[[[ one
/* and a block ((((((((((((((((((((((( one
   over lines, ---------------------- */
path "secret/data/[[[[[[[[[[[[[[[[[[[-+*?!<>" {
  capabilities = ["read", "list"]
  allowed_parameters = { "k" = ["v\"[-", "${x}"], "*" = [] }
  min_wrapping_ttl = "1s"
  max-wrapping-ttl = "90s"
  required_parameters = ["a-b-c"]
}
path "transit/+/my-key-1e-5" { capabilities = ["update"] }
"#;
        assert_eq!(check(policy), Ok(()));
        let config = "storage \"redb\" { path = \"/var/lib/ironseal/data.redb\" }\nlistener \"tcp\" {\n  address = \"0.0.0.0:8200\"\n  tls_disable = true\n  max_request_size = 33554432\n}\nseal \"tpm2\" { pcrs = [0, 2, 4, 7] }\nratio = 1.5e-3\nneg = -1\n";
        assert_eq!(check(config), Ok(()));
        let heredoc =
            "a = <<-EOT\n  [[[[[[[[[[[[[[[[[[[[ ------------------- $${[[[[\n  EOT\nb = 1\n";
        assert_eq!(check(heredoc), Ok(()));
        let words = "a = [for index-in in inputs: index-in if if-x]\nx-in-y = 1\n";
        assert_eq!(check(words), Ok(()));
    }

    #[test]
    fn the_bounds_are_exact() {
        let deep = format!("a = {}{}\n", "[".repeat(17), "]".repeat(17));
        assert_eq!(check(&deep), Err(BoundError::Nesting { line: 1 }));
        let ok = format!("a = {}{}\n", "[".repeat(16), "]".repeat(16));
        assert_eq!(check(&ok), Ok(()));
        let ok = format!("a = {}x\n", "-".repeat(MAX_OPERATORS));
        assert_eq!(check(&ok), Ok(()));
        let many = format!("a = {}x\n", "-".repeat(MAX_OPERATORS + 1));
        assert_eq!(check(&many), Err(BoundError::Operators { line: 1 }));
        // Lines are counted through strings, comments and heredocs.
        let late = format!("# x\n/*\n*/\nb = \"\n\"\nc = <<E\n\nE\n{}", many);
        assert_eq!(check(&late), Err(BoundError::Operators { line: 9 }));
    }

    #[test]
    fn what_the_bounds_accept_parses_on_a_small_stack() {
        // The costliest frames and operators, as many as the bounds let through.
        let ops = MAX_OPERATORS;
        let half = MAX_NESTING / 2;
        for text in [
            format!("a = {}x\n", "-".repeat(ops)),
            format!("a = x{}\n", "?x:x".repeat(ops)),
            format!("a = {}", "\"${".repeat(half)),
            format!("a = {}", "f(".repeat(MAX_NESTING - 1)),
            format!("a = {}", "{a=".repeat(MAX_NESTING - 1)),
            format!("a = {}{}x", "[".repeat(MAX_NESTING - 1), "!".repeat(ops)),
            format!(
                "a = \"{}{}\"",
                "${f(".repeat((MAX_NESTING - 2) / 2),
                "!".repeat(ops)
            ),
            // The costliest frame measured (about 31 KiB each, unoptimised).
            format!(
                "a = {}{}x{}",
                "[for x in ".repeat(MAX_NESTING - 1),
                "!".repeat(ops),
                ": x]".repeat(MAX_NESTING - 1)
            ),
            format!(
                "a = [for x in {}y: x if {}z]",
                "-".repeat(ops / 2),
                "-".repeat(ops / 2)
            ),
        ] {
            assert!(check(&text).is_ok(), "{text:.60}: {:?}", check(&text));
            parses_on_a_small_stack(text);
        }
    }
}
