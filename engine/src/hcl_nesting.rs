//! A bound in front of the `hcl` crate's parser. Its grammar backtracks, and input with
//! many unclosed brackets takes time exponential in their depth: a 327-byte server
//! config found by fuzzing kept it busy for over 30 s. Policies arrive over the API, so
//! every HCL text is held to a nesting depth no real policy or config comes near.

/// Deeper than any policy or config needs (they nest three or four levels).
pub const MAX_NESTING: usize = 16;

/// Refuses `text` when its brackets, outside strings and comments, nest deeper than
/// [`MAX_NESTING`]; the error names the line.
pub fn check(text: &str) -> Result<(), NestingError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '"' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '#' => skip_to_line_end(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'/') => skip_to_line_end(&mut chars, &mut line),
            '[' | '{' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(NestingError { line });
                }
            }
            ']' | '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn skip_to_line_end(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
    for c in chars.by_ref() {
        if c == '\n' {
            *line += 1;
            break;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("brackets nest deeper than {MAX_NESTING} levels at line {line}")]
pub struct NestingError {
    pub line: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_the_fuzzer_found_is_refused_before_the_parser_sees_it() {
        let found = "sgas =C0.Z[Z0.ZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0.ZZZZZZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.Z[ZZZZZ0.ZZZZZ[Z[Z0.ZZZZz.ZZZZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0.ZZZZZ[egz.Z0.ZZZZZ[Z[Z0.ZZZZZZZZZZ[egz.ZZ[Z0.ZZZZZ[egz.ZZZZZ[Z0.ZZZZZ[Z[Z0";
        assert_eq!(check(found), Err(NestingError { line: 1 }));
    }

    #[test]
    fn real_policies_and_brackets_in_strings_and_comments_pass() {
        let policy = "# a [[[[[[[[[[[[[[[[[[ comment\npath \"secret/data/[[[[[[[[[[[[[[[[[[[\" {\n  capabilities = [\"read\"]\n  allowed_parameters = { \"k\" = [\"v\\\"[\"] }\n}\n";
        assert_eq!(check(policy), Ok(()));
        let deep = format!("a = {}{}\n", "[".repeat(17), "]".repeat(17));
        assert_eq!(check(&deep), Err(NestingError { line: 1 }));
        let ok = format!("a = {}{}\n", "[".repeat(16), "]".repeat(16));
        assert_eq!(check(&ok), Ok(()));
    }
}
