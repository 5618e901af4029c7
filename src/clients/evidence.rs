//! What happened to a client's connections, in words, for the reasons a rule was not measured.
//! A SKIP names what the run showed (who ended the connections, how long they lasted, which
//! fault never got to fire) and what would measure the rule here, never a generic hint that the
//! run contradicts.

use std::time::Duration;

use reference_server::{ClientFault, ScheduledFault};

use super::faults;
use super::log::ClientLog;
use super::timing::{seconds, Timing};

/// How the client's connections ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetimes {
    pub opened: usize,
    pub by_client: usize,
    pub by_server: usize,
    pub open_at_end: usize,
    pub longest: Duration,
}

impl Lifetimes {
    pub fn of(client: &ClientLog, observed_until: Duration) -> Lifetimes {
        let mut lifetimes = Lifetimes::default();
        for c in &client.connections {
            let Some(opened) = c.opened.filter(|&o| o <= observed_until) else { continue };
            lifetimes.opened += 1;
            let end = match c.ended.filter(|&e| e <= observed_until) {
                None => {
                    lifetimes.open_at_end += 1;
                    observed_until
                }
                Some(end) if c.ended_by_server() => {
                    lifetimes.by_server += 1;
                    end
                }
                Some(end) => {
                    lifetimes.by_client += 1;
                    end
                }
            };
            lifetimes.longest = lifetimes.longest.max(end.saturating_sub(opened));
        }
        lifetimes
    }

    /// "every connection (59) ended within 0.530 s, by the client", or "the longest of 3
    /// connections lasted 5.001 s (2 ended by the server, 1 still open at the end)".
    pub fn describe(&self) -> String {
        let n = self.opened;
        if n == 0 {
            return "no connection opened".into();
        }
        let within = seconds(self.longest);
        if self.open_at_end == 0 && (self.by_client == n || self.by_server == n) {
            let who = if self.by_client == n { "the client" } else { "the server" };
            return if n == 1 {
                format!("the one connection ended after {within}, by {who}")
            } else {
                format!("every connection ({n}) ended within {within}, by {who}")
            };
        }
        let mut parts = Vec::new();
        if self.by_client > 0 {
            parts.push(format!("{} ended by the client", self.by_client));
        }
        if self.by_server > 0 {
            parts.push(format!("{} by the server", self.by_server));
        }
        if self.open_at_end > 0 {
            parts.push(format!("{} still open at the end", self.open_at_end));
        }
        let of = if n == 1 { "the one connection".to_string() } else { format!("the longest of {n} connections") };
        format!("{of} lasted {within} ({})", parts.join(", "))
    }
}

/// A fault that acts a fixed time after each connect.
fn per_connection_delay(fault: ClientFault) -> Option<Duration> {
    match fault {
        ClientFault::DropEvery(d) | ClientFault::CloseEvery(d, _) | ClientFault::StallAfter(d) => Some(d),
        _ => None,
    }
}

/// The per-connection faults that no connection lasted long enough to meet: "drop-every=6s
/// never fired (it acts 0.600 s after a connect at this time scale)".
pub fn unfired(faults: &[ScheduledFault], timing: &Timing, lifetimes: &Lifetimes) -> Vec<String> {
    faults
        .iter()
        .filter_map(|entry| {
            let after = timing.scaled(per_connection_delay(entry.fault)?);
            (lifetimes.opened > 0 && lifetimes.longest < after).then(|| {
                format!(
                    "{} never fired (it acts {} after a connect at this time scale)",
                    faults::describe(entry),
                    seconds(after)
                )
            })
        })
        .collect()
}

/// The faults that end connections by themselves, as written.
pub fn connection_enders(faults: &[ScheduledFault]) -> Vec<String> {
    faults
        .iter()
        .filter(|entry| matches!(entry.fault, ClientFault::DropEvery(_) | ClientFault::CloseEvery(..)))
        .map(faults::describe)
        .collect()
}

/// The faults that leave Pings unanswered, as written.
pub fn starvers(faults: &[ScheduledFault]) -> Vec<String> {
    faults
        .iter()
        .filter(|entry| matches!(entry.fault, ClientFault::NoPong | ClientFault::StallAfter(_)))
        .map(faults::describe)
        .collect()
}

/// "; " and the sentences, or nothing.
pub fn then(sentences: &[String]) -> String {
    if sentences.is_empty() {
        String::new()
    } else {
        format!("; {}", sentences.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::log::Connection;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn lifetimes_say_who_ended_the_connections_and_which_fault_never_fired() {
        let closed_by_client = |at: f64| Connection {
            at: s(at),
            opened: Some(s(at)),
            client_closed: Some((s(at + 0.5), Some(1000))),
            ended: Some(s(at + 0.53)),
            ..Connection::default()
        };
        let log =
            ClientLog { connections: (0..59).map(|i| closed_by_client(i as f64)).collect(), ..ClientLog::default() };
        let lifetimes = Lifetimes::of(&log, s(100.0));
        assert_eq!(lifetimes.describe(), "every connection (59) ended within 0.530 s, by the client");
        let drop = faults::from_specs(&["drop-every=6s".into(), "no-pong".into()]).unwrap();
        let timing = Timing::new(0.1, Duration::from_millis(100));
        assert_eq!(
            unfired(&drop, &timing, &lifetimes),
            ["drop-every=6s never fired (it acts 0.600 s after a connect at this time scale)"]
        );
        assert_eq!(connection_enders(&drop), ["drop-every=6s"]);
        assert_eq!(starvers(&drop), ["no-pong"]);

        let mut mixed = log.clone();
        mixed.connections.push(Connection { at: s(99.0), opened: Some(s(99.0)), ..Connection::default() });
        assert_eq!(
            Lifetimes::of(&mixed, s(100.0)).describe(),
            "the longest of 60 connections lasted 1.000 s (59 ended by the client, 1 still open at the end)"
        );
    }
}
