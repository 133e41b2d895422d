//! YAML text handling: splitting a stream into documents (keeping line offsets), cleaning
//! parser messages, and reading plain scalars the way Kubernetes' Go parser does.

use std::sync::LazyLock;

use regex::Regex;

/// One YAML document of a file: its text and the 0-based line where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub(crate) line_offset: usize,
    pub(crate) text: &'a str,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// Splits a YAML stream into documents at `---` and `...` lines (column 0), keeping each
/// document's starting line so positions can be made absolute. Documents without content
/// (only comments, blank lines or directives) are dropped: empty documents are fine.
pub(crate) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut has_content = false;
    let mut byte = 0;
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") {
            if has_content {
                chunks.push(Chunk {
                    line_offset: start_line,
                    text: &text[start_byte..byte],
                });
            }
            // An empty document before this marker (comments, directives, another `---`)
            // is dropped.
            start_byte = byte;
            start_line = line_number;
            has_content = is_content(&bare[3..]);
        } else if is_marker(bare, "...") {
            let end = byte + line.len();
            if has_content {
                chunks.push(Chunk {
                    line_offset: start_line,
                    text: &text[start_byte..end],
                });
            }
            start_byte = end;
            start_line = line_number + 1;
            has_content = false;
        } else if is_content(bare) && (has_content || !bare.starts_with('%')) {
            has_content = true;
        }
        byte += line.len();
    }
    if has_content {
        chunks.push(Chunk {
            line_offset: start_line,
            text: &text[start_byte..],
        });
    }
    chunks
}

static MARK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r" at line (\d+) column (\d+)").ok());

/// A YAML error message without its (document-relative) position, other positions shifted.
pub(crate) fn yaml_message(error: &serde_yaml::Error, line_offset: usize) -> String {
    let message = error.to_string();
    let primary = error
        .location()
        .map(|location| (location.line(), location.column()));
    let Some(mark) = MARK.as_ref() else {
        return message;
    };
    let message = mark.replace_all(&message, |captures: &regex::Captures<'_>| {
        let line: usize = captures[1].parse().unwrap_or(0);
        let column: usize = captures[2].parse().unwrap_or(0);
        if Some((line, column)) == primary {
            String::new()
        } else {
            format!(" at line {} column {column}", line + line_offset)
        }
    });
    let message = message.into_owned();
    if message.starts_with("invalid type:") && message.contains("expected struct") {
        format!(
            "not a Kubernetes object ({message}); expected a mapping with apiVersion, kind, metadata and spec"
        )
    } else {
        message
    }
}

static UNEXPECTED_COLON: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"found unexpected ':'.*while scanning a plain scalar at line (\d+) column (\d+)")
        .ok()
});

/// libyaml rejects a plain scalar in a flow collection with `:` right before a flow indicator
/// (`addresses: [001:db8::]`); Kubernetes' Go YAML parser reads it as one scalar. Quotes that
/// scalar so the document parses as Kubernetes reads it; returns the new text and the
/// scalar's (document-relative) position.
pub(super) fn quote_flow_scalar(
    text: &str,
    error: &serde_yaml::Error,
) -> Option<(String, (usize, usize))> {
    let message = error.to_string();
    let captures = UNEXPECTED_COLON.as_ref()?.captures(&message)?;
    let line: usize = captures[1].parse().ok()?;
    let column: usize = captures[2].parse().ok()?;
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    let line_text = text[line_start..].split('\n').next()?;
    let start = line_text.char_indices().nth(column.checked_sub(1)?)?.0;
    let rest = &line_text[start..];
    let mut end = rest.len();
    let mut previous = ' ';
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let stop = matches!(c, ',' | '[' | ']' | '{' | '}' | '\r')
            || (c == ':' && next.is_none_or(|n| n == ' ' || n == '\t' || n == '\r'))
            || (c == '#' && (previous == ' ' || previous == '\t'));
        if stop {
            end = i;
            break;
        }
        previous = c;
    }
    let scalar = rest[..end].trim_end();
    if scalar.is_empty() || scalar.starts_with(['"', '\'']) || !scalar.contains(':') {
        return None;
    }
    let quoted = format!("\"{}\"", scalar.replace('\\', "\\\\").replace('"', "\\\""));
    let absolute = line_start + start;
    let mut fixed = String::with_capacity(text.len() + 2);
    fixed.push_str(&text[..absolute]);
    fixed.push_str(&quoted);
    fixed.push_str(&text[absolute + scalar.len()..]);
    Some((fixed, (line, column)))
}
