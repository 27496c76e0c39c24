//! The two ways messages reach [`process`]: a batch handed over by the event source mapping
//! ([`on_batch`], [`on_tickets`]) and a scheduled poll that drains the queues itself
//! ([`scheduled`]). Both run the circuit breaker; the queues and the switch are ports.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::batch::{Backend, Message, Outcome, Policy, QueueError, Settle, Tally, process};
use crate::breaker::{Breaker, DeliveryState, ProbeResult, Switch, open_circuit, pause, probe};
use crate::pacer::Pacer;

/// A queue the forwarder consumes: it receives and deletes, and settles like any [`Settle`].
pub trait Source: Settle {
    /// The queue's URL, for logs.
    fn url(&self) -> &str;
    /// Up to `max` (≤ 10) messages, waiting up to `wait` for the first.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, QueueError>> + Send;
    /// Deletes messages by receipt handle; returns how many the queue refused.
    fn delete(&self, receipt_handles: &[&str]) -> impl Future<Output = usize> + Send;
    /// About how many messages the queue holds: visible, in flight and delayed.
    fn pending(&self) -> impl Future<Output = Result<usize, QueueError>> + Send;
}

/// The circuit breaker and what it needs: the in-memory breaker, the switch, and the queue of
/// parked tickets.
#[derive(Debug)]
pub struct Circuit<'a, W, Q> {
    pub breaker: &'a Breaker,
    pub switch: &'a W,
    pub tickets: &'a Q,
}

/// How a scheduled poll drains (`POLL_WAIT_SECONDS`, `POLL_MAX_MESSAGES`, `MAX_RPS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub wait: Duration,
    pub max_messages: Option<usize>,
    pub max_rps: Option<u32>,
}

/// Milliseconds since the Unix epoch, for the recorded state.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One batch from the event source mapping of an orders queue. If the breaker opens while it is
/// delivered, consumption is switched off.
pub async fn on_batch<B: Backend, S: Settle, W: Switch, Q>(
    messages: &[Message],
    backend: &B,
    queue: &S,
    policy: &Policy,
    deadline: Instant,
    circuit: Option<&Circuit<'_, W, Q>>,
) -> (Vec<Outcome>, Tally) {
    let breaker = circuit.map(|c| {
        c.breaker.expire();
        c.breaker
    });
    let outcomes = process(messages, backend, queue, policy, deadline, None, breaker).await;
    let mut tally: Tally = outcomes.iter().collect();
    if let Some(c) = circuit {
        tally.circuit_opened = opened(c, &outcomes).await;
    }
    (outcomes, tally)
}

/// One batch of tickets from the probe queue: the probe.
pub async fn on_tickets<B: Backend, S: Source, W: Switch, Q>(
    tickets: &[Message],
    backend: &B,
    queue: &S,
    policy: &Policy,
    deadline: Instant,
    circuit: &Circuit<'_, W, Q>,
) -> (Vec<Outcome>, Tally) {
    let interval = circuit.breaker.hold();
    let (outcomes, result) = probe(
        tickets,
        backend,
        queue,
        circuit.switch,
        policy,
        deadline,
        interval,
        now_ms(),
    )
    .await;
    let mut tally: Tally = outcomes.iter().collect();
    count_probe(&mut tally, &result, circuit.breaker);
    (outcomes, tally)
}

fn count_probe(tally: &mut Tally, result: &ProbeResult, breaker: &Breaker) {
    match result {
        ProbeResult::Closed => {
            breaker.close();
            tally.circuit_closed += 1;
        }
        ProbeResult::Failed { .. } => {
            tally.probes_failed += 1;
            tally.delivery_paused = 1;
        }
        ProbeResult::Paused | ProbeResult::Waiting { .. } => tally.delivery_paused = 1,
        ProbeResult::Delivered | ProbeResult::Skipped => {}
    }
}

/// Who pauses delivery when a message is given up with `FAILURE_ACTION=pause`.
pub const PAUSED_BY_FAILURE_ACTION: &str = "forwarder (FAILURE_ACTION=pause)";

/// Switches consumption off if `outcomes` parked a ticket: the circuit opens, or, for a message
/// given up with `FAILURE_ACTION=pause`, delivery pauses for an operator. Returns 1 if it did.
async fn opened<W: Switch, Q>(circuit: &Circuit<'_, W, Q>, outcomes: &[Outcome]) -> usize {
    let stopped = outcomes.iter().find_map(|o| match o {
        Outcome::Stopped { reason } => Some(reason),
        _ => None,
    });
    let parked = outcomes.iter().find_map(|o| match o {
        Outcome::Parked { reason } => Some(reason),
        _ => None,
    });
    let switched = match (stopped, parked) {
        (Some(reason), _) => {
            pause(circuit.switch, PAUSED_BY_FAILURE_ACTION, reason, now_ms()).await
        }
        (None, Some(reason)) => {
            open_circuit(circuit.switch, reason, now_ms(), circuit.breaker.hold()).await
        }
        (None, None) => return 0,
    };
    if let Err(e) = switched {
        // The ticket is parked: the probe still runs, and closes what did get switched off.
        error!(error = %e, "could not fully switch delivery off");
    }
    1
}

/// A scheduled poll. Paused: nothing. Open: the parked tickets are probed, and only if that
/// closes the circuit does the drain go on. Then the queues are drained in turn, until each is
/// empty, the time budget is spent, `max_messages` were received, or the breaker opens.
pub async fn scheduled<B: Backend, S: Source, W: Switch>(
    queues: &[S],
    backend: &B,
    policy_for: impl Fn(&S) -> Policy,
    limits: &Limits,
    deadline: Instant,
    circuit: Option<&Circuit<'_, W, S>>,
) -> Tally {
    let mut tally = Tally::default();
    if let Some(c) = circuit {
        let state = c.switch.read().await;
        if let Ok(DeliveryState::Paused { by, reason, .. }) = &state {
            info!(%by, %reason, "delivery is paused by an operator; nothing polled");
            tally.delivery_paused = 1;
            return tally;
        }
        let tickets = match c.tickets.receive(10, Duration::ZERO).await {
            Ok(tickets) => tickets,
            Err(e) => {
                warn!(error = %e, "could not receive tickets");
                Vec::new()
            }
        };
        let policy = policy_for(c.tickets);
        let (outcomes, result) = probe(
            &tickets,
            backend,
            c.tickets,
            c.switch,
            &policy,
            deadline,
            c.breaker.hold(),
            now_ms(),
        )
        .await;
        delete_handled(c.tickets, &tickets, &outcomes).await;
        outcomes.iter().for_each(|o| tally.add(o));
        count_probe(&mut tally, &result, c.breaker);
        let still_open = matches!(
            result,
            ProbeResult::Failed { .. } | ProbeResult::Waiting { .. }
        ) || (result == ProbeResult::Skipped
            && matches!(state, Ok(DeliveryState::Open { .. })));
        if still_open {
            info!(
                ?tally,
                "circuit open; the queues wait for a successful probe"
            );
            return tally;
        }
        c.breaker.close();
    }
    let pacer = limits.max_rps.map(Pacer::per_second);
    for queue in queues {
        let breaker = circuit.map(|c| c.breaker);
        let policy = policy_for(queue);
        let outcomes = drain(
            queue,
            backend,
            &policy,
            limits,
            deadline,
            pacer.as_ref(),
            breaker,
            &mut tally,
        )
        .await;
        if let Some(c) = circuit {
            let opened = opened(c, &outcomes).await;
            tally.circuit_opened += opened;
            if opened > 0 {
                break;
            }
        }
    }
    info!(?tally, "poll done");
    tally
}

async fn delete_handled<S: Source>(queue: &S, messages: &[Message], outcomes: &[Outcome]) {
    let handles: Vec<&str> = messages
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| o.is_handled())
        .map(|(m, _)| m.receipt_handle.as_str())
        .collect();
    if !handles.is_empty() {
        queue.delete(&handles).await;
    }
}

/// Drains one queue. While one batch is delivered, the next is received and the previous one
/// deleted, so that queue round trips do not stall delivery (a `MAX_RPS` pacer would otherwise
/// lose their time on every batch). Returns the parking outcomes, if the breaker opened.
#[allow(clippy::too_many_arguments)]
async fn drain<B: Backend, S: Source>(
    queue: &S,
    backend: &B,
    policy: &Policy,
    limits: &Limits,
    deadline: Instant,
    pacer: Option<&Pacer>,
    breaker: Option<&Breaker>,
    tally: &mut Tally,
) -> Vec<Outcome> {
    let mut parked = Vec::new();
    let mut batch: Vec<Message> = Vec::new();
    let mut handled: Vec<String> = Vec::new();
    let mut draining = true;
    loop {
        let room = limits.max_messages.map_or(10, |cap| {
            cap.saturating_sub(tally.received + batch.len()).min(10)
        });
        let fetch = draining
            && room > 0
            && !breaker.is_some_and(Breaker::is_open)
            && Instant::now() + limits.wait + policy.attempt_budget <= deadline;
        let handles: Vec<&str> = handled.iter().map(String::as_str).collect();
        let (outcomes, fetched, _) = tokio::join!(
            process(&batch, backend, queue, policy, deadline, pacer, breaker),
            async {
                if fetch {
                    Some(queue.receive(room, limits.wait).await)
                } else {
                    None
                }
            },
            queue.delete(&handles),
        );
        outcomes.iter().for_each(|o| tally.add(o));
        handled = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_handled())
            .map(|(m, _)| m.receipt_handle.clone())
            .collect();
        parked.extend(
            outcomes
                .into_iter()
                .filter(|o| matches!(o, Outcome::Parked { .. } | Outcome::Stopped { .. })),
        );
        batch = match fetched {
            Some(Ok(messages)) => messages,
            Some(Err(e)) => {
                error!(queue = queue.url(), error = %e, "receive failed; ending this poll");
                Vec::new()
            }
            None => Vec::new(),
        };
        draining &= !batch.is_empty();
        if batch.is_empty() && handled.is_empty() {
            break;
        }
    }
    parked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::AfterPermanent;
    use crate::fakes::{
        FakeSource, FakeSwitch, ScriptedBackend, answer as status, far, message, policy,
    };
    use crate::retry::Attempt;

    const HOLD: Duration = Duration::from_secs(30);

    fn limits() -> Limits {
        Limits {
            wait: Duration::ZERO,
            max_messages: None,
            max_rps: None,
        }
    }

    fn filled(prefix: &str, n: usize) -> FakeSource {
        FakeSource::holding((0..n).map(|i| message(&format!("{prefix}{i}"), None)))
    }

    #[tokio::test]
    async fn a_poll_drains_each_queue_in_turn_and_deletes_what_it_delivered() {
        let queues = [filled("p", 25), filled("f", 3)];
        let backend = ScriptedBackend::answering(status(200)).with("p7", [status(503)]);
        let tally =
            scheduled::<_, _, FakeSwitch>(&queues, &backend, |_| policy(), &limits(), far(), None)
                .await;
        assert_eq!(
            (tally.received, tally.delivered, tally.retrying),
            (28, 27, 1)
        );
        assert_eq!(queues[0].deleted().len(), 24);
        assert_eq!(queues[1].deleted().len(), 3);
        assert_eq!(queues[0].remaining(), 0);
    }

    #[tokio::test]
    async fn a_poll_stops_at_the_message_cap() {
        let queues = [filled("p", 25)];
        let backend = ScriptedBackend::answering(status(200));
        let capped = Limits {
            max_messages: Some(12),
            ..limits()
        };
        let tally =
            scheduled::<_, _, FakeSwitch>(&queues, &backend, |_| policy(), &capped, far(), None)
                .await;
        assert_eq!(tally.received, 12);
        assert_eq!(queues[0].remaining(), 13);
    }

    #[tokio::test]
    async fn an_outage_during_a_poll_parks_one_ticket_holds_the_batch_and_stops_receiving() {
        let queues = [filled("p", 40), filled("f", 5)];
        let tickets = FakeSource::default();
        let switch = FakeSwitch::default();
        let breaker = Breaker::new(3, HOLD);
        let circuit = Circuit {
            breaker: &breaker,
            switch: &switch,
            tickets: &tickets,
        };
        let backend = ScriptedBackend::answering(status(503));
        let sequential = |_: &FakeSource| Policy {
            max_in_flight: 1,
            ..policy()
        };
        let tally = scheduled(
            &queues,
            &backend,
            sequential,
            &limits(),
            far(),
            Some(&circuit),
        )
        .await;
        assert_eq!(
            backend.calls().len(),
            3,
            "the three failures that opened it"
        );
        // The batch received while the first was delivered is held untried too.
        assert_eq!((tally.parked, tally.held, tally.circuit_opened), (1, 17, 1));
        assert_eq!(queues[0].parked().len(), 1);
        assert_eq!(
            queues[0].received(),
            20,
            "no batch received after it opened"
        );
        assert_eq!(queues[1].received(), 0, "the failover queue waits too");
        assert!(!switch.consuming());
        assert!(matches!(switch.state(), DeliveryState::Open { .. }));
    }

    #[tokio::test]
    async fn while_open_a_tick_probes_instead_of_draining() {
        let queues = [filled("p", 5)];
        let tickets = filled("t", 1);
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 0, HOLD).await.unwrap();
        let breaker = Breaker::new(3, HOLD);
        let circuit = Circuit {
            breaker: &breaker,
            switch: &switch,
            tickets: &tickets,
        };
        let down = ScriptedBackend::answering(status(503));
        let tally = scheduled(
            &queues,
            &down,
            |_| policy(),
            &limits(),
            far(),
            Some(&circuit),
        )
        .await;
        assert_eq!(down.calls(), ["t0"], "one probe, nothing drained");
        assert_eq!(tally.probes_failed, 1);
        assert_eq!(queues[0].received(), 0);
        assert_eq!(tickets.visibility_changes(), [("t0".to_string(), HOLD)]);

        let up = ScriptedBackend::answering(status(200));
        tickets.make_visible();
        let tally = scheduled(&queues, &up, |_| policy(), &limits(), far(), Some(&circuit)).await;
        assert_eq!(tally.circuit_closed, 1);
        assert_eq!(tally.delivered, 6, "the ticket, then the queue");
        assert_eq!(tickets.deleted(), ["rh-t0"]);
        assert_eq!(switch.state(), DeliveryState::Delivering);
    }

    #[tokio::test]
    async fn while_paused_a_tick_does_nothing() {
        let queues = [filled("p", 5)];
        let tickets = filled("t", 1);
        let switch = FakeSwitch::with(DeliveryState::Paused {
            by: "ops".into(),
            since_ms: 0,
            reason: "maintenance".into(),
        });
        let breaker = Breaker::new(3, HOLD);
        let circuit = Circuit {
            breaker: &breaker,
            switch: &switch,
            tickets: &tickets,
        };
        let backend = ScriptedBackend::answering(status(200));
        let tally = scheduled(
            &queues,
            &backend,
            |_| policy(),
            &limits(),
            far(),
            Some(&circuit),
        )
        .await;
        let paused = Tally {
            delivery_paused: 1,
            ..Tally::default()
        };
        assert_eq!(tally, paused, "nothing received, and the pause reported");
        assert!(backend.calls().is_empty());
        assert_eq!((queues[0].received(), tickets.received()), (0, 0));
    }

    #[tokio::test]
    async fn a_batch_that_opens_the_circuit_switches_consumption_off() {
        let tickets = FakeSource::default();
        let switch = FakeSwitch::default();
        let breaker = Breaker::new(2, HOLD);
        let circuit = Circuit {
            breaker: &breaker,
            switch: &switch,
            tickets: &tickets,
        };
        let queue = FakeSource::default();
        let backend = ScriptedBackend::answering(Attempt::Timeout);
        let msgs: Vec<Message> = (0..10).map(|i| message(&format!("m{i}"), None)).collect();
        let sequential = Policy {
            max_in_flight: 1,
            ..policy()
        };
        let (outcomes, tally) =
            on_batch(&msgs, &backend, &queue, &sequential, far(), Some(&circuit)).await;
        assert_eq!(outcomes.len(), 10);
        assert_eq!((tally.parked, tally.held, tally.circuit_opened), (1, 8, 1));
        assert!(!switch.consuming());
    }

    #[tokio::test]
    async fn failure_action_pause_parks_the_exhausted_message_and_pauses_for_an_operator() {
        let tickets = FakeSource::default();
        let switch = FakeSwitch::default();
        let breaker = Breaker::new(0, HOLD);
        let circuit = Circuit {
            breaker: &breaker,
            switch: &switch,
            tickets: &tickets,
        };
        let queue = FakeSource::default();
        let backend = ScriptedBackend::answering(status(200)).with("a2", [status(503)]);
        let mut msgs: Vec<Message> = ["a1", "a2", "a3"]
            .iter()
            .map(|id| message(id, Some("A")))
            .collect();
        msgs[1].receive_count = 5;
        let pausing = Policy {
            after_permanent: AfterPermanent::Pause,
            max_receives: Some(5),
            ordered: true,
            ..policy()
        };
        let (outcomes, tally) =
            on_batch(&msgs, &backend, &queue, &pausing, far(), Some(&circuit)).await;
        assert_eq!(outcomes[0], Outcome::Delivered);
        assert!(
            matches!(&outcomes[1], Outcome::Stopped { reason } if reason.starts_with("retries exhausted"))
        );
        assert!(
            outcomes[1].is_handled(),
            "its copy waits in the probe queue"
        );
        assert!(!outcomes[2].is_handled(), "nothing overtakes it");
        assert_eq!(backend.calls(), ["a1", "a2"]);
        assert_eq!((tally.stopped, tally.circuit_opened), (1, 1));
        assert!(
            matches!(switch.state(), DeliveryState::Paused { ref by, .. } if by == PAUSED_BY_FAILURE_ACTION)
        );
        assert!(!switch.consuming());

        // After an operator resumes, a failure before the last receive is an ordinary retry.
        breaker.close();
        let queue = FakeSource::default();
        let mut early = message("b1", None);
        early.receive_count = 4;
        let down = ScriptedBackend::answering(status(503));
        let (outcomes, _) =
            on_batch(&[early], &down, &queue, &pausing, far(), Some(&circuit)).await;
        assert!(matches!(outcomes[0], Outcome::Retrying { .. }));
    }
}
