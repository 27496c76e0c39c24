//! `sfctl trace`: an order's log lines, fetched from the functions' CloudWatch log groups with
//! `FilterLogEvents`; `trail` makes its story of them.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use aws_sdk_cloudwatch::primitives::{DateTime, DateTimeFormat};
use serde::Serialize;

use crate::trail::{Line, Query, Trail};

/// Pages of `FilterLogEvents` read per log group and search before giving up on the rest.
const MAX_PAGES: usize = 50;

/// A `--since`/`--until` value: a duration back from `now` (`90s`, `30m`, `2h`, `7d`) or an
/// RFC 3339 time.
pub fn when(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    if let (Ok(n), true) = (number.parse::<u64>(), seconds > 0) {
        return now
            .checked_sub(Duration::from_secs(n.saturating_mul(seconds)))
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .ok_or_else(|| format!("{text} reaches back before 1970"));
    }
    DateTime::from_str(text, DateTimeFormat::DateTime)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| {
            format!("{text:?}: expected a duration such as 30m, 2h, 7d, or an RFC 3339 time")
        })
}

/// [`when`] from now, for the command line.
pub fn time(text: &str) -> Result<SystemTime, String> {
    when(text, SystemTime::now())
}

/// A `--trace-id` value: 32 hex digits, not all zero (W3C Trace Context), in lowercase.
pub fn trace_id(text: &str) -> Result<String, String> {
    let id = text.to_ascii_lowercase();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0')
    {
        Ok(id)
    } else {
        Err(format!(
            "{text:?} is not a trace id (32 hex digits, not all zero)"
        ))
    }
}

/// The CloudWatch filter pattern for lines containing `term`: a quoted term, which CloudWatch
/// matches as a substring of the raw line. `"` and `\` appear escaped in JSON lines and cannot be
/// quoted portably, so the longest run of `term` without them is searched (the exact match is
/// checked on each line); `None` (all lines) if nothing is left.
fn pattern(term: &str) -> Option<String> {
    term.split(['"', '\\'])
        .max_by_key(|part| part.len())
        .filter(|part| !part.is_empty())
        .map(|part| format!("\"{part}\""))
}

/// What one search found.
#[derive(Debug, Default)]
struct Found {
    lines: Vec<Line>,
    /// Log groups searched only in part (after `MAX_PAGES` pages).
    truncated: BTreeSet<String>,
    /// Log groups that do not exist.
    missing: BTreeSet<String>,
}

impl Found {
    fn extend(&mut self, more: Found) {
        self.lines.extend(more.lines);
        self.truncated.extend(more.truncated);
        self.missing.extend(more.missing);
    }
}

/// Where the lines come from.
trait Logs {
    /// Our lines (JSON with an `"event"`) that contain `term`, and maybe others.
    async fn search(&self, term: &str) -> anyhow::Result<Found>;
}

/// The functions' log groups in CloudWatch Logs, over a window of time.
struct CloudWatchLogs<'a> {
    client: &'a aws_sdk_cloudwatchlogs::Client,
    groups: &'a [String],
    start_ms: i64,
    end_ms: Option<i64>,
}

impl CloudWatchLogs<'_> {
    async fn search_group(&self, group: &str, term: &str) -> anyhow::Result<Found> {
        let mut found = Found::default();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let answer = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .set_filter_pattern(pattern(term))
                .start_time(self.start_ms)
                .set_end_time(self.end_ms)
                .set_next_token(token)
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    found.missing.insert(group.to_owned());
                    return Ok(found);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("searching {group}")));
                }
            };
            found.lines.extend(
                page.events()
                    .iter()
                    .filter_map(|e| Line::parse(e.message()?, e.timestamp().unwrap_or_default())),
            );
            token = page.next_token;
            if token.is_none() {
                return Ok(found);
            }
        }
        found.truncated.insert(group.to_owned());
        Ok(found)
    }
}

impl Logs for CloudWatchLogs<'_> {
    async fn search(&self, term: &str) -> anyhow::Result<Found> {
        let mut found = Found::default();
        for group in self.groups {
            found.extend(self.search_group(group, term).await?);
        }
        Ok(found)
    }
}

/// The trail of what `query` names: the lines that match it exactly, then, for the order's
/// idempotency key found in them, every line with that key (so a message id or a trace id finds
/// the redriven copies too). `None` when no line matches.
async fn lookup(logs: &impl Logs, query: &Query) -> anyhow::Result<(Option<Trail>, Found)> {
    let mut found = logs.search(query.term()).await?;
    found.lines.retain(|l| query.matches(l));
    let keys: BTreeSet<String> = found.lines.iter().filter_map(Line::key).collect();
    if keys.len() > 1 {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        bail!(
            "{} is about {} orders (idempotency keys {}): trace one of them by its key",
            query.term(),
            keys.len(),
            keys.join(", ")
        );
    }
    if let Some(key) = keys.into_iter().next()
        && *query != Query::Id(key.clone())
    {
        let mut more = logs.search(&key).await?;
        more.lines
            .retain(|l| l.key().as_deref() == Some(key.as_str()));
        found.extend(more);
    }
    let trail = Trail::of(std::mem::take(&mut found.lines));
    Ok((trail, found))
}

/// `--json`: the trail and whether the search was cut short.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    trail: &'a Trail,
    truncated: bool,
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| format!("{time:?}"))
}

fn millis(time: SystemTime) -> i64 {
    DateTime::from(time).to_millis().unwrap_or_default()
}

pub async fn trace(
    client: &aws_sdk_cloudwatchlogs::Client,
    groups: &[String],
    query: &Query,
    since: SystemTime,
    until: Option<SystemTime>,
    json: bool,
) -> anyhow::Result<()> {
    let logs = CloudWatchLogs {
        client,
        groups,
        start_ms: millis(since),
        end_ms: until.map(millis),
    };
    let (trail, found) = lookup(&logs, query).await?;
    for group in &found.truncated {
        eprintln!(
            "sfctl: stopped after {MAX_PAGES} pages of {group}; the trail may miss steps: \
             narrow the window with --since/--until"
        );
    }
    let Some(trail) = trail else {
        let what = match query {
            Query::Id(id) => format!("idempotency key or message id {id}"),
            Query::TraceId(id) => format!("trace id {id}"),
        };
        let missing = if found.missing.is_empty() {
            String::new()
        } else {
            let groups: Vec<&str> = found.missing.iter().map(String::as_str).collect();
            format!(
                " (no log group {}: check --stack, --store-log-group, --forwarder-log-group)",
                groups.join(", ")
            )
        };
        bail!(
            "no log lines about the {what} in {} from {} to {}{missing}; \
             log lines take a few seconds to arrive, and --since searches further back",
            groups.join(" and "),
            rfc3339(since),
            until.map_or_else(|| "now".to_owned(), rfc3339),
        );
    };
    if json {
        let report = Report {
            trail: &trail,
            truncated: !found.truncated.is_empty(),
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", trail.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::tests::{TRACE, accepted, attempt, line};
    use crate::trail::{State, What};
    use serde_json::json;

    const OTHER: &str = "0af7651916cd43dd8448eb211c80319c";

    /// Log lines searched like CloudWatch does: the quoted term as a substring of the raw line.
    struct Fake(Vec<String>);

    impl Logs for Fake {
        async fn search(&self, term: &str) -> anyhow::Result<Found> {
            let quoted = pattern(term).expect("a pattern");
            let needle = quoted.trim_matches('"');
            Ok(Found {
                lines: self
                    .0
                    .iter()
                    .filter(|raw| raw.contains(needle))
                    .filter_map(|raw| Line::parse(raw, 0))
                    .collect(),
                ..Found::default()
            })
        }
    }

    fn redriven_order() -> Fake {
        Fake(vec![
            accepted(1, "order-1", "m-1"),
            line(
                1,
                "order.accepted",
                json!({"idempotency_key": "order-10", "message_id": "m-10", "trace_id": OTHER}),
            ),
            "START RequestId: 1 Version: $LATEST".into(),
            attempt(
                2,
                "order-1",
                "m-1",
                1,
                json!({"outcome": "dead_lettered", "reason": "backend answered 422"}),
            ),
            // The redriven copy's lines carry a trace id of their own (no trace context).
            attempt(
                9,
                "order-1",
                "m-2",
                1,
                json!({"outcome": "delivered", "trace_id": OTHER}),
            ),
        ])
    }

    async fn trail(query: Query) -> Trail {
        let (trail, _) = lookup(&redriven_order(), &query).await.expect("lookup");
        trail.expect("a trail")
    }

    #[tokio::test]
    async fn a_message_id_finds_the_whole_order_by_its_key() {
        let by_copy = trail(Query::Id("m-2".into())).await;
        assert_eq!(by_copy.message_ids, ["m-1", "m-2"]);
        assert_eq!(by_copy.state, State::Delivered);
        assert!(matches!(by_copy.steps[0].what, What::Accepted { .. }));
        assert_eq!(by_copy, trail(Query::Id("order-1".into())).await);
        assert_eq!(by_copy, trail(Query::Id("m-1".into())).await);
    }

    #[tokio::test]
    async fn a_trace_id_finds_the_order_and_its_redriven_copy() {
        let by_trace = trail(Query::TraceId(TRACE.into())).await;
        assert_eq!(by_trace.idempotency_key.as_deref(), Some("order-1"));
        assert_eq!(by_trace.trace_id.as_deref(), Some(TRACE));
        assert_eq!(by_trace.message_ids, ["m-1", "m-2"]);
        assert_eq!(by_trace.state, State::Delivered);
    }

    #[tokio::test]
    async fn nothing_found_is_no_trail_and_several_orders_are_refused() {
        let (trail, _) = lookup(&redriven_order(), &Query::Id("order".into()))
            .await
            .expect("lookup");
        assert_eq!(trail, None);
        let shared = Fake(vec![accepted(1, "a", "m-1"), accepted(2, "b", "m-2")]);
        let refused = lookup(&shared, &Query::TraceId(TRACE.into())).await;
        let message = refused.expect_err("two orders").to_string();
        assert!(
            message.contains("2 orders (idempotency keys a, b)"),
            "{message}"
        );
    }

    #[test]
    fn times_are_durations_back_or_rfc_3339() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let back = |s: u64| Ok(now - Duration::from_secs(s));
        assert_eq!(when("90s", now), back(90));
        assert_eq!(when("30m", now), back(1800));
        assert_eq!(when("2h", now), back(7200));
        assert_eq!(when("7d", now), back(604_800));
        assert_eq!(
            when("1970-01-02T00:00:00Z", now),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
        );
        assert!(when("yesterday", now).is_err());
        assert!(when("5", now).is_err());
        assert!(when("99999d", now).is_err());
    }

    #[test]
    fn trace_ids_are_32_hex_digits() {
        assert_eq!(trace_id(&TRACE.to_uppercase()), Ok(TRACE.to_owned()));
        assert!(trace_id(&"0".repeat(32)).is_err());
        assert!(trace_id("4bf92f3577b34da6").is_err());
        assert!(trace_id(&"g".repeat(32)).is_err());
    }

    #[test]
    fn patterns_quote_what_can_be_quoted() {
        assert_eq!(pattern("order-1").as_deref(), Some("\"order-1\""));
        assert_eq!(pattern("a\"longer\\b").as_deref(), Some("\"longer\""));
        assert_eq!(pattern("\"\\"), None);
    }
}
