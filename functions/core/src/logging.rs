//! The functions' log lines: one JSON object per line, the event's fields and those of every
//! enclosing span at the top level, so that a query (or `sfctl trace`) finds `event`,
//! `message_id` or `trace_id` in the same place on every line.
//!
//! Always JSON, whatever `AWS_LAMBDA_LOG_FORMAT` says; the level comes from
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` (directives allowed), else `INFO`.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Env;

/// Installs the JSON subscriber, writing to stdout, as the global default.
pub fn init() {
    let filter = filter(&Env::process());
    tracing_subscriber::registry()
        .with(filter)
        .with(layer(std::io::stdout))
        .init();
}

/// Which lines are written: `AWS_LAMBDA_LOG_LEVEL` (a level; `FATAL` is `ERROR`), else
/// `RUST_LOG` (directives), else `INFO`; an unreadable value means `INFO`.
fn filter<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> EnvFilter {
    let level = |level: LevelFilter| {
        EnvFilter::builder()
            .with_default_directive(level.into())
            .parse_lossy("")
    };
    match env.optional("AWS_LAMBDA_LOG_LEVEL") {
        Some(lambda) if lambda.eq_ignore_ascii_case("fatal") => level(LevelFilter::ERROR),
        Some(lambda) => level(lambda.parse().unwrap_or(LevelFilter::INFO)),
        None => env
            .optional("RUST_LOG")
            .and_then(|directives| EnvFilter::try_new(directives).ok())
            .unwrap_or_else(|| level(LevelFilter::INFO)),
    }
}

/// The formatting layer: `timestamp` (RFC 3339, UTC, microseconds), `level`, `target`, the
/// event's fields (`message` among them) and every enclosing span's, flattened; a span closer to
/// the event wins a name that two spans share.
fn layer<S, W>(writer: W) -> json_subscriber::fmt::Layer<S, W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    json_subscriber::fmt::layer()
        .with_writer(writer)
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .flatten_span_list_on_top_level(true)
}

#[cfg(any(test, feature = "fakes"))]
pub mod capture {
    //! Log lines captured in memory, for the tests of what the code logs.
    //!
    //! One global subscriber formats as the functions do and writes each thread's lines to what
    //! that thread captures. (A scoped subscriber per test would not do: tracing caches whether a
    //! callsite is enabled from the first thread that reaches it, which with a single scoped
    //! subscriber may be another test's, without one.)

    use std::cell::RefCell;
    use std::io;
    use std::sync::{Arc, Mutex, Once, PoisonError};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    thread_local! {
        static CAPTURING: RefCell<Option<Lines>> = const { RefCell::new(None) };
    }

    /// The lines this thread writes from [`Lines::capture`] on.
    #[derive(Debug, Clone, Default)]
    pub struct Lines(Arc<Mutex<Vec<u8>>>);

    /// Writes to the calling thread's [`Lines`], if it captures any.
    struct ThisThread;

    impl io::Write for ThisThread {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            CAPTURING.with_borrow(|lines| {
                if let Some(Lines(bytes)) = lines {
                    bytes
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(buf);
                }
            });
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        /// Captures every line the calling thread writes from now on, at every level.
        pub fn capture() -> Self {
            static INSTALL: Once = Once::new();
            INSTALL.call_once(|| {
                let subscriber = tracing_subscriber::registry().with(super::layer(|| ThisThread));
                // Only this function installs one, once.
                let _ = tracing::subscriber::set_global_default(subscriber);
            });
            let lines = Self::default();
            CAPTURING.set(Some(lines.clone()));
            lines
        }

        /// Every line so far, each parsed as one JSON object.
        pub fn parsed(&self) -> Vec<Value> {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
                .collect()
        }

        /// The lines with `"event": event`.
        pub fn events(&self, event: &str) -> Vec<Value> {
            self.parsed()
                .into_iter()
                .filter(|line| line["event"] == event)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Lines;
    use super::*;
    use tracing::{info, info_span, warn};

    #[test]
    fn fields_of_the_event_and_its_spans_are_at_the_top_level() {
        let lines = Lines::capture();
        {
            let invocation = info_span!("invocation", requestId = "r-1", server.port = 443);
            let _in = invocation.enter();
            let message = info_span!(
                "message",
                message_id = "m-1",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
                parent_span_id = None::<&str>,
            );
            message.in_scope(|| {
                warn!(
                    event = "delivery.attempt",
                    http.response.status_code = 503_u16,
                    delay_s = None::<f64>,
                    "delivery failed, will retry"
                );
            });
        }
        let line = &lines.parsed()[0];
        let object = line.as_object().unwrap();
        for (name, value) in [
            ("event", "delivery.attempt"),
            ("message", "delivery failed, will retry"),
            ("level", "WARN"),
            ("message_id", "m-1"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("span_id", "00f067aa0ba902b7"),
            ("requestId", "r-1"),
        ] {
            assert_eq!(object[name], value, "{name} in {line}");
        }
        assert_eq!(object["http.response.status_code"], 503);
        assert_eq!(object["server.port"], 443);
        for absent in [
            "parent_span_id",
            "delay_s",
            "fields",
            "span",
            "spans",
            "body",
        ] {
            assert!(!object.contains_key(absent), "{absent} in {line}");
        }
        let timestamp = object["timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2026-12-02T00:41:07.123456Z".len(),
            "{timestamp}"
        );
        assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T');
    }

    #[test]
    fn lines_outside_any_span_are_json_too() {
        let lines = Lines::capture();
        info!(n = 1, "plain");
        let line = &lines.parsed()[0];
        assert_eq!(
            (line["message"].as_str(), line["n"].as_u64()),
            (Some("plain"), Some(1))
        );
    }

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_then_info() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env::new(move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        let level = |pairs| filter(&env(pairs)).max_level_hint();
        assert_eq!(level(&[]), Some(LevelFilter::INFO));
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "error")]),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(level(&[("RUST_LOG", "warn")]), Some(LevelFilter::WARN));
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]),
            Some(LevelFilter::ERROR)
        );
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]),
            Some(LevelFilter::INFO)
        );
        assert_eq!(level(&[("RUST_LOG", "=")]), Some(LevelFilter::INFO));
    }
}
