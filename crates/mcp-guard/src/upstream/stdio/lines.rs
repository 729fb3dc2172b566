//! Reading the child's output one bounded line at a time, and what can
//! still be learned from a line too long to keep.
//!
//! A stdout line over `upstream.max_message_size` is skipped without being
//! buffered. If it was the response to a pending request, dropping it
//! silently would leave that request waiting for its timeout; so while the
//! line streams past, [`IdScan`] watches its top-level `"id"` (a few bytes
//! of state, no buffer) and the request is answered with an error at once.

use mcp_guard_layers::jsonrpc::{MessageKind, RequestId, classify_message};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`read_line`] read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line, in the buffer (without its `\n`).
    Complete,
    /// A line longer than the cap, skipped.
    TooLong,
    /// End of stream.
    End,
}

/// Reads one `\n`-terminated line into `buf` (without the `\n`).
///
/// A line longer than `max` is skipped whole without buffering it; its
/// bytes go through `scan` when one is given. A final line without `\n`
/// still counts as a line.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    mut scan: Option<&mut IdScan>,
) -> std::io::Result<Line> {
    buf.clear();
    let mut overflow = false;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (seen_any, overflow) {
                (false, _) => Line::End,
                (true, false) => Line::Complete,
                (true, true) => Line::TooLong,
            });
        }
        seen_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if overflow {
            if let Some(scan) = scan.as_deref_mut() {
                scan.feed(chunk);
            }
        } else if buf.len() + chunk.len() > max {
            overflow = true;
            if let Some(scan) = scan.as_deref_mut() {
                *scan = IdScan::default();
                scan.feed(buf);
                scan.feed(chunk);
            }
            buf.clear();
        } else {
            buf.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if overflow { Line::TooLong } else { Line::Complete });
        }
    }
}

/// Longest id text kept: MCP ids are short strings or integers.
const ID_MAX: usize = 128;

/// Where the scan is in the top-level object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Member {
    /// Before a key (after `{` or `,`), or reading one.
    #[default]
    Key,
    /// After the `:` of the key `"id"`: its value is kept.
    Id,
    /// After the `:` of any other key.
    Other,
}

/// An incremental scanner over one JSON object's bytes that notes the
/// text of its top-level `"id"` and whether it has a top-level `"method"`
/// (then it is a request or notification, not a response). Nested values
/// and string contents are skipped by tracking depth and quoting only, so a
/// line of any length costs a few bytes of state. Keys written with escapes
/// are not recognised: such a line's request just waits for its timeout.
#[derive(Debug, Default)]
pub(super) struct IdScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    member: Member,
    /// The current top-level key, if short enough to be `id` or `method`.
    key: [u8; 8],
    key_len: usize,
    key_long: bool,
    id: Vec<u8>,
    id_too_long: bool,
    has_method: bool,
}

impl IdScan {
    /// Scans the next bytes of the line.
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        let top = self.depth == 1;
        if self.member == Member::Id && (self.in_string || !top || !matches!(b, b',' | b'}')) {
            // The id's value, whatever it is, up to the `,` or `}` that ends
            // it; an object or array id is refused when classified.
            if self.id.len() < ID_MAX {
                self.id.push(b);
            } else {
                self.id_too_long = true;
            }
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
                self.key_long |= top && self.member == Member::Key;
            } else if b == b'"' {
                self.in_string = false;
            } else if top && self.member == Member::Key {
                match self.key.get_mut(self.key_len) {
                    Some(slot) => {
                        *slot = b;
                        self.key_len += 1;
                    }
                    None => self.key_long = true,
                }
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if top && self.member == Member::Key {
                    self.key_len = 0;
                    self.key_long = false;
                }
            }
            b'{' | b'[' => self.depth = self.depth.saturating_add(1),
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            b':' if top && self.member == Member::Key => {
                let key = if self.key_long { None } else { self.key.get(..self.key_len) };
                self.member = match key {
                    Some(b"id") => {
                        self.id.clear();
                        Member::Id
                    }
                    Some(b"method") => {
                        self.has_method = true;
                        Member::Other
                    }
                    _ => Member::Other,
                };
            }
            b',' if top => self.member = Member::Key,
            _ => {}
        }
    }

    /// The id of the line, when it looks like a response (an id and no
    /// method). `None` for anything else, and for an id that is not a valid
    /// JSON-RPC id.
    pub(super) fn response_id(&self) -> Option<RequestId> {
        if self.has_method || self.id.is_empty() || self.id_too_long {
            return None;
        }
        let id = std::str::from_utf8(&self.id).ok()?.trim();
        // Classify a stand-in response: the one place ids are validated and made canonical.
        let stand_in = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":0}}"#);
        let info = classify_message(&stand_in).ok()?;
        (info.kind == MessageKind::Response).then_some(info.id).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn lines_are_bounded_and_skipped_whole() {
        let input = format!("short\n{}\nafter\nlast", "x".repeat(100));
        let mut reader = BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut buf, 10, None).await.expect("in-memory read");
            if line == Line::End {
                break;
            }
            out.push((line, String::from_utf8(buf.clone()).expect("utf8")));
        }
        assert_eq!(
            out,
            [
                (Line::Complete, "short".into()),
                (Line::TooLong, String::new()),
                (Line::Complete, "after".into()),
                (Line::Complete, "last".into())
            ]
        );
    }

    /// The id the scanner finds in `line`, fed in chunks of `step` bytes.
    fn scanned(line: &str, step: usize) -> Option<String> {
        let mut scan = IdScan::default();
        for chunk in line.as_bytes().chunks(step) {
            scan.feed(chunk);
        }
        scan.response_id().map(|id| id.as_json().to_owned())
    }

    #[test]
    fn the_top_level_id_of_a_response_is_found_anywhere() {
        let big = "y".repeat(300);
        let cases: [(String, Option<&str>); 9] = [
            (format!(r#"{{"jsonrpc":"2.0","id":7,"result":{{"text":"{big}"}}}}"#), Some("7")),
            // Where TypeScript servers put it: after the result, with decoys nested inside.
            (
                format!(r#"{{"result":{{"id":1,"t":"{big}","x":[{{"id":2}}]}},"jsonrpc":"2.0","id":"abc"}}"#),
                Some("\"abc\""),
            ),
            (format!(r#"{{ "id" : 42 , "error":{{"code":1,"message":"{big}"}},"jsonrpc":"2.0"}}"#), Some("42")),
            // Quotes, braces and escaped quotes inside strings do not confuse it.
            (format!(r#"{{"result":"a\"}},\"id\":9 {{{big}","id":3,"jsonrpc":"2.0"}}"#), Some("3")),
            // Requests and notifications from the child are not responses.
            (format!(r#"{{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":"{big}"}}"#), None),
            (format!(r#"{{"method":"notifications/message","params":{{"id":5,"d":"{big}"}}}}"#), None),
            // No valid id: nothing to answer.
            (format!(r#"{{"jsonrpc":"2.0","id":{{"x":1}},"result":"{big}"}}"#), None),
            (format!(r#"{{"jsonrpc":"2.0","id":"{big}","result":1}}"#), None),
            (format!("not json at all {big}"), None),
        ];
        for (line, want) in &cases {
            for step in [1, 7, 4096] {
                assert_eq!(scanned(line, step).as_deref(), *want, "step {step}: {}", &line[..60.min(line.len())]);
            }
        }
    }

    #[tokio::test]
    async fn an_oversized_line_is_scanned_from_its_first_byte() {
        let line = format!(r#"{{"jsonrpc":"2.0","id":12,"result":"{}"}}"#, "z".repeat(200));
        let input = format!("{line}\nnext\n");
        let mut reader = BufReader::with_capacity(32, input.as_bytes());
        let mut buf = Vec::new();
        let mut scan = IdScan::default();
        assert_eq!(read_line(&mut reader, &mut buf, 64, Some(&mut scan)).await.expect("read"), Line::TooLong);
        assert_eq!(scan.response_id().map(|id| id.as_json().to_owned()).as_deref(), Some("12"));
        assert_eq!(read_line(&mut reader, &mut buf, 64, Some(&mut scan)).await.expect("read"), Line::Complete);
        assert_eq!(buf, b"next");
    }
}
