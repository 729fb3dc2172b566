//! Messages from the child, each sent to the stream waiting for it (the
//! routing rules are in `session.rs`), and each way a child can misbehave
//! contained to its session and counted: lines that are not JSON-RPC,
//! lines over the size cap, responses nobody asked for, too many or
//! duplicate requests to the client, a POST stream past its byte budget.
//!
//! Everything here runs on the session's own stdout reader task. It waits
//! only on the session's own streams, so a slow client slows its child
//! (backpressure through the pipe) and nobody else.

use std::time::Instant;

use bytes::Bytes;
use mcp_guard_layers::{
    jsonrpc::{MessageKind, RequestId, classify_message},
    rejection::code,
};
use serde_json::value::RawValue;

use super::{
    lines::IdScan,
    server_requests,
    session::{PostStream, Route, Session, error_response},
};
use crate::upstream::violation::Violation;

const TOO_LARGE: &str = "The upstream MCP server's answer is too large";

/// Sends one line the child wrote to where it belongs.
pub(super) async fn deliver(session: &Session, line: Bytes) {
    let Ok(text) = std::str::from_utf8(&line) else {
        return session.violation(Violation::InvalidMessage, "stdout line is not UTF-8");
    };
    if text.trim_start().starts_with('[') {
        // A batch from the server: route each element on its own.
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                for item in items {
                    Box::pin(deliver(session, Bytes::copy_from_slice(item.get().as_bytes()))).await;
                }
            }
            Err(_) => session.violation(Violation::InvalidMessage, "stdout line is not a JSON-RPC batch"),
        }
        return;
    }
    let Ok(info) = classify_message(text) else {
        return session.violation(Violation::InvalidMessage, "stdout line is not a JSON-RPC message");
    };
    match (info.kind, info.id) {
        (MessageKind::Response, Some(id)) => match session.route_response(&id) {
            Some(stream) => {
                if !send_on_post(session, &stream, line, Some(id)).await {
                    undeliverable(session);
                }
            }
            // A request the gateway answered already (timed out, too large)
            // was asked for: late, not unsolicited, and counted once already.
            None if session.late_response(&id) => undeliverable(session),
            None => session.violation(Violation::UnsolicitedResponse, "a response to no pending request"),
        },
        (MessageKind::Request, Some(id)) => server_request(session, id, line).await,
        _ => {
            let route = match info.progress_token.as_deref() {
                Some(token) => session.route_progress(token, Instant::now()),
                None => None,
            };
            let route = route.unwrap_or_else(|| session.route_unrelated(&line));
            if !dispatch(session, route, line).await {
                undeliverable(session);
            }
        }
    }
}

/// A line over `max_message_size`, already skipped: counted, and the
/// request it answered (if `scan` found one) answered with an error now
/// rather than at its timeout.
pub(super) async fn oversized(session: &Session, scan: &IdScan) {
    session.violation(Violation::MessageTooLarge, "stdout line over upstream.max_message_size");
    if let Some(id) = scan.response_id()
        && let Some(stream) = session.route_response(&id)
    {
        let error = error_response(&id, code::INTERNAL_ERROR, TOO_LARGE, "upstream_response_too_large");
        // An Err means the client is gone: nobody left to tell.
        let _ = stream.tx.send(error).await;
    }
}

/// A request from the child to the client: tracked until answered, or
/// answered by the gateway when it cannot be passed on.
async fn server_request(session: &Session, id: RequestId, line: Bytes) {
    match session.server_requests.track(&id, Instant::now()) {
        Ok(()) => {}
        Err(server_requests::Refused::TooMany) => {
            session.violation(Violation::TooManyServerRequests, "over upstream.max_server_requests_per_session");
            let message = "Too many requests to the client are waiting for an answer";
            return session.answer_child(&id, message, "too_many_server_requests");
        }
        Err(server_requests::Refused::Duplicate) => {
            // Either answer could be taken for the other's: pass on neither
            // the second one nor an answer to it.
            return session.violation(Violation::InvalidMessage, "a request to the client with an id already open");
        }
    }
    let route = session.route_unrelated(&line);
    if !dispatch(session, route, line).await {
        session.server_requests.forget(&id);
        session.answer_child(&id, "The client cannot be reached", "client_unreachable");
    }
}

/// Sends `line` along `route`; false when it reached no client.
async fn dispatch(session: &Session, route: Route, line: Bytes) -> bool {
    match route {
        Route::Post(stream) => send_on_post(session, &stream, line, None).await,
        Route::Standalone(stream) => stream.send(line).await.is_ok(),
        Route::Backlogged => true,
        Route::Dropped => false,
    }
}

/// Sends `line` on a POST's stream within its byte budget. `answering` is
/// the request `line` answers, already taken off the pending table.
async fn send_on_post(session: &Session, stream: &PostStream, line: Bytes, answering: Option<RequestId>) -> bool {
    if !stream.charge(line.len(), session.limits.max_response_size) {
        over_budget(session, stream, answering).await;
        return false;
    }
    match stream.tx.send(line).await {
        Ok(()) => true,
        // The POST stream's client went away: the GET stream may still be there.
        Err(tokio::sync::mpsc::error::SendError(line)) => match session.standalone() {
            Some(standalone) => standalone.send(line).await.is_ok(),
            None => false,
        },
    }
}

/// A POST stream reached `max_response_size`: every request still waiting
/// on it gets an error response, which ends the stream.
async fn over_budget(session: &Session, stream: &PostStream, answering: Option<RequestId>) {
    session.violation(Violation::ResponseTooLarge, "a POST stream over upstream.max_response_size");
    for id in session.close_stream(stream).into_iter().chain(answering) {
        let error = error_response(&id, code::INTERNAL_ERROR, TOO_LARGE, "upstream_response_too_large");
        if stream.tx.send(error).await.is_err() {
            break;
        }
    }
}

fn undeliverable(session: &Session) {
    // No client listens: not the child's fault, so not a violation.
    tracing::debug!(target: "mcp_guard::upstream::stdio", session = session.short_id(), "upstream_message_undeliverable");
}
