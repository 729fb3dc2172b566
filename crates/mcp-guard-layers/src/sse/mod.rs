//! An incremental parser for server-sent events (the WHATWG HTML "event
//! stream" format, `text/event-stream`).
//!
//! MCP's Streamable HTTP transport can answer with an SSE stream carrying the
//! server's JSON-RPC messages. To see those messages a gateway runs
//! [`SseParser`] over the response body as it streams through and forwards
//! the bytes themselves unchanged: the parser only reads. Chunks arrive split
//! anywhere, so the parser keeps the state between them (a partial line, a CR
//! whose LF may start the next chunk, a byte order mark cut in two).
//!
//! The upstream server is not trusted, so the parser is built for hostile
//! input:
//!
//! - Memory is bounded. At most `max_event_size` bytes are held for one event:
//!   its unfinished line plus the data, event type and id kept so far. Every
//!   line but a comment counts, since it must be held to learn its field name;
//!   comments are skipped without being held. A bigger event is reported once
//!   with [`SseError::EventTooLarge`] and skipped up to the blank line that ends
//!   it; the events after it parse normally. Buffers grown by one large event
//!   are given back after it.
//! - Time is linear: lines are found with slice searches that look at each
//!   byte a fixed number of times, and allocations happen per line or per
//!   event, never per byte.
//! - Nothing panics and bad text is no error: invalid UTF-8 becomes U+FFFD, as
//!   with the spec's decoder.
//!
//! Chunking never changes the result: a stream gives the same events whether
//! it arrives whole or one byte at a time. Only which [`SseParser::feed`] call
//! reports an `EventTooLarge` depends on where the chunks split.
//!
//! The parser follows the spec's "interpreting an event stream" steps, with
//! one addition for a gateway's sake: [`SseEvent::id`] and [`SseEvent::retry`]
//! are the fields written in that event's own block, so a gateway sees what
//! each event carried. The spec's `lastEventId`, which carries the last id
//! forward from block to block, is [`SseParser::last_event_id`], and the
//! reconnection time is [`SseParser::retry`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A UTF-8 byte order mark, skipped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Capacity a buffer may keep between events. A buffer grown past it by one
/// large event is shrunk back, so an idle long-lived stream holds little.
const RETAINED_CAPACITY: usize = 8 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type from the `event` field; `None` means the default type,
    /// `message`.
    pub event: Option<String>,
    /// The `data` lines joined by `\n`.
    pub data: String,
    /// The `id` field of this event's block, if it had one. `Some("")` (from
    /// `id:` or `id`) resets the last event id.
    pub id: Option<String>,
    /// The `retry` field of this event's block, in milliseconds, if it had a
    /// valid one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// Writes this event to `out` in wire form with `data` as its data
    /// (pass `self.data` to re-emit it unchanged, or a rewritten payload):
    /// `event`, `id` and `retry` are kept, so `Last-Event-ID` resumption
    /// still works on a stream something in between re-encoded.
    pub fn encode_with_data(&self, data: &[u8], out: &mut BytesMut) {
        if let Some(kind) = &self.event {
            put_field(out, b"event", kind.as_bytes());
        }
        if let Some(id) = &self.id {
            put_field(out, b"id", id.as_bytes());
        }
        if let Some(retry) = self.retry {
            put_field(out, b"retry", retry.to_string().as_bytes());
        }
        // The parser joined data lines with LF and no value holds CR: split back.
        for line in data.split(|&b| b == b'\n') {
            put_field(out, b"data", line);
        }
        out.put_u8(b'\n');
    }
}

/// Where a stream that something in between rewrites starts, for the
/// client. A client skips a byte order mark only at the very start of what
/// it receives, so bytes passed through unchanged may become that start only
/// if they were the upstream's start too (which [`SseParser`] read the same
/// way); otherwise a BOM there would turn a line the parser ignored into an
/// event the client reads, unchecked. Used by every rewriter of SSE answers.
#[derive(Debug, Default)]
pub struct StreamStart {
    read: bool,
    sent: bool,
}

impl StreamStart {
    /// Call with every chunk from the upstream, before feeding the parser;
    /// true when it is the upstream's first data.
    pub fn read(&mut self, chunk: &[u8]) -> bool {
        let first = !self.read;
        self.read |= !chunk.is_empty();
        first
    }

    /// `chunk`, to pass through unchanged (`upstream_start` from [`read`](Self::read)):
    /// behind a comment line when it would otherwise start a client's stream
    /// that the upstream did not start with it.
    pub fn pass_through(&mut self, chunk: Bytes, upstream_start: bool) -> Bytes {
        if std::mem::replace(&mut self.sent, true) || upstream_start {
            return chunk;
        }
        let mut out = BytesMut::with_capacity(chunk.len() + 2);
        out.extend_from_slice(b":\n");
        out.extend_from_slice(&chunk);
        out.freeze()
    }

    /// Something the rewriter wrote itself was sent (it never starts with a BOM).
    pub fn sent(&mut self) {
        self.sent = true;
    }
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.put_u8(b'\n');
}

/// Why [`SseParser::feed`] dropped an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// An event held more than `max_event_size` bytes. It is dropped whole and
    /// the parser skips to the blank line that ends it.
    EventTooLarge,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge => f.write_str("server-sent event exceeds the size limit"),
        }
    }
}

impl std::error::Error for SseError {}

/// Parses a `text/event-stream` body fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_size: usize,
    /// While the start of the stream is undecided: how many bytes of a BOM
    /// have been seen. `None` once past the start.
    bom_seen: Option<usize>,
    /// The last chunk ended with CR: an LF opening the next one ends no line.
    after_cr: bool,
    /// The start of a line that an earlier chunk did not finish.
    line: Vec<u8>,
    /// The rest of the current line is ignored (a comment, or a line of a
    /// dropped event) and not buffered.
    skip_line: bool,
    /// An event was too large: lines are ignored until a blank line.
    discarding: bool,
    /// The fields of the current block, as raw bytes decoded at dispatch.
    /// Field names and separators are ASCII and a UTF-8 decoder ends a bad
    /// sequence at any ASCII byte, so decoding each value apart equals
    /// decoding the stream first.
    data: Vec<u8>,
    event: Vec<u8>,
    block_id: Option<Vec<u8>>,
    block_retry: Option<u64>,
    /// The spec's "last event ID string", committed when a block ends.
    last_event_id: String,
    /// The spec's reconnection time, set as soon as a `retry` line is read.
    reconnection_time: Option<u64>,
}

impl SseParser {
    /// A parser holding at most `max_event_size` bytes for one event.
    pub fn new(max_event_size: usize) -> Self {
        SseParser {
            max_event_size,
            bom_seen: Some(0),
            after_cr: false,
            line: Vec::new(),
            skip_line: false,
            discarding: false,
            data: Vec::new(),
            event: Vec::new(),
            block_id: None,
            block_retry: None,
            last_event_id: String::new(),
            reconnection_time: None,
        }
    }

    /// Feeds the next chunk of the body and appends every event it completes
    /// to `out` (which is not cleared).
    ///
    /// The whole chunk is always read. `Err(EventTooLarge)` means at least one
    /// event in it was too large and dropped; the events completed before and
    /// after it are still in `out`. The parser stays usable: a caller can keep
    /// forwarding the bytes and feeding them, and inspection resumes with the
    /// event after the oversized one.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = self.strip_bom(chunk);
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        let mut too_large = false;
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, terminator) = rest.split_at(end);
            rest = match terminator {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    // A CR ending the chunk: its LF, if any, opens the next one.
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
            too_large |= self.end_line(line, out);
        }
        if !rest.is_empty() {
            too_large |= self.partial_line(rest);
        }
        if too_large { Err(SseError::EventTooLarge) } else { Ok(()) }
    }

    /// Ends the stream. As the spec says, an event not yet closed by a blank
    /// line is discarded, whatever it held. The parser is then ready for a new
    /// stream (a reconnection): a BOM is skipped again, and
    /// [`last_event_id`](Self::last_event_id) and [`retry`](Self::retry) are
    /// kept, as an `EventSource` keeps them.
    pub fn finish(&mut self) {
        self.clear_event();
        self.discarding = false;
        self.skip_line = false;
        self.after_cr = false;
        self.bom_seen = Some(0);
    }

    /// True between events: no partial line, no field of an unfinished
    /// event, no dropped event being skipped and no start of a byte order
    /// mark is held. A chunk fed between two such points that completed no
    /// event held only comments and blank lines.
    pub fn at_event_boundary(&self) -> bool {
        // Held BOM bytes that turn out not to be one begin the first line.
        !matches!(self.bom_seen, Some(n) if n > 0)
            && self.line.is_empty()
            && !self.skip_line
            && !self.discarding
            && !self.after_cr
            && self.data.is_empty()
            && self.event.is_empty()
            && self.block_id.is_none()
            && self.block_retry.is_none()
    }

    /// The last event id, as a client would send it in `Last-Event-ID`: taken
    /// from the `id` field when a blank line ends a block (with or without
    /// data), kept across blocks; empty when none was set or an empty `id`
    /// reset it. An id inside a dropped oversized event is not taken.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time in milliseconds from the latest valid `retry`
    /// field. As the spec says it applies as soon as the line is read, even in
    /// a block that is never dispatched.
    pub fn retry(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// Skips a BOM at the start of the stream, which may arrive split.
    fn strip_bom<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let Some(seen) = self.bom_seen else { return chunk };
        let missing = BOM.get(seen..).unwrap_or_default();
        let n = missing.len().min(chunk.len());
        if chunk.iter().zip(missing).any(|(a, b)| a != b) {
            // Not a BOM: the bytes held back begin the first line.
            self.bom_seen = None;
            self.line.extend_from_slice(BOM.get(..seen).unwrap_or_default());
            return chunk;
        }
        self.bom_seen = if n == missing.len() { None } else { Some(seen + n) };
        chunk.get(n..).unwrap_or_default()
    }

    /// A line ended; `tail` is the part of it in this chunk. Returns true if
    /// the event became too large.
    fn end_line(&mut self, tail: &[u8], out: &mut Vec<SseEvent>) -> bool {
        if std::mem::take(&mut self.skip_line) {
            return false;
        }
        if self.discarding {
            // Nothing is buffered while discarding: the line is `tail` alone.
            self.discarding = !tail.is_empty();
            return false;
        }
        if self.line.is_empty() {
            return self.process_line(tail, out);
        }
        if !self.fits(self.line.len().saturating_add(tail.len())) {
            self.drop_event();
            return true;
        }
        let mut line = std::mem::take(&mut self.line);
        line.extend_from_slice(tail);
        let too_large = self.process_line(&line, out);
        line.clear();
        line.shrink_to(RETAINED_CAPACITY);
        self.line = line;
        too_large
    }

    /// The chunk ended inside a line: keep its start, unless it is ignored.
    fn partial_line(&mut self, part: &[u8]) -> bool {
        if self.skip_line {
            return false;
        }
        if self.discarding || (self.line.is_empty() && part.first() == Some(&b':')) {
            self.skip_line = true;
            return false;
        }
        if !self.fits(self.line.len().saturating_add(part.len())) {
            self.drop_event();
            self.skip_line = true;
            return true;
        }
        self.line.extend_from_slice(part);
        false
    }

    /// Interprets one complete line. Returns true if the event became too large.
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> bool {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            None if line.is_empty() => {
                self.dispatch(out);
                return false;
            }
            Some(0) => return false,
            Some(colon) => {
                let (name, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // Checked before storing anything: what is stored never exceeds the limit.
        if !self.fits(line.len()) {
            self.drop_event();
            return true;
        }
        match name {
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"id" if !value.contains(&0) => self.block_id = Some(value.to_vec()),
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.block_retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            _ => {}
        }
        false
    }

    /// A blank line: commit the id, and emit the event if it has data.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let id = self.block_id.take().map(|id| lossy(&id));
        if let Some(id) = &id {
            self.last_event_id.clone_from(id);
        }
        let retry = self.block_retry.take();
        if !self.data.is_empty() {
            // Every data line appended an LF; the spec drops the last one.
            self.data.pop();
            let event = (!self.event.is_empty()).then(|| lossy(&self.event));
            out.push(SseEvent { event, data: lossy(&self.data), id, retry });
        }
        self.clear_event();
    }

    /// Whether `extra` more bytes fit beside what the event holds.
    fn fits(&self, extra: usize) -> bool {
        let held =
            self.data.len().saturating_add(self.event.len()).saturating_add(self.block_id.as_ref().map_or(0, Vec::len));
        held.saturating_add(extra) <= self.max_event_size
    }

    /// The event is too large: forget it and skip to its blank line.
    fn drop_event(&mut self) {
        self.clear_event();
        self.discarding = true;
    }

    fn clear_event(&mut self) {
        for buffer in [&mut self.line, &mut self.data, &mut self.event] {
            buffer.clear();
            buffer.shrink_to(RETAINED_CAPACITY);
        }
        self.block_id = None;
        self.block_retry = None;
    }
}

/// A `retry` value: ASCII digits only, at least one. A value too large for
/// `u64` is ignored too, as Chromium does.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests;
