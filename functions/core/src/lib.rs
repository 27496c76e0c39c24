//! The pure delivery domain shared by the `store` and `forwarder` functions.
//!
//! Nothing here knows about AWS SDK clients or Lambda event types: adapters in the function crates
//! translate those into the types below and implement the capability traits in [`batch`].

pub mod batch;
pub mod breaker;
pub mod config;
pub mod envelope;
pub mod logging;
pub mod metrics;
pub mod order;
pub mod pacer;
pub mod poll;
pub mod retry;
pub mod startup;
pub mod trace;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
