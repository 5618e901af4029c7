//! Faults aimed at clients: a timeline of drops, closes, refusals, withheld Pongs, stalls and
//! outages, so a client's heartbeat and reconnect handling can be watched (`wsprobe serve`).
//! Unlike [`Fault`](crate::Fault), which breaks the protocol for every connection all the
//! time, each of these is active over a window of the server's life.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// Drop the TCP connection, without a Close, this long after each connect.
    DropEvery(Duration),
    /// Send a Close with this code this long after each connect.
    CloseEvery(Duration, u16),
    /// After a connection ended by one of these faults, refuse that client's new connections
    /// (HTTP 503 at the upgrade) for this long.
    RefuseFor(Duration),
    /// Leave every Ping unanswered.
    NoPong,
    /// This long after each connect, stop sending anything (no Pong, no broadcast) while the
    /// connection stays open.
    StallAfter(Duration),
    /// When the window opens: drop every connection, then refuse all upgrades for this long.
    DownFor(Duration),
}

/// One fault and when it applies, relative to the server's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledFault {
    pub fault: ClientFault,
    pub from: Duration,
    /// End of the window; `None`: until the server stops.
    pub until: Option<Duration>,
}

impl ScheduledFault {
    /// A fault for the whole life of the server.
    pub fn always(fault: ClientFault) -> ScheduledFault {
        ScheduledFault { fault, from: Duration::ZERO, until: None }
    }

    pub fn active_at(&self, since_start: Duration) -> bool {
        since_start >= self.from && self.until.is_none_or(|until| since_start < until)
    }
}

/// Every scheduled client fault; empty for a well-behaved server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub entries: Vec<ScheduledFault>,
}

/// What a new connection should suffer, decided when it opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionFaults {
    pub drop_after: Option<Duration>,
    pub close_after: Option<(Duration, u16)>,
    pub stall_after: Option<Duration>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn active(&self, since_start: Duration) -> impl Iterator<Item = ClientFault> + '_ {
        self.entries.iter().filter(move |e| e.active_at(since_start)).map(|e| e.fault)
    }

    /// The per-connection timers for a connection opening now; the earliest of each kind wins.
    pub fn for_connection(&self, since_start: Duration) -> ConnectionFaults {
        let mut faults = ConnectionFaults::default();
        for fault in self.active(since_start) {
            match fault {
                ClientFault::DropEvery(after) => {
                    faults.drop_after = Some(faults.drop_after.map_or(after, |d| d.min(after)));
                }
                ClientFault::CloseEvery(after, code) => {
                    if faults.close_after.is_none_or(|(d, _)| after < d) {
                        faults.close_after = Some((after, code));
                    }
                }
                ClientFault::StallAfter(after) => {
                    faults.stall_after = Some(faults.stall_after.map_or(after, |d| d.min(after)));
                }
                ClientFault::RefuseFor(_) | ClientFault::NoPong | ClientFault::DownFor(_) => {}
            }
        }
        faults
    }

    pub fn withholds_pongs(&self, since_start: Duration) -> bool {
        self.active(since_start).any(|f| f == ClientFault::NoPong)
    }

    /// How long to refuse a client whose connection a fault just ended; the longest wins.
    pub fn refusal_after_drop(&self, since_start: Duration) -> Option<Duration> {
        self.active(since_start)
            .filter_map(|f| match f {
                ClientFault::RefuseFor(length) => Some(length),
                _ => None,
            })
            .max()
    }

    /// The outages: (start, length), relative to the server's start.
    pub fn outages(&self) -> Vec<(Duration, Duration)> {
        self.entries
            .iter()
            .filter_map(|e| match e.fault {
                ClientFault::DownFor(length) => Some((e.from, length)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn windows_decide_what_a_connection_gets() {
        let plan = FaultPlan {
            entries: vec![
                ScheduledFault::always(ClientFault::DropEvery(S(5))),
                ScheduledFault { fault: ClientFault::DropEvery(S(2)), from: S(10), until: Some(S(20)) },
                ScheduledFault { fault: ClientFault::NoPong, from: S(30), until: None },
                ScheduledFault { fault: ClientFault::CloseEvery(S(3), 4000), from: S(0), until: Some(S(1)) },
            ],
        };
        assert_eq!(plan.for_connection(S(0)).drop_after, Some(S(5)));
        assert_eq!(plan.for_connection(S(0)).close_after, Some((S(3), 4000)));
        assert_eq!(plan.for_connection(S(1)).close_after, None, "the window is half-open");
        assert_eq!(plan.for_connection(S(15)).drop_after, Some(S(2)));
        assert!(!plan.withholds_pongs(S(29)));
        assert!(plan.withholds_pongs(S(30)));
        assert_eq!(plan.refusal_after_drop(S(0)), None);
    }
}
