use super::*;

const LIMIT: usize = 1024;

fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SseEvent {
    SseEvent { event: event.map(Into::into), data: data.into(), id: id.map(Into::into), retry }
}

fn data(data: &str) -> SseEvent {
    ev(None, data, None, None)
}

/// Everything a stream produced.
#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<SseEvent>,
    errors: usize,
    last_event_id: String,
    retry: Option<u64>,
}

/// Feeds `chunks` to a fresh parser, then ends the stream.
fn run<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut parser = SseParser::new(max);
    let (mut events, mut errors) = (Vec::new(), 0);
    for chunk in chunks {
        if parser.feed(chunk, &mut events).is_err() {
            errors += 1;
        }
    }
    parser.finish();
    Run { events, errors, last_event_id: parser.last_event_id().into(), retry: parser.retry() }
}

/// The events of `input`, checking that byte-by-byte feeding agrees.
fn events(input: &[u8]) -> Vec<SseEvent> {
    let whole = run(LIMIT, [input]);
    assert_eq!(run(LIMIT, input.chunks(1)), whole, "byte by byte: {:?}", String::from_utf8_lossy(input));
    assert_eq!(whole.errors, 0);
    whole.events
}

#[test]
fn line_endings() {
    let cases: &[(&str, &[u8])] = &[
        ("LF", b"data: a\n\ndata: b\n\n"),
        ("CRLF", b"data: a\r\n\r\ndata: b\r\n\r\n"),
        ("CR", b"data: a\r\rdata: b\r\r"),
        ("mixed", b"data: a\r\n\ndata: b\r\r\n"),
        ("LF then CR is two endings", b"data: a\n\rdata: b\n\n"),
    ];
    for (name, input) in cases {
        assert_eq!(events(input), [data("a"), data("b")], "{name}");
    }
}

#[test]
fn split_cr_lf_is_one_line_ending() {
    let cases: &[(&str, &[&[u8]])] = &[
        ("CR | LF", &[b"data: a\r", b"\ndata: b\r\n\r\n"]),
        ("CR | empty | LF", &[b"data: a\r", b"", b"\ndata: b\r\n\r\n"]),
        ("CR | LF alone", &[b"data: a\r", b"\n", b"data: b\r", b"\n\r", b"\n"]),
    ];
    for (name, chunks) in cases {
        assert_eq!(run(LIMIT, chunks.iter().copied()).events, [data("a\nb")], "{name}");
    }
    // A CR ending a chunk followed by a CR is still two line endings.
    assert_eq!(run(LIMIT, [&b"data: a\r"[..], b"\rdata: b\n\n"]).events, [data("a"), data("b")]);
}

#[test]
fn chunking_never_changes_the_events() {
    const STREAM: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\n\r\n\
        event: greet\r\ndata: h\xC3\xA9llo\r\ndata:  two\r\nid: 7\r\nretry: 1500\r\n\r\n\
        data: cr\xFF\rretry: 1x\rid\r\r\
        data: \xFF\n:comment\ndata: 0123456789012345678901234567890123456789\nid: 8\n\n\
        id: 9\ndata: after\n\n";
    let whole = run(32, [STREAM]);
    let want = Run {
        events: vec![
            ev(Some("greet"), "h\u{e9}llo\n two", Some("7"), Some(1500)),
            ev(None, "cr\u{FFFD}", Some(""), None),
            ev(None, "after", Some("9"), None),
        ],
        errors: 1,
        last_event_id: "9".into(),
        retry: Some(1500),
    };
    assert_eq!(whole, want);
    for size in [1, 2, 3, 7] {
        assert_eq!(run(32, STREAM.chunks(size)), want, "chunks of {size}");
    }
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let chunks = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(run(32, chunks), want, "split at {i} and {j}");
        }
    }
}

#[test]
fn bom_is_skipped_once_at_stream_start() {
    type Case<'a> = (&'a str, &'a [&'a [u8]], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        ("whole", &[b"\xEF\xBB\xBFdata: a\n\n"], &["a"]),
        ("split", &[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"], &["a"]),
        ("split with empty chunk", &[b"\xEF\xBB", b"", b"\xBF", b"data: a\n\n"], &["a"]),
        ("no BOM", &[b"data: a\n\n"], &["a"]),
        ("second BOM is text", &[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n"], &[]),
        ("partial BOM is text", &[b"\xEFdata: a\n\n"], &[]),
        ("partial BOM split is text", &[b"\xEF\xBB", b"data: a\n\n"], &[]),
        ("partial BOM is its own line", &[b"\xEF\xBB", b"\ndata: a\n\n"], &["a"]),
        ("BOM later is data", &[b"data: \xEF\xBB\xBFa\n\n"], &["\u{FEFF}a"]),
    ];
    for (name, chunks, want) in cases {
        let want: Vec<_> = want.iter().map(|d| data(d)).collect();
        assert_eq!(run(LIMIT, chunks.iter().copied()).events, want, "{name}");
    }
}

/// Found by the `sse` fuzz target: a chunk holding only the start of a BOM
/// counted as "between events", so the policy passed those bytes on as a
/// keep-alive and the client read them as the start of the next line.
#[test]
fn a_held_bom_start_is_not_an_event_boundary() {
    let mut parser = SseParser::new(LIMIT);
    let mut out = Vec::new();
    assert!(parser.at_event_boundary(), "a fresh stream");
    for (chunk, boundary) in [(&b"\xEF"[..], false), (b"\xBB", false), (b"\xBF", true), (b": ping\n", true)] {
        parser.feed(chunk, &mut out).expect("small");
        assert_eq!(parser.at_event_boundary(), boundary, "after {}", chunk.escape_ascii());
    }
    parser.finish();
    parser.feed(b"\xEF", &mut out).expect("small");
    assert!(!parser.at_event_boundary(), "a BOM start after a reconnection");
    assert!(out.is_empty());
}

#[test]
fn fields_follow_the_spec() {
    let x = |id: Option<&str>, retry: Option<u64>| ev(None, "x", id, retry);
    let cases: Vec<(&str, &[u8], Vec<SseEvent>)> = vec![
        ("comment", b": hi\ndata: a\n: there\n\n", vec![data("a")]),
        ("comment-only block", b": ping\n\n", vec![]),
        ("multi-line data", b"data: a\ndata:\ndata: b\n\n", vec![data("a\n\nb")]),
        ("only the last LF is removed", b"data: a\ndata\n\n", vec![data("a\n")]),
        ("one space is stripped", b"data:  a \n\n", vec![data(" a ")]),
        ("no space", b"data:a\n\n", vec![data("a")]),
        ("tab is kept", b"data:\ta\n\n", vec![data("\ta")]),
        ("colon in value", b"data: a: b\n\n", vec![data("a: b")]),
        ("field without colon", b"data\n\n", vec![data("")]),
        ("NUL in data is kept", b"data: a\0b\n\n", vec![data("a\0b")]),
        ("event type", b"event: add\ndata: x\n\n", vec![ev(Some("add"), "x", None, None)]),
        ("last event type wins", b"event: a\nevent: b\ndata: x\n\n", vec![ev(Some("b"), "x", None, None)]),
        ("empty event type is the default", b"event: a\nevent\ndata: x\n\n", vec![x(None, None)]),
        ("event type resets", b"event: a\ndata: x\n\ndata: x\n\n", vec![ev(Some("a"), "x", None, None), x(None, None)]),
        ("empty data is not dispatched", b"event: a\nid: 1\nretry: 5\n\ndata: x\n\n", vec![x(None, None)]),
        ("id", b"id: 1\ndata: x\n\n", vec![x(Some("1"), None)]),
        ("id with NUL is ignored", b"id: 1\nid: a\0b\ndata: x\n\n", vec![x(Some("1"), None)]),
        ("empty id", b"id\ndata: x\n\n", vec![x(Some(""), None)]),
        ("id is per block", b"id: 1\ndata: x\n\ndata: x\n\n", vec![x(Some("1"), None), x(None, None)]),
        ("retry", b"retry: 3000\ndata: x\n\n", vec![x(None, Some(3000))]),
        ("retry leading zeros", b"retry: 007\ndata: x\n\n", vec![x(None, Some(7))]),
        (
            "retry that is not only digits is ignored",
            b"retry: 12a\nretry: -1\nretry: +5\nretry: 1.5\nretry:  5\nretry:\nretry: 99999999999999999999\ndata: x\n\n",
            vec![x(None, None)],
        ),
        ("unknown fields are ignored", b"foo: bar\nDATA: a\ndata : b\ndata: x\n\n", vec![x(None, None)]),
        ("unterminated line", b"data: x", vec![]),
        ("unterminated event", b"data: x\n", vec![]),
    ];
    for (name, input, want) in cases {
        assert_eq!(events(input), want, "{name}");
    }
}

#[test]
fn last_event_id_and_retry_follow_the_spec() {
    let mut p = SseParser::new(LIMIT);
    let mut out = Vec::new();
    let mut feed = |p: &mut SseParser, chunk: &[u8]| p.feed(chunk, &mut out).map(|()| out.len());
    assert_eq!((p.last_event_id(), p.retry()), ("", None));
    assert_eq!(feed(&mut p, b"id: 1\n\n"), Ok(0));
    assert_eq!(p.last_event_id(), "1", "an id-only block sets it");
    assert_eq!(feed(&mut p, b"retry: 10\n"), Ok(0));
    assert_eq!(p.retry(), Some(10), "retry applies at once");
    assert_eq!(feed(&mut p, b"id: 2\ndata: x\n"), Ok(0));
    assert_eq!(p.last_event_id(), "1", "the id commits at the blank line");
    assert_eq!(feed(&mut p, b"\ndata: y\n\nid: a\0\n\n"), Ok(2));
    assert_eq!(p.last_event_id(), "2", "kept across blocks; an id with NUL is ignored");
    assert_eq!(feed(&mut p, b"id\n\n"), Ok(2));
    assert_eq!(p.last_event_id(), "", "an empty id resets it");
    assert_eq!(feed(&mut p, b"id: 3\nretry: 20\ndata: z"), Ok(2));
    p.finish();
    assert_eq!((p.last_event_id(), p.retry()), ("", Some(20)), "an unfinished block sets no id");
    assert_eq!(out, [ev(None, "x", Some("2"), Some(10)), data("y")]);
}

#[test]
fn oversized_event_is_dropped_and_parsing_resumes() {
    let long = format!(":{}\ndata: ok\n\n", "c".repeat(100));
    // (name, max_event_size, input, events, oversized events)
    type Case<'a> = (&'a str, usize, &'a [u8], Vec<SseEvent>, usize);
    let cases: Vec<Case<'_>> = vec![
        ("exactly the limit", 8, b"data: ab\n\n", vec![data("ab")], 0),
        ("one byte over", 7, b"data: ab\n\ndata: c\n\n", vec![data("c")], 1),
        ("accumulated data", 20, b"data: 0123456789\ndata: 0123456789\n\ndata: ok\n\n", vec![data("ok")], 1),
        ("event type and id count", 16, b"event: abcdefg\nid: 123\ndata: x\n\ndata: ok\n\n", vec![data("ok")], 1),
        ("comments do not count", 8, long.as_bytes(), vec![data("ok")], 0),
        (
            "fields after the overflow are ignored",
            8,
            b"data: long!\nevent: e\ndata: y\n\ndata: ok\n\n",
            vec![data("ok")],
            1,
        ),
        ("its id is dropped", 8, b"id: 5\ndata: long!\n\ndata: ok\n\n", vec![data("ok")], 1),
        ("events around it survive", 8, b"data: a\n\ndata: long!\n\ndata: b\n\n", vec![data("a"), data("b")], 1),
        ("unterminated", 8, b"data: a\n\ndata: long!", vec![data("a")], 1),
        ("zero limit", 0, b": hi\n\ndata\n\ndata: a\n\n", vec![], 2),
    ];
    // `errors` counts oversized events: one chunk reports them once, single bytes once each.
    for (name, max, input, want, errors) in cases {
        let whole = run(max, [input]);
        assert_eq!((&whole.events, whole.errors, whole.last_event_id.as_str()), (&want, errors.min(1), ""), "{name}");
        let bytes = run(max, input.chunks(1));
        assert_eq!((bytes.events, bytes.errors), (want, errors), "{name}: byte by byte");
    }

    // Fed a byte at a time, one call reports the event; the rest is skipped quietly.
    let mut p = SseParser::new(8);
    let mut out = Vec::new();
    let results: Vec<_> = b"data: long!\nid: 1\n\ndata: ok\n\n".iter().map(|b| p.feed(&[*b], &mut out)).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(results[8], Err(SseError::EventTooLarge), "the ninth byte goes over");
    assert_eq!((out, p.last_event_id()), (vec![data("ok")], ""));
    assert_eq!(SseError::EventTooLarge.to_string(), "server-sent event exceeds the size limit");
}

#[test]
fn invalid_utf8_is_decoded_lossily() {
    let cases: Vec<(&str, &[u8], SseEvent)> = vec![
        ("invalid bytes", b"data: \xFF\xFEa\n\n", data("\u{FFFD}\u{FFFD}a")),
        ("truncated sequence", b"data: \xE2\x82\n\n", data("\u{FFFD}")),
        ("no sequence across lines", b"data: \xE2\x82\ndata: \xAC\n\n", data("\u{FFFD}\n\u{FFFD}")),
        ("surrogate", b"data: \xED\xA0\x80\n\n", data("\u{FFFD}\u{FFFD}\u{FFFD}")),
        ("multi-byte split by chunks", "data: \u{e9}\u{20ac}\u{1F600}\n\n".as_bytes(), data("\u{e9}\u{20ac}\u{1F600}")),
        ("event type", b"event: \xC0\ndata: x\n\n", ev(Some("\u{FFFD}"), "x", None, None)),
        ("id", b"id: \xF0\x9F\x98\ndata: x\n\n", ev(None, "x", Some("\u{FFFD}"), None)),
    ];
    for (name, input, want) in cases {
        assert_eq!(events(input), [want], "{name}");
    }
}

#[test]
fn finish_discards_the_partial_event() {
    let mut p = SseParser::new(LIMIT);
    let mut out = Vec::new();
    assert_eq!(p.feed(b"data: a\n\ndata: b\n", &mut out), Ok(()));
    p.finish();
    assert_eq!(p.feed(b"id: 5\ndata: c", &mut out), Ok(()));
    p.finish();
    // A CR LF split by the end of a stream is two line endings.
    assert_eq!(p.feed(b"data: d\r", &mut out), Ok(()));
    p.finish();
    assert_eq!(p.feed(b"\ndata: e\n\n", &mut out), Ok(()));
    p.finish();
    assert_eq!(p.feed(b"\xEF\xBB\xBFdata: f\n\n", &mut out), Ok(()));
    assert_eq!(out, [data("a"), data("e"), data("f")]);
    assert_eq!(p.last_event_id(), "");

    // The end of a stream also ends the skipping of an oversized event.
    let mut p = SseParser::new(8);
    let mut out = Vec::new();
    assert_eq!(p.feed(b"data: too long\n", &mut out), Err(SseError::EventTooLarge));
    p.finish();
    assert_eq!(p.feed(b"data: g\n\n", &mut out), Ok(()));
    assert_eq!(out, [data("g")]);
}

#[test]
fn mcp_priming_event_and_message() {
    // rmcp primes a stream with an event id and retry, then sends messages
    // whose ids are `<request>/<index>`.
    let stream: &[u8] =
        b"id: 0\nretry: 3000\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\nid: 1/0\n\n";
    let want = Run {
        events: vec![
            ev(None, "", Some("0"), Some(3000)),
            ev(None, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, Some("1/0"), None),
        ],
        errors: 0,
        last_event_id: "1/0".into(),
        retry: Some(3000),
    };
    assert_eq!(run(LIMIT, [stream]), want);
    for size in [1, 2, 3, 7] {
        assert_eq!(run(LIMIT, stream.chunks(size)), want, "chunks of {size}");
    }
}

#[test]
fn random_streams_agree_across_chunkings() {
    const NAMES: &[&[u8]] = &[b"data", b"data", b"id", b"event", b"retry", b"", b"dat", b"\xEF\xBB\xBF"];
    const SEPARATORS: &[&[u8]] = &[b":", b": ", b":  ", b""];
    const VALUES: &[&[u8]] = &[b"x", b"12", b"\xFF", b"\xC3", b"\xA9", b"\0", b"\xEF\xBB\xBF", b":", b"\xC3\xA9"];
    const ENDINGS: &[&[u8]] = &[b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n"];
    // xorshift64: deterministic, so a failure replays.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).unwrap_or(0)
    };
    let (mut events, mut errors) = (0, 0);
    for case in 0..500 {
        let mut stream = Vec::new();
        for _ in 0..12 {
            stream.extend_from_slice(NAMES[next(NAMES.len())]);
            stream.extend_from_slice(SEPARATORS[next(SEPARATORS.len())]);
            for _ in 0..next(4) {
                stream.extend_from_slice(VALUES[next(VALUES.len())]);
            }
            stream.extend_from_slice(ENDINGS[next(ENDINGS.len())]);
        }
        let whole = run(12, [stream.as_slice()]);
        let bytes = run(12, stream.chunks(1));
        let mut chunks = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(next(rest.len().min(8)) + 1);
            chunks.push(chunk);
            rest = tail;
        }
        let random = run(12, chunks);
        for other in [&bytes, &random] {
            let view = |r: &Run| (r.events.clone(), r.last_event_id.clone(), r.retry);
            assert_eq!(view(other), view(&whole), "case {case}: {:?}", String::from_utf8_lossy(&stream));
            assert!(other.errors >= whole.errors && bytes.errors >= other.errors, "case {case}");
        }
        events += whole.events.len();
        errors += whole.errors;
    }
    // The streams exercise both paths: 747 events, 273 oversized.
    assert!(events > 500 && errors > 100, "{events} events, {errors} errors");
}

#[test]
fn work_is_linear_and_memory_bounded() {
    let many = b"data: x\n\n".repeat(100_000);
    let r = run(64, [many.as_slice()]);
    assert_eq!((r.events.len(), r.errors), (100_000, 0));

    // A 1 MiB line fed a byte at a time is appended, never rescanned.
    let mut big = b"data: ".to_vec();
    big.resize(1 << 20, b'a');
    big.extend_from_slice(b"\n\n");
    let mut p = SseParser::new(2 << 20);
    let mut out = Vec::new();
    for byte in big.chunks(1) {
        assert_eq!(p.feed(byte, &mut out), Ok(()));
    }
    assert_eq!(out.iter().map(|e| e.data.len()).collect::<Vec<_>>(), [(1 << 20) - 6]);
    assert!(p.line.capacity() <= RETAINED_CAPACITY && p.data.capacity() <= RETAINED_CAPACITY);

    // A line that never ends, or a comment that never ends, holds nothing past the limit.
    for (first, max_held) in [(b'a', 1024), (b':', 0)] {
        let mut p = SseParser::new(1024);
        let mut errors = 0;
        let mut chunk = [b'a'; 100];
        chunk[0] = first;
        for i in 0..10_000 {
            if p.feed(if i == 0 { &chunk } else { &[b'a'; 100] }, &mut out).is_err() {
                errors += 1;
            }
            assert!(p.line.len() <= max_held);
        }
        assert_eq!(errors, usize::from(first == b'a'));
        assert!(p.line.capacity() <= 2048);
    }
}
