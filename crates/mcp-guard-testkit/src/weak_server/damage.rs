//! The middlewares that do each [`Weakness`](super::Weakness)'s damage where
//! `mcp-guard-layers` has no switch for it.

use super::*;

pub(super) async fn count(State(requests): State<Arc<AtomicUsize>>, req: Request, next: Next) -> Response {
    requests.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

pub(super) async fn server_header(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    res
}

/// Reflects the request's `Origin` (or, with `wildcard`, answers `*` with
/// credentials) on preflights, which it answers itself, and on every response.
pub(super) async fn weak_cors(State(wildcard): State<bool>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = if req.method() == Method::OPTIONS {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
        res
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    if wildcard {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    } else if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    res
}

/// A body over [`BODY_LIMIT`] (declared, or as it arrives) gets a 500.
pub(super) async fn fail_on_big_bodies(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return internal_error();
    }
    let (parts, body) = req.into_parts();
    match to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => internal_error(),
    }
}

pub(super) fn internal_error() -> Response {
    let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#;
    (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) async fn strip_challenge(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"weak\""));
    }
    res
}

pub(super) async fn ineffective_delete(req: Request, next: Next) -> Response {
    if req.method() == Method::DELETE && req.headers().contains_key("mcp-session-id") {
        return StatusCode::OK.into_response();
    }
    next.run(req).await
}

pub(super) async fn strip_version_header(mut req: Request, next: Next) -> Response {
    req.headers_mut().remove("mcp-protocol-version");
    next.run(req).await
}

pub(super) async fn strip_retry_after(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.status() == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut().remove(header::RETRY_AFTER);
    }
    res
}

/// What a POST body that is not JSON gets.
#[derive(Clone, Copy, Debug)]
pub(super) enum Malformed {
    ServerError,
    StackTrace,
    Hang,
}

const TRACEBACK: &str = "Traceback (most recent call last):
  File \"/srv/weak/app.py\", line 88, in handle_post
    message = json.loads(body)
  File \"/usr/lib/python3.11/json/__init__.py\", line 346, in loads
    return _default_decoder.decode(s)
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
";

pub(super) async fn on_malformed(State(mode): State<Malformed>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = match read(req).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    }
    match mode {
        Malformed::ServerError => internal_error(),
        Malformed::StackTrace => {
            (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/plain")], TRACEBACK).into_response()
        }
        Malformed::Hang => {
            tokio::time::sleep(HANG).await;
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

/// Reads a request body in full, as the inspection layer would (a limit
/// set further out answers 413).
pub(super) async fn read(req: Request) -> Result<(http::request::Parts, Bytes), Response> {
    let (parts, body) = req.into_parts();
    match to_bytes(body, UNBOUNDED).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(e) if is_limit_error(&e) => Err(Rejection::RequestTooLarge.into_response()),
        Err(_) => Err(Rejection::BodyIncomplete.into_response()),
    }
}

/// How [`rewrite_session_ids`] renames sessions.
#[derive(Clone, Copy, Debug)]
pub(super) enum IdStyle {
    /// `1`, `2`, `3`, …
    Sequential,
    /// `sess <upstream id>`: long and random, but with a space.
    Spaced,
}

/// Maps the upstream's session ids to weak public ones and back.
#[derive(Debug)]
pub(super) struct Rewriter {
    style: IdStyle,
    /// public → upstream, upstream → public.
    ids: Mutex<(HashMap<String, String>, HashMap<String, String>)>,
}

impl Rewriter {
    pub(super) fn new(style: IdStyle) -> Self {
        Rewriter { style, ids: Mutex::default() }
    }

    fn upstream(&self, public: &str) -> Option<String> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).0.get(public).cloned()
    }

    fn public(&self, upstream: &str) -> String {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(public) = ids.1.get(upstream) {
            return public.clone();
        }
        let public = match self.style {
            IdStyle::Sequential => (ids.0.len() + 1).to_string(),
            IdStyle::Spaced => format!("sess {upstream}"),
        };
        ids.0.insert(public.clone(), upstream.to_owned());
        ids.1.insert(upstream.to_owned(), public.clone());
        public
    }
}

pub(super) async fn rewrite_session_ids(State(ids): State<Arc<Rewriter>>, mut req: Request, next: Next) -> Response {
    let public = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok());
    if let Some(upstream) = public.and_then(|p| ids.upstream(p)).and_then(|u| HeaderValue::from_str(&u).ok()) {
        req.headers_mut().insert("mcp-session-id", upstream);
    }
    let mut res = next.run(req).await;
    let upstream = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(|u| ids.public(u));
    if let Some(public) = upstream.and_then(|p| HeaderValue::from_str(&p).ok()) {
        res.headers_mut().insert("mcp-session-id", public);
    }
    res
}

/// [`Weakness::BatchAccepted`]: a JSON array is split into its messages,
/// each served on its own by `inner` (so the batch rule never sees a batch),
/// and the answers returned as one JSON array.
pub(super) async fn serve_batch<S>(inner: S, req: Request) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    if req.method() != Method::POST {
        return inner.oneshot(req).await;
    }
    let (parts, body) = match read(req).await {
        Ok(read) => read,
        Err(refusal) => return Ok(refusal),
    };
    let messages = match serde_json::from_slice::<Vec<Box<serde_json::value::RawValue>>>(&body) {
        Ok(messages) if !messages.is_empty() => messages,
        _ => {
            let req = Request::from_parts(parts, Body::from(body));
            return inner.oneshot(req).await;
        }
    };
    let mut answers = Vec::new();
    let mut session = None;
    for message in messages {
        let mut one = Request::new(Body::from(message.get().to_owned()));
        *one.method_mut() = Method::POST;
        *one.uri_mut() = parts.uri.clone();
        *one.headers_mut() = parts.headers.clone();
        one.headers_mut().remove(header::CONTENT_LENGTH);
        *one.extensions_mut() = parts.extensions.clone();
        let res = inner.clone().oneshot(one).await.unwrap_or_else(|never| match never {});
        if !res.status().is_success() {
            return Ok(res);
        }
        session = session.or_else(|| res.headers().get("mcp-session-id").cloned());
        let stream =
            res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let Ok(bytes) = to_bytes(res.into_body(), UNBOUNDED).await else {
            return Ok(internal_error());
        };
        answers.extend(json_rpc_answers(&bytes, stream));
    }
    if answers.is_empty() {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let mut res =
        ([(header::CONTENT_TYPE, "application/json")], serde_json::Value::Array(answers).to_string()).into_response();
    if let Some(session) = session {
        res.headers_mut().insert("mcp-session-id", session);
    }
    Ok(res)
}

/// The JSON-RPC responses in a body: one JSON value, or an event stream's
/// `data:` lines that carry an `id`.
pub(super) fn json_rpc_answers(body: &[u8], stream: bool) -> Vec<serde_json::Value> {
    if !stream {
        return serde_json::from_slice(body).into_iter().collect();
    }
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
        .filter(|v| v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some()))
        .collect()
}
