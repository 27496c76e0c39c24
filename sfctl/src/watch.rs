//! `sfctl status --watch`: the status redrawn every interval, until Ctrl-C or `--count` refreshes.

use std::io::Write;
use std::time::{Duration, SystemTime};

/// Clears a terminal and puts the cursor at its top left.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// One refresh as printed: a header line, then the status or why this refresh failed. On a
/// terminal the screen is cleared first; otherwise the refreshes follow one another.
fn frame(
    stack: &str,
    at: SystemTime,
    interval: Duration,
    status: &anyhow::Result<String>,
    terminal: bool,
) -> String {
    let header = format!(
        "stack {stack}  {}  every {}s  Ctrl-C to stop",
        httpdate::fmt_http_date(at),
        interval.as_secs()
    );
    let body = match status {
        Ok(text) => text.clone(),
        Err(e) => format!("this refresh failed: {e:#}\n"),
    };
    if terminal {
        format!("{CLEAR}{header}\n\n{body}")
    } else {
        format!("{header}\n\n{body}\n")
    }
}

/// Writes `refresh()` to `out` every `interval` until Ctrl-C, or `count` refreshes when given;
/// `terminal`: `out` is one, to clear before each refresh.
pub async fn watch<R>(
    (out, terminal): (&mut impl Write, bool),
    stack: &str,
    interval: Duration,
    count: Option<u32>,
    refresh: impl Fn() -> R,
) -> anyhow::Result<()>
where
    R: Future<Output = anyhow::Result<String>>,
{
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut shown = 0;
    loop {
        let status = tokio::select! {
            status = refresh() => status,
            _ = &mut stop => break,
        };
        out.write_all(frame(stack, SystemTime::now(), interval, &status, terminal).as_bytes())?;
        out.flush()?;
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = &mut stop => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Duration = Duration::from_secs(1_764_601_200); // 2025-12-01 15:00:00 UTC

    #[test]
    fn a_frame_is_a_header_then_the_status() {
        let at = SystemTime::UNIX_EPOCH + AT;
        let two = Duration::from_secs(2);
        let shown = frame("shop", at, two, &Ok("delivery: delivering\n".into()), false);
        assert_eq!(
            shown,
            "stack shop  Mon, 01 Dec 2025 15:00:00 GMT  every 2s  Ctrl-C to stop\n\n\
             delivery: delivering\n\n"
        );
        let on_terminal = frame("shop", at, two, &Ok("x\n".into()), true);
        assert!(
            on_terminal.starts_with("\x1b[H\x1b[2Jstack shop  "),
            "{on_terminal:?}"
        );
    }

    #[test]
    fn a_failed_refresh_shows_why() {
        let failed = Err(anyhow::anyhow!("timed out").context("reading the queue"));
        let shown = frame(
            "shop",
            SystemTime::UNIX_EPOCH + AT,
            Duration::from_secs(5),
            &failed,
            false,
        );
        assert!(
            shown.ends_with("\n\nthis refresh failed: reading the queue: timed out\n\n"),
            "{shown:?}"
        );
    }

    #[tokio::test]
    async fn it_stops_after_count_refreshes_and_goes_on_after_errors() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let refresh = || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err(anyhow::anyhow!("throttled")),
                n => Ok(format!("refresh {n}\n")),
            }
        };
        let mut out = Vec::new();
        watch(
            (&mut out, false),
            "shop",
            Duration::from_millis(1),
            Some(3),
            refresh,
        )
        .await
        .expect("watch");
        assert_eq!(calls.into_inner(), 3);
        let shown = String::from_utf8(out).expect("text");
        assert_eq!(shown.matches("Ctrl-C to stop").count(), 3, "{shown}");
        assert!(shown.contains("this refresh failed: throttled"), "{shown}");
        assert!(shown.ends_with("\n\nrefresh 2\n\n"), "{shown}");
    }
}
