//! Stack traces in response bodies: servers that leak them tell an attacker
//! their language, framework, file layout and sometimes their secrets.

use super::client::shorten;

/// The first line of `body` that looks like a stack trace, if any: Python,
/// Java, Rust, Node.js and Go traces, also inside JSON strings (where line
/// breaks are `\n` escapes).
pub(crate) fn stack_trace(body: &[u8]) -> Option<String> {
    const MARKERS: &[&str] =
        &["Traceback (most recent call last)", "at java.", "panicked at", "node:internal", "stack backtrace"];
    let text = String::from_utf8_lossy(body).replace("\\n", "\n").replace("\\t", "\t");
    for line in text.lines() {
        let found = MARKERS.iter().any(|m| line.contains(m)) || is_frame_line(line) || is_goroutine(line);
        if found {
            return Some(shorten(line.trim(), 120));
        }
    }
    None
}

/// `    at name (/path/file.js:10:5)`: an indented `at` with a `file:line`.
fn is_frame_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("    ").map(str::trim_start).and_then(|l| l.strip_prefix("at ")) else {
        return false;
    };
    rest.split(':').skip(1).any(|part| part.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

/// `goroutine 1 [running]:`, Go's panic output.
fn is_goroutine(line: &str) -> bool {
    line.trim_start()
        .strip_prefix("goroutine ")
        .and_then(|rest| rest.split_once(' '))
        .is_some_and(|(n, tail)| n.parse::<u64>().is_ok() && tail.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_traces_are_recognised() {
        let traces: &[&[u8]] = &[
            b"Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>",
            b"java.lang.NullPointerException\n\tat java.base/java.util.Objects.requireNonNull(Objects.java:209)",
            b"thread 'main' panicked at src/main.rs:2:5:\nboom",
            b"Error: x\n    at Object.<anonymous> (/srv/app/index.js:10:15)\n    at Module._compile (node:internal/modules/cjs/loader:1256:14)",
            b"{\"error\":\"TypeError: x\\n    at handler (/app/server.js:42:7)\"}",
            b"stack backtrace:\n   0: rust_begin_unwind",
            b"panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()",
        ];
        for trace in traces {
            assert!(stack_trace(trace).is_some(), "{}", String::from_utf8_lossy(trace));
        }
        let clean: &[&[u8]] = &[
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32700,\"message\":\"Parse error at line 1 column 5\"}}",
            b"Bad Request: look at the docs",
            b"    at least one of: 2 things",
            b"",
            b"\xff\xfe not utf-8",
        ];
        for body in clean {
            assert_eq!(stack_trace(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
