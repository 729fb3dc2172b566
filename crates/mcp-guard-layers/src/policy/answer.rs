//! The gateway's own answers to requests it refuses inside the protocol.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use serde_json::{Value, json};

use crate::{
    jsonrpc::{Inspection, MessageKind, RequestId},
    rejection::Refusal,
};

/// The requests of one POST that the gateway refused and answered itself,
/// in the response extensions (for logs, metrics and the audit log).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refused(pub Vec<(RequestId, Refusal)>);

/// One refused request and what to tell its sender.
#[derive(Debug)]
pub(crate) struct Refusing {
    pub(crate) id: RequestId,
    pub(crate) refusal: Refusal,
    pub(crate) message: String,
    /// Extra `error.data` fields (never for the `*_denied` refusals, whose
    /// data is exactly the specification's for a missing name).
    pub(crate) data: Option<Value>,
}

impl Refusing {
    pub(crate) fn new(id: RequestId, refusal: Refusal, message: String) -> Refusing {
        Refusing { id, refusal, message, data: None }
    }
}

/// The response to a POST in which `refusals` were refused: a JSON-RPC error
/// per refused request. In a batch, every other request is refused too
/// (nothing of a batch is forwarded when part of it is refused).
pub(crate) fn respond<B: From<Bytes>>(inspection: &Inspection, mut refusals: Vec<Refusing>) -> Response<B> {
    if inspection.batch {
        for message in &inspection.messages {
            if let (MessageKind::Request, Some(id)) = (message.kind, &message.id)
                && !refusals.iter().any(|r| &r.id == id)
            {
                let text = "Request not processed: another request in its batch was refused".to_owned();
                refusals.push(Refusing::new(id.clone(), Refusal::BatchRefused, text));
            }
        }
    }
    let errors: Vec<Value> = refusals.iter().map(error_response).collect();
    let body = match (inspection.batch, errors.as_slice()) {
        (false, [one]) => one.to_string(),
        _ => Value::Array(errors).to_string(),
    };
    let mut response = Response::new(B::from(Bytes::from(body)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(Refused(refusals.into_iter().map(|r| (r.id, r.refusal)).collect()));
    response
}

fn error_response(r: &Refusing) -> Value {
    // The id is JSON text already validated as a string or an integer.
    let id: Value = serde_json::from_str(r.id.as_json()).unwrap_or(Value::Null);
    let mut error = json!({ "code": r.refusal.code(), "message": r.message });
    let mut data = match &r.data {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if r.refusal.reason_is_public() {
        data.insert("reason".into(), Value::from(r.refusal.reason()));
    }
    if let (false, Some(error)) = (data.is_empty(), error.as_object_mut()) {
        error.insert("data".into(), Value::Object(data));
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Limits, inspect};

    fn body(res: Response<Bytes>) -> Value {
        serde_json::from_slice(res.body()).expect("json")
    }

    #[test]
    fn a_denied_call_looks_like_an_unknown_one() {
        let i =
            inspect(br#"{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"x"}}"#, Limits::default())
                .expect("valid");
        let r = Refusing::new(RequestId::from_json_text(r#""a1""#), Refusal::ToolDenied, "Unknown tool: x".into());
        let res: Response<Bytes> = respond(&i, vec![r]);
        assert_eq!(res.status(), http::StatusCode::OK);
        let refused = res.extensions().get::<Refused>().cloned().expect("refused");
        assert_eq!(refused.0[0].1, Refusal::ToolDenied);
        assert_eq!(
            body(res),
            json!({"jsonrpc":"2.0","id":"a1","error":{"code":-32602,"message":"Unknown tool: x"}}),
            "no data, no reason: nothing tells a denial from a missing tool"
        );
    }

    #[test]
    fn a_batch_refuses_every_request_and_answers_no_notification() {
        let i = inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}]"#,
            Limits::default(),
        )
        .expect("valid");
        let mut r = Refusing::new(RequestId::from_json_text("2"), Refusal::InvalidArguments, "Invalid".into());
        r.data = Some(json!({"violations": [{"pointer": "/a", "message": "m"}]}));
        let v = body(respond(&i, vec![r]));
        let answers = v.as_array().expect("array");
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0]["id"], 2);
        assert_eq!(answers[0]["error"]["data"]["reason"], "invalid_arguments");
        assert_eq!(answers[0]["error"]["data"]["violations"][0]["pointer"], "/a");
        assert_eq!(answers[1]["id"], 1);
        assert_eq!(answers[1]["error"]["data"]["reason"], "batch_refused");
    }
}
