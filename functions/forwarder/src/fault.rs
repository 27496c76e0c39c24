//! Test-only fault injection, compiled in only with the `fault-injection` feature: the local
//! builds the integration suite deploys (`make build-local`), never the release zips of
//! `make build`.
//!
//! `FAULT_PANIC_MARKER`: delivering a message whose body contains this text panics, the way a bug
//! in the delivery path would, so the suite can show that only that message fails.

use storeforward_core::batch::{Backend, Message};
use storeforward_core::config::Env;
use storeforward_core::retry::Attempt;
use storeforward_core::trace::TraceContext;

/// Wraps the real backend; a no-op unless `FAULT_PANIC_MARKER` is set.
#[derive(Debug)]
pub struct PanicOn<B> {
    inner: B,
    marker: Option<String>,
}

impl<B> PanicOn<B> {
    pub fn from_env(inner: B) -> Self {
        let marker = Env::process().optional("FAULT_PANIC_MARKER");
        if let Some(marker) = &marker {
            tracing::warn!(%marker, "fault injection: messages containing the marker panic");
        }
        Self { inner, marker }
    }
}

impl<B: Backend> Backend for PanicOn<B> {
    async fn deliver(&self, message: &Message, trace: &TraceContext) -> Attempt {
        if let Some(marker) = &self.marker
            && message.body.contains(marker.as_str())
        {
            panic!("injected fault: the body contains {marker}");
        }
        self.inner.deliver(message, trace).await
    }

    fn method(&self) -> &str {
        self.inner.method()
    }

    async fn health(&self) -> Option<Attempt> {
        self.inner.health().await
    }
}
