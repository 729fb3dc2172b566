//! A minimal HTTP/1.1 client: exactly what the soak sends, byte for byte.
//!
//! A general client would not send half of the hostile traffic (a forged
//! `Host`, a declared body never sent, a chunked oversize body), and the
//! testkit has no HTTP client dependency outside its tests. Keep-alive
//! connections are pooled, so the gateway's open file descriptors track
//! leaks rather than the driver's connection churn.

use std::{net::SocketAddr, sync::Mutex};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// Longest response body read; the soak's answers are a few KiB.
const MAX_BODY: u64 = 8 << 20;
/// Longest status or header line.
const MAX_LINE: u64 = 16 << 10;
/// Chunk size of a chunked request body.
const CHUNK: usize = 64 << 10;

/// What follows the request head.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Body<'a> {
    /// No body (no `Content-Length` either).
    Empty,
    /// `Content-Length` and the bytes.
    Bytes(&'a [u8]),
    /// `Transfer-Encoding: chunked`: the server cannot know the size up front.
    Chunked(&'a [u8]),
    /// A `Content-Length` of this many bytes, none of them sent: the answer
    /// must come before the body, as an attacker would hope it does not.
    DeclaredOnly(usize),
}

/// One request to the client's endpoint path.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'static str,
    /// The `Host` header; the real authority unless forging it.
    pub(crate) host: &'a str,
    pub(crate) headers: &'a [(&'static str, &'a str)],
    pub(crate) body: Body<'a>,
}

/// A complete response (the body read to its end).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first header of this (lower-case) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every JSON-RPC message in the body: one JSON value (or a batch) for
    /// `application/json`, each event's data for `text/event-stream`.
    pub(crate) fn messages(&self) -> anyhow::Result<Vec<Value>> {
        let content_type = self.header("content-type").unwrap_or("");
        if content_type.starts_with("text/event-stream") {
            return sse_messages(&self.body);
        }
        match serde_json::from_slice(&self.body).context("body is not JSON")? {
            Value::Array(batch) => Ok(batch),
            one => Ok(vec![one]),
        }
    }
}

/// The data of each event, parsed as JSON; events without data (rmcp's
/// priming events carry only an id and a retry) are skipped.
fn sse_messages(body: &[u8]) -> anyhow::Result<Vec<Value>> {
    let text = std::str::from_utf8(body).context("event stream is not UTF-8")?;
    let mut out = Vec::new();
    let mut data = String::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !data.is_empty() {
                out.push(serde_json::from_str(&data).context("event data is not JSON")?);
                data.clear();
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    if !data.is_empty() {
        out.push(serde_json::from_str(&data).context("event data is not JSON")?);
    }
    Ok(out)
}

type Conn = BufReader<TcpStream>;

/// A failed exchange; `stale` when nothing of a response arrived on a
/// pooled connection, which the server may have closed while it was idle.
struct Failure {
    stale: bool,
    error: anyhow::Error,
}

/// Connections to one endpoint.
#[derive(Debug)]
pub(crate) struct Client {
    addr: SocketAddr,
    path: String,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr, path: String, max_idle: usize) -> Self {
        Client { addr, path, idle: Mutex::new(Vec::new()), max_idle }
    }

    /// Sends `req` and reads the whole response. A request with a hostile
    /// body gets a connection of its own, closed afterwards: the server may
    /// stop reading it, and its leftovers must not poison a pooled one.
    pub(crate) async fn send(&self, req: &Request<'_>) -> anyhow::Result<Response> {
        let poolable = matches!(req.body, Body::Empty | Body::Bytes(_));
        if poolable && let Some(conn) = self.take() {
            match self.exchange(conn, req).await {
                Ok((response, conn)) => {
                    self.put(conn);
                    return Ok(response);
                }
                Err(f) if f.stale => {}
                Err(f) => return Err(f.error),
            }
        }
        let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connect {}", self.addr))?;
        // Small requests written whole: Nagle would only add delay.
        stream.set_nodelay(true)?;
        let (response, conn) = self.exchange(BufReader::new(stream), req).await.map_err(|f| f.error)?;
        if poolable {
            self.put(conn);
        }
        Ok(response)
    }

    /// Closes the idle connections.
    pub(crate) fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn take(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop()
    }

    fn put(&self, conn: Option<Conn>) {
        if let Some(conn) = conn {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }

    /// One request and its response; the connection comes back when it may
    /// carry another.
    async fn exchange(&self, mut conn: Conn, req: &Request<'_>) -> Result<(Response, Option<Conn>), Failure> {
        let fail = |stale| move |error| Failure { stale, error };
        write_request(conn.get_mut(), &self.path, req).await.map_err(fail(true))?;
        let (status, headers) = read_head(&mut conn).await?;
        let body = read_body(&mut conn, req.method, status, &headers).await.map_err(fail(false))?;
        let close = matches!(req.body, Body::DeclaredOnly(_))
            || body.1
            || headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        Ok((Response { status, headers, body: body.0 }, (!close).then_some(conn)))
    }
}

async fn write_request(stream: &mut TcpStream, path: &str, req: &Request<'_>) -> anyhow::Result<()> {
    let mut head = format!("{} {path} HTTP/1.1\r\nhost: {}\r\n", req.method, req.host);
    for (name, value) in req.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    match req.body {
        Body::Empty => {}
        Body::Bytes(b) => head.push_str(&format!("content-length: {}\r\n", b.len())),
        Body::DeclaredOnly(n) => head.push_str(&format!("content-length: {n}\r\n")),
        Body::Chunked(_) => head.push_str("transfer-encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    match req.body {
        Body::Bytes(b) => {
            bytes.extend_from_slice(b);
            stream.write_all(&bytes).await?;
        }
        Body::Chunked(b) => {
            stream.write_all(&bytes).await?;
            for chunk in b.chunks(CHUNK) {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                stream.write_all(chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Body::Empty | Body::DeclaredOnly(_) => stream.write_all(&bytes).await?,
    }
    Ok(())
}

async fn read_line(conn: &mut Conn, line: &mut String) -> anyhow::Result<usize> {
    line.clear();
    let n = (&mut *conn).take(MAX_LINE).read_line(line).await?;
    if n > 0 && !line.ends_with('\n') {
        bail!("line longer than {MAX_LINE} bytes or cut short");
    }
    Ok(n)
}

/// The status and headers (lower-case names), skipping interim 1xx answers.
async fn read_head(conn: &mut Conn) -> Result<(u16, Vec<(String, String)>), Failure> {
    let mut line = String::new();
    let mut first = true;
    loop {
        // Nothing at all on a reused connection: the server closed it idle.
        let n = read_line(conn, &mut line).await.map_err(|error| Failure { stale: first, error })?;
        if n == 0 {
            return Err(Failure { stale: first, error: anyhow!("connection closed before a response") });
        }
        first = false;
        let fail = |error| Failure { stale: false, error };
        let status = parse_status(&line).map_err(fail)?;
        let mut headers = Vec::new();
        loop {
            if read_line(conn, &mut line).await.map_err(fail)? == 0 {
                return Err(fail(anyhow!("connection closed in the response head")));
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            let (name, value) = l.split_once(':').ok_or_else(|| fail(anyhow!("bad header line {l:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        if !(100..200).contains(&status) {
            return Ok((status, headers));
        }
    }
}

fn parse_status(line: &str) -> anyhow::Result<u16> {
    let mut parts = line.split_ascii_whitespace();
    match (parts.next(), parts.next().and_then(|s| s.parse().ok())) {
        (Some(v), Some(status)) if v.starts_with("HTTP/1.") => Ok(status),
        _ => bail!("bad status line {:?}", line.trim_end()),
    }
}

/// The body, and whether it ran to the end of the connection.
async fn read_body(
    conn: &mut Conn,
    method: &str,
    status: u16,
    headers: &[(String, String)],
) -> anyhow::Result<(Vec<u8>, bool)> {
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok((Vec::new(), false));
    }
    if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        return read_chunked(conn).await.map(|b| (b, false));
    }
    if let Some(len) = header("content-length") {
        let len: u64 = len.parse().with_context(|| format!("bad content-length {len:?}"))?;
        if len > MAX_BODY {
            bail!("response body of {len} bytes");
        }
        let mut body = vec![0; usize::try_from(len)?];
        conn.read_exact(&mut body).await?;
        return Ok((body, false));
    }
    let mut body = Vec::new();
    read_capped(&mut *conn, &mut body, MAX_BODY).await?;
    Ok((body, true))
}

async fn read_chunked(conn: &mut Conn) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        if read_line(conn, &mut line).await? == 0 {
            bail!("connection closed inside a chunked body");
        }
        let size = line.trim_end_matches(['\r', '\n']).split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size.trim(), 16).with_context(|| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers, then the blank line.
            while read_line(conn, &mut line).await? > 0 && !line.trim_end_matches(['\r', '\n']).is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            bail!("chunked response body over {MAX_BODY} bytes");
        }
        let before = body.len();
        read_capped(&mut *conn, &mut body, size).await?;
        if (body.len() - before) as u64 != size {
            bail!("connection closed inside a chunk");
        }
        let mut crlf = [0; 2];
        conn.read_exact(&mut crlf).await?;
    }
}

/// Appends exactly `n` bytes, or up to the end of the stream when `n` is
/// the cap of a body that runs to the close.
async fn read_capped<R: AsyncRead + Unpin>(r: R, out: &mut Vec<u8>, n: u64) -> anyhow::Result<()> {
    r.take(n).read_to_end(out).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    #[test]
    fn event_data_is_parsed_and_priming_events_skipped() {
        let body = b"id: 0\nretry: 3000\ndata: \n\ndata: {\"a\":1}\r\n\r\nevent: message\ndata: {\"b\":\ndata: 2}\n\n";
        let messages = sse_messages(body).unwrap();
        assert_eq!(messages, vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]);
        assert!(sse_messages(b"data: {not json\n\n").is_err());
    }

    /// A server that answers each request on one connection with the next
    /// canned response, recording what it read.
    async fn server(responses: Vec<&'static [u8]>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for response in responses {
                let mut buf = [0; 4096];
                // Each test request is one small write.
                let n = stream.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                stream.write_all(response).await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    #[tokio::test]
    async fn chunked_and_sized_bodies_on_one_kept_alive_connection() {
        let (addr, task) = server(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n7\r\ndata: 1\r\n2\r\n\n\n\r\n0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n{}",
        ])
        .await;
        let client = Client::new(addr, "/mcp".into(), 4);
        let req = |host| Request { method: "POST", host, headers: &[("x-a", "b")], body: Body::Bytes(b"{}") };
        let first = client.send(&req("h:1")).await.unwrap();
        assert_eq!((first.status, first.messages().unwrap()), (200, vec![serde_json::json!(1)]));
        let second = client.send(&req("evil.example")).await.unwrap();
        assert_eq!((second.status, second.body.as_slice()), (403, &b"{}"[..]));
        let seen = String::from_utf8(task.await.unwrap()).unwrap();
        assert_eq!(seen.matches("POST /mcp HTTP/1.1\r\nhost: ").count(), 2, "both on one connection: {seen}");
        assert!(seen.contains("host: evil.example\r\nx-a: b\r\ncontent-length: 2\r\n\r\n{}"), "{seen}");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let (addr, _task) = server(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"]).await;
        let client = Client::new(addr, "/".into(), 4);
        let req = Request { method: "GET", host: "h", headers: &[], body: Body::Empty };
        // The server task ends and closes the connection after writing.
        assert!(client.send(&req).await.is_err());
    }
}
