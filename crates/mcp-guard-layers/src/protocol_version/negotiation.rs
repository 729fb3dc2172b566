//! The `initialize` side of version checking: the header must agree with the
//! body, and the server's answer tells which version the session speaks.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::value::RawValue;
use tower::{Layer, Service};

use super::{ProtocolVersion, Versions};
use crate::{
    jsonrpc::{Inspection, RequestId},
    rejection::Rejection,
    sse::{SseEvent, SseParser},
    transport::MCP_SESSION_ID,
};

/// A JSON initialize answer is small; anything bigger is not read for learning.
const MAX_JSON_ANSWER: usize = 256 * 1024;
/// Largest SSE event read while looking for the initialize answer.
const MAX_SSE_EVENT: usize = 1024 * 1024;

/// Cross-checks `initialize` and learns negotiated versions. Place it after
/// JSON-RPC inspection, sharing [`Versions`] with the [`ProtocolVersionLayer`](super::ProtocolVersionLayer).
#[derive(Clone, Debug)]
pub struct NegotiationLayer {
    versions: Versions,
}

impl NegotiationLayer {
    /// Learns into `versions`.
    pub fn new(versions: Versions) -> Self {
        NegotiationLayer { versions }
    }
}

impl<S> Layer<S> for NegotiationLayer {
    type Service = NegotiationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NegotiationService { inner, versions: self.versions.clone() }
    }
}

/// The service of [`NegotiationLayer`].
#[derive(Clone, Debug)]
pub struct NegotiationService<S> {
    inner: S,
    versions: Versions,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NegotiationService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<NegotiationBody<ResBody>>;
    type Error = S::Error;
    type Future = NegotiationFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(init) = req.extensions().get::<Inspection>().and_then(Inspection::initialize) else {
            return NegotiationFuture::Inner { future: self.inner.call(req), learn: None };
        };
        let declared = req.extensions().get::<ProtocolVersion>().filter(|v| v.declared);
        if let (Some(declared), Some(body)) = (declared, init.protocol_version.as_deref())
            && &*declared.version != body
        {
            return NegotiationFuture::Rejected { response: Some(Rejection::ProtocolVersionMismatch.into_response()) };
        }
        let learn = init.id.clone().map(|id| (self.versions.clone(), id));
        NegotiationFuture::Inner { future: self.inner.call(req), learn }
    }
}

pin_project! {
    /// Response future of [`NegotiationService`].
    #[project = FutureProj]
    #[derive(Debug)]
    pub enum NegotiationFuture<F, B> {
        /// Waiting on the inner service; `learn` is set for an initialize.
        Inner { #[pin] future: F, learn: Option<(Versions, RequestId)> },
        /// Refused before the inner service ran.
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for NegotiationFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<NegotiationBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FutureProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(|inner| NegotiationBody::Plain { inner }))),
                None => Poll::Pending,
            },
            FutureProj::Inner { future, learn } => {
                let response = std::task::ready!(future.poll(cx))?;
                let tap = learn.take().and_then(|(versions, id)| Tap::for_response(&response, versions, id));
                Poll::Ready(Ok(response.map(|inner| match tap {
                    Some(tap) => NegotiationBody::Tapped { inner, tap: Some(Box::new(tap)) },
                    None => NegotiationBody::Plain { inner },
                })))
            }
        }
    }
}

pin_project! {
    /// A response body that, for an initialize answer, reads the
    /// negotiated version as the bytes stream past (unchanged).
    #[project = BodyProj]
    #[derive(Debug)]
    pub enum NegotiationBody<B> {
        /// Passed through untouched.
        Plain { #[pin] inner: B },
        /// Read while passed through, until the initialize answer is seen.
        Tapped { #[pin] inner: B, tap: Option<Box<Tap>> },
    }
}

impl<B: From<Bytes>> From<Bytes> for NegotiationBody<B> {
    fn from(bytes: Bytes) -> Self {
        NegotiationBody::Plain { inner: B::from(bytes) }
    }
}

impl<B: Default> Default for NegotiationBody<B> {
    fn default() -> Self {
        NegotiationBody::Plain { inner: B::default() }
    }
}

impl<B: Body<Data = Bytes>> Body for NegotiationBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            BodyProj::Plain { inner } => inner.poll_frame(cx),
            BodyProj::Tapped { inner, tap } => {
                let frame = std::task::ready!(inner.poll_frame(cx));
                match &frame {
                    Some(Ok(f)) => {
                        if let (Some(data), Some(t)) = (f.data_ref(), tap.as_mut())
                            && t.feed(data)
                        {
                            *tap = None;
                        }
                    }
                    Some(Err(_)) => *tap = None,
                    None => {
                        if let Some(t) = tap.take() {
                            t.finish();
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            NegotiationBody::Plain { inner } | NegotiationBody::Tapped { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            NegotiationBody::Plain { inner } | NegotiationBody::Tapped { inner, .. } => inner.size_hint(),
        }
    }
}

/// Reads an initialize answer for its `protocolVersion`.
#[derive(Debug)]
pub struct Tap {
    versions: Versions,
    session: Box<str>,
    id: RequestId,
    reader: Reader,
}

#[derive(Debug)]
enum Reader {
    Json(Vec<u8>),
    Sse(SseParser, Vec<SseEvent>),
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    result: Option<AnswerResult>,
}

#[derive(Deserialize)]
struct AnswerResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
}

impl Tap {
    /// A tap when `response` opened a session; `None` otherwise.
    fn for_response<B>(response: &Response<B>, versions: Versions, id: RequestId) -> Option<Tap> {
        if !response.status().is_success() {
            return None;
        }
        let session = response.headers().get(&MCP_SESSION_ID)?.to_str().ok()?.into();
        let content_type = response.headers().get(header::CONTENT_TYPE)?.as_bytes();
        let reader = if crate::transport::is_event_stream(response.headers()) {
            Reader::Sse(SseParser::new(MAX_SSE_EVENT), Vec::new())
        } else if content_type.starts_with(b"application/json") {
            Reader::Json(Vec::new())
        } else {
            return None;
        };
        Some(Tap { versions, session, id, reader })
    }

    /// Feeds a chunk; true when done (learned, or gave up).
    fn feed(&mut self, chunk: &[u8]) -> bool {
        match &mut self.reader {
            Reader::Json(buf) => {
                if buf.len() + chunk.len() > MAX_JSON_ANSWER {
                    return true;
                }
                buf.extend_from_slice(chunk);
                false
            }
            Reader::Sse(parser, events) => {
                // An oversized event is skipped by the parser; keep looking after it.
                let _ = parser.feed(chunk, events);
                let done =
                    events.iter().any(|event| learn(&self.versions, &self.session, &self.id, event.data.as_bytes()));
                events.clear();
                done
            }
        }
    }

    fn finish(self) {
        if let Reader::Json(buf) = &self.reader {
            learn(&self.versions, &self.session, &self.id, buf);
        }
    }
}

/// True when `json` is the answer to `id` (whatever it says).
fn learn(versions: &Versions, session: &str, id: &RequestId, json: &[u8]) -> bool {
    let Ok(answer) = serde_json::from_slice::<Answer<'_>>(json) else {
        return false;
    };
    if answer.id.map(RawValue::get) != Some(id.as_json()) {
        return false;
    }
    let negotiated = answer.result.and_then(|r| r.protocol_version).and_then(|v| versions.find(v.as_bytes()));
    if let Some(version) = negotiated {
        versions.learn(session, version);
    }
    true
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderValue, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::jsonrpc::{Limits, inspect};

    const INIT: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;

    fn answer(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
        let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res.headers_mut().insert(&MCP_SESSION_ID, HeaderValue::from_static("s1"));
        res
    }

    async fn run(versions: &Versions, header: Option<&str>, upstream: Response<Full<Bytes>>) -> (StatusCode, Bytes) {
        let svc = NegotiationLayer::new(versions.clone()).layer(service_fn(move |_req: Request<()>| {
            let res = upstream.clone();
            async move { Ok::<_, Infallible>(res) }
        }));
        let mut req = Request::post("/mcp").body(()).expect("request");
        req.extensions_mut().insert(inspect(INIT.as_bytes(), Limits::default()).expect("valid"));
        if let Some(h) = header {
            req.extensions_mut().insert(ProtocolVersion { version: h.into(), declared: true });
        }
        let res = svc.oneshot(req).await.expect("infallible");
        let status = res.status();
        (status, res.into_body().collect().await.expect("body").to_bytes())
    }

    #[tokio::test]
    async fn learns_from_json_and_sse_answers_and_passes_bytes_unchanged() {
        let sse = "id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-06-18\"}}\n\n";
        let json = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}"#;
        for (content_type, body, want) in
            [("text/event-stream", sse, "2025-06-18"), ("application/json", json, "2025-11-25")]
        {
            let versions = Versions::default();
            let (status, bytes) = run(&versions, None, answer(content_type, body)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(bytes, body.as_bytes());
            assert_eq!(versions.negotiated("s1").as_deref(), Some(want), "{content_type}");
        }
    }

    #[tokio::test]
    async fn ignores_other_ids_unsupported_versions_and_errors() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":2,"result":{"protocolVersion":"2025-06-18"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2024-11-05"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#,
            "not json",
        ];
        for body in cases {
            let versions = Versions::default();
            run(&versions, None, answer("application/json", body)).await;
            assert!(versions.is_empty(), "{body}");
        }
    }

    #[tokio::test]
    async fn a_header_contradicting_the_body_is_refused() {
        let versions = Versions::default();
        let ok = answer("application/json", "{}");
        assert_eq!(run(&versions, Some("2025-11-25"), ok.clone()).await.0, StatusCode::OK);
        assert_eq!(run(&versions, Some("2025-06-18"), ok).await.0, StatusCode::BAD_REQUEST);
    }
}
