use std::sync::Arc;

use tower::Layer;

use super::{HostOrigin, HostOriginPolicy};

/// Applies [`HostOrigin`] validation to a service.
#[derive(Clone, Debug)]
pub struct HostOriginLayer {
    policy: Arc<HostOriginPolicy>,
}

impl HostOriginLayer {
    /// Validates every request against `policy`.
    pub fn new(policy: HostOriginPolicy) -> Self {
        HostOriginLayer { policy: Arc::new(policy) }
    }
}

impl<S> Layer<S> for HostOriginLayer {
    type Service = HostOrigin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HostOrigin { inner, policy: Arc::clone(&self.policy) }
    }
}
