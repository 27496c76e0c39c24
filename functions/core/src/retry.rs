//! What a delivery attempt means and when to try again.
//!
//! The retry schedule is data ([`RetrySchedule`], [`StatusPolicy`]) and the maths are small pure
//! functions, so the forwarder only has to turn a [`Verdict`] into SQS calls.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The longest visibility timeout SQS accepts (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// A set of HTTP status codes, written as `408,425,429,500-599`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// A set of inclusive ranges.
    pub fn from_ranges(ranges: &[(u16, u16)]) -> Self {
        Self(ranges.to_vec())
    }

    /// The set with `status` in it too.
    pub fn including(mut self, status: u16) -> Self {
        self.0.push((status, status));
        self
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl FromStr for StatusSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("{t:?} is not an HTTP status code (100-599)")),
            }
        };
        let ranges = s
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(format!("range {lo}-{hi} is empty"));
                    }
                    Ok((lo, hi))
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(ranges))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if lo == hi {
                write!(f, "{sep}{lo}")?;
            } else {
                write!(f, "{sep}{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Which backend answers count as which kind of failure (the seed's "status codes that count as
/// failure"). Any 2xx is success; a status in neither list (1xx, 3xx, ...) is retryable, because
/// retrying until the redrive policy dead-letters a message is safer than giving up on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPolicy {
    /// Statuses worth another attempt; checked first.
    pub retryable: StatusSet,
    /// Statuses that can never succeed.
    pub permanent: StatusSet,
}

impl Default for StatusPolicy {
    fn default() -> Self {
        Self {
            retryable: StatusSet::from_ranges(&[(408, 408), (425, 425), (429, 429), (500, 599)]),
            permanent: StatusSet::from_ranges(&[(400, 499)]),
        }
    }
}

/// How one call to the backend ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The backend answered.
    Response {
        status: u16,
        /// The `Retry-After` the backend asked for, already converted to a delay.
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke (refused, reset, DNS, TLS).
    Connection(String),
    /// The request could not be built or sent for another reason.
    Other(String),
    /// No request was sent: the credentials it needs could not be had (the OAuth2 token
    /// endpoint failed or refused the client). Always retryable: the order is not at fault.
    NoCredentials {
        failure: CredentialFailure,
        reason: String,
    },
}

/// Why the credentials for a delivery could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFailure {
    /// The token endpoint could not answer: a 5xx, 408 or 429, a timeout, a connection failure.
    Unavailable,
    /// It refused the client (an OAuth2 error such as `invalid_client`): the configuration or the
    /// client secret is wrong.
    Rejected,
    /// Its answer was not a token response.
    Malformed,
}

impl CredentialFailure {
    /// `unavailable`, `rejected` or `malformed`, as logs and reasons write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
            Self::Malformed => "malformed",
        }
    }
}

/// What to do with a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: acknowledge it.
    Delivered,
    /// Worth another attempt, not sooner than `not_before` when the backend said so.
    Retry {
        reason: String,
        status: Option<u16>,
        not_before: Option<Duration>,
    },
    /// Can never succeed: dead-letter it now.
    Permanent { reason: String, status: Option<u16> },
}

impl StatusPolicy {
    /// Classifies one attempt.
    pub fn classify(&self, attempt: &Attempt) -> Verdict {
        match attempt {
            Attempt::Response { status, .. } if (200..=299).contains(status) => Verdict::Delivered,
            Attempt::Response {
                status,
                retry_after,
            } => {
                let reason = format!("backend answered {status}");
                if !self.retryable.contains(*status) && self.permanent.contains(*status) {
                    Verdict::Permanent {
                        reason,
                        status: Some(*status),
                    }
                } else {
                    Verdict::Retry {
                        reason,
                        status: Some(*status),
                        not_before: *retry_after,
                    }
                }
            }
            Attempt::Timeout => {
                retry_without_status("backend did not answer within the request timeout")
            }
            Attempt::Connection(e) => retry_without_status(&format!("connection failed: {e}")),
            Attempt::Other(e) => retry_without_status(&format!("request failed: {e}")),
            Attempt::NoCredentials { failure, reason } => retry_without_status(&format!(
                "not sent: no credentials (token endpoint {}: {reason})",
                failure.as_str()
            )),
        }
    }
}

fn retry_without_status(reason: &str) -> Verdict {
    Verdict::Retry {
        reason: reason.to_owned(),
        status: None,
        not_before: None,
    }
}

/// When to try again, as data: one delay per retry. The `n`-th delay is the wait after the
/// `n`-th failed receive. Past the end of the list the first (shortest) one repeats: those
/// receives are the allowance that keeps an outage from cutting a message's retries short
/// (README "Backend outages"), so a message that spent none on outages uses them up quickly and
/// reaches the dead-letter queue about when the schedule ends. Like the retries of EventBridge
/// API destinations, the default spans about a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// 10 s, 30 s, 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h: 85,900 s (≈ 23.9 h) in
    /// all, each step within SQS's 12 h visibility limit.
    fn default() -> Self {
        Self(
            [
                10, 30, 60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 28_800,
            ]
            .map(Duration::from_secs)
            .to_vec(),
        )
    }
}

impl RetrySchedule {
    /// The nominal wait after the `receive_count`-th receive (the first entry past the end).
    fn step(&self, receive_count: u32) -> Duration {
        let index = usize::try_from(receive_count.saturating_sub(1)).unwrap_or(usize::MAX);
        self.0
            .get(index)
            .or(self.0.first())
            .copied()
            .unwrap_or_default()
    }

    /// The delay before the next attempt: the step drawn from [step/2, step] by `unit` ∈ [0, 1]
    /// ("equal jitter"), but never shorter than what the backend asked for with `Retry-After`.
    ///
    /// Not full jitter ([0, step]): on an 8 h step that could come back after seconds, so a
    /// message would use up its receives and be dead-lettered long before the day the schedule
    /// promises. Half a step still spreads a batch that failed together over a wide window.
    pub fn delay(&self, receive_count: u32, unit: f64, not_before: Option<Duration>) -> Duration {
        let jittered = self
            .step(receive_count)
            .mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0);
        jittered
            .max(not_before.unwrap_or_default())
            .min(MAX_VISIBILITY)
    }
}

impl FromStr for RetrySchedule {
    type Err = String;

    /// Comma-separated whole seconds, e.g. `10,60,300`: at least one, each 1 to 43200 (12 h,
    /// the longest visibility timeout SQS accepts).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let max = MAX_VISIBILITY.as_secs();
        let delays = s
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| match part.trim().parse::<u64>() {
                Ok(secs) if (1..=max).contains(&secs) => Ok(Duration::from_secs(secs)),
                _ => Err(format!(
                    "{part:?} is not a delay in whole seconds from 1 to {max}"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("expected at least one delay in seconds, e.g. 10,60,300".into());
        }
        Ok(Self(delays))
    }
}

/// Parses a `Retry-After` header value: delay-seconds or an HTTP-date, relative to `now`.
/// A date in the past means "now"; anything unparseable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16) -> Attempt {
        Attempt::Response {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn default_policy_classifies_like_the_issue_says() {
        let p = StatusPolicy::default();
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(p.classify(&response(s)), Verdict::Delivered, "{s}");
        }
        for s in [408, 425, 429, 500, 502, 503, 504, 599, 301, 302, 304, 100] {
            assert!(
                matches!(p.classify(&response(s)), Verdict::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 410, 413, 422, 499] {
            assert!(
                matches!(p.classify(&response(s)), Verdict::Permanent { .. }),
                "{s}"
            );
        }
        for a in [
            Attempt::Timeout,
            Attempt::Connection("reset".into()),
            Attempt::Other("x".into()),
        ] {
            assert!(matches!(
                p.classify(&a),
                Verdict::Retry { status: None, .. }
            ));
        }
    }

    #[test]
    fn missing_credentials_are_retried_whatever_the_lists_say() {
        // Even a policy that gives up on everything keeps an order whose credentials failed.
        let p = StatusPolicy {
            retryable: StatusSet::from_ranges(&[]),
            permanent: "100-599".parse().unwrap(),
        };
        for failure in [
            CredentialFailure::Unavailable,
            CredentialFailure::Rejected,
            CredentialFailure::Malformed,
        ] {
            let verdict = p.classify(&Attempt::NoCredentials {
                failure,
                reason: "invalid_client".into(),
            });
            let Verdict::Retry { reason, status, .. } = verdict else {
                panic!("{failure:?}: {verdict:?}");
            };
            assert_eq!(status, None);
            assert!(reason.contains(failure.as_str()), "{reason}");
            assert!(reason.contains("invalid_client"), "{reason}");
        }
    }

    #[test]
    fn overridden_lists_change_the_verdict() {
        // The seed's example: 500 and 400 count as failures; here 404 is retryable, 500 final.
        let p = StatusPolicy {
            retryable: "404".parse().unwrap(),
            permanent: "400-599".parse().unwrap(),
        };
        assert!(matches!(p.classify(&response(404)), Verdict::Retry { .. }));
        assert!(matches!(
            p.classify(&response(500)),
            Verdict::Permanent { .. }
        ));
    }

    #[test]
    fn retry_after_is_carried_into_the_verdict() {
        let p = StatusPolicy::default();
        let v = p.classify(&Attempt::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!(
            v,
            Verdict::Retry {
                reason: "backend answered 429".into(),
                status: Some(429),
                not_before: Some(Duration::from_secs(7)),
            }
        );
    }

    #[test]
    fn status_sets_parse_and_print() {
        let s: StatusSet = " 408, 425,429 ,500-599".parse().unwrap();
        assert_eq!(s.to_string(), "408,425,429,500-599");
        assert!(s.contains(550) && !s.contains(400));
        for bad in ["5xx", "99", "600", "500-400", "abc-def"] {
            assert!(bad.parse::<StatusSet>().is_err(), "{bad}");
        }
        assert!(!"".parse::<StatusSet>().unwrap().contains(500));
    }

    fn schedule(secs: &str) -> RetrySchedule {
        secs.parse().unwrap()
    }

    #[test]
    fn the_default_schedule_spans_about_a_day_in_steps_sqs_accepts() {
        let steps = RetrySchedule::default().0;
        let sum: Duration = steps.iter().sum();
        println!(
            "default retry schedule: {} retries, {} s = {:.1} h",
            steps.len(),
            sum.as_secs(),
            sum.as_secs_f64() / 3600.0
        );
        let hours = 60 * 60;
        assert!(
            (23 * hours..=25 * hours).contains(&sum.as_secs()),
            "about a day: {sum:?}"
        );
        assert!(steps.iter().all(|&d| d <= MAX_VISIBILITY), "{steps:?}");
    }

    #[test]
    fn each_receive_waits_its_step_and_past_the_end_the_first() {
        let s = schedule("10,60,300");
        let steps: Vec<u64> = (0..=5).map(|n| s.step(n).as_secs()).collect();
        assert_eq!(steps, [10, 10, 60, 300, 10, 10]);
        assert_eq!(s.step(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn equal_jitter_keeps_at_least_half_of_each_step() {
        let s = RetrySchedule::default();
        let eight_hours = Duration::from_secs(8 * 60 * 60);
        assert_eq!(s.delay(10, 0.0, None), eight_hours / 2);
        assert_eq!(s.delay(10, 1.0, None), eight_hours);
        assert_eq!(s.delay(1, 0.5, None), Duration::from_millis(7500));
        assert_eq!(
            s.delay(1, 7.0, None),
            Duration::from_secs(10),
            "unit is clamped"
        );
        assert_eq!(s.delay(1, -1.0, None), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_a_floor_but_visibility_stays_within_the_sqs_limit() {
        let s = RetrySchedule::default();
        let floor = Some(Duration::from_secs(30));
        assert_eq!(s.delay(1, 1.0, floor), Duration::from_secs(30));
        assert_eq!(s.delay(4, 1.0, floor), Duration::from_secs(300));
        assert_eq!(
            s.delay(1, 0.0, Some(Duration::from_secs(1 << 20))),
            MAX_VISIBILITY
        );
    }

    #[test]
    fn schedules_parse_as_comma_separated_seconds() {
        assert_eq!(schedule(" 1, 2 ,43200,"), schedule("1,2,43200"));
        assert_eq!(schedule("1,2,43200").0.len(), 3);
        for bad in ["", " , ", "0", "43201", "1,x", "-5", "1.5", "10s"] {
            assert!(bad.parse::<RetrySchedule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
