use std::{
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, Request};
use tower::{Layer, Service};

use super::{TrustedProxies, parse::forwarded_hops};
use crate::identity::{ClientIp, PeerAddr};

/// Resolves the [`ClientIp`] of every request.
#[derive(Clone, Debug)]
pub struct ClientIpLayer {
    trusted: Arc<TrustedProxies>,
}

impl ClientIpLayer {
    /// Trusts forwarding headers only from `trusted` peers.
    pub fn new(trusted: TrustedProxies) -> Self {
        ClientIpLayer { trusted: Arc::new(trusted) }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ResolveClientIp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientIp { inner, trusted: Arc::clone(&self.trusted) }
    }
}

/// The service of [`ClientIpLayer`].
#[derive(Clone, Debug)]
pub struct ResolveClientIp<S> {
    inner: S,
    trusted: Arc<TrustedProxies>,
}

/// The client address for a request that came from `peer`.
pub(super) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_hops(headers).into_iter().rev() {
        match hop {
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => return ip,
            // A hop we cannot read: stop at the last address a trusted proxy vouched for.
            None => return client,
        }
    }
    client
}

impl<S, B> Service<Request<B>> for ResolveClientIp<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>().copied() {
            let ip = if self.trusted.is_empty() { peer.ip() } else { resolve(peer.ip(), req.headers(), &self.trusted) };
            req.extensions_mut().insert(ClientIp(ip));
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn table() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8"]).expect("valid");
        let none = TrustedProxies::default();
        // (trusted list, peer, X-Forwarded-For, client)
        let cases: [(&TrustedProxies, &str, &str, &str); 7] = [
            (&none, "6.6.6.6", "1.2.3.4", "6.6.6.6"),
            (&trusted, "6.6.6.6", "1.2.3.4", "6.6.6.6"),
            (&trusted, "10.0.0.1", "203.0.113.7", "203.0.113.7"),
            (&trusted, "10.0.0.1", "1.2.3.4, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
            (&trusted, "10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
            (&trusted, "10.0.0.1", "1.2.3.4, garbage, 10.0.0.2", "10.0.0.2"),
            (&trusted, "10.0.0.1", "", "10.0.0.1"),
        ];
        for (list, peer, xff, want) in cases {
            let mut h = HeaderMap::new();
            if !xff.is_empty() {
                h.insert("x-forwarded-for", HeaderValue::from_static(xff));
            }
            let got = resolve(peer.parse().expect("ip"), &h, list);
            let got = if list.is_empty() { peer.parse().expect("ip") } else { got };
            assert_eq!(got, want.parse::<IpAddr>().expect("ip"), "{peer} {xff}");
        }
    }
}
