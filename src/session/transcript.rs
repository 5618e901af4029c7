//! The last frames of a connection, timestamped, so a failure report can show what arrived.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// Frames kept per connection; older ones are counted, not stored.
const KEPT: usize = 32;
/// Of which the client's own last sends, kept even under a flood of received frames.
const SENDS_KEPT: usize = 4;
/// Longest frame text kept; longer text is cut with a marker.
const KEPT_CHARS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Sent,
    Received,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptEntry {
    /// Milliseconds since the connection was opened.
    pub at_ms: u64,
    pub direction: Direction,
    /// text, binary, close or dropped.
    pub kind: &'static str,
    pub data: String,
}

/// Frames kept whole when recording for snapshots; more are counted.
const RECORDED_KEPT: usize = 2_000;
/// Longest frame text kept whole when recording.
const RECORDED_CHARS: usize = 64 * 1024;

/// One frame of a full recording (for snapshots): every frame, with its whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub direction: Direction,
    /// text, binary, close, dropped, or connect.
    pub kind: &'static str,
    pub data: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    entries: VecDeque<TranscriptEntry>,
    omitted: usize,
    /// Set when recording: every frame, whole, up to [`RECORDED_KEPT`].
    recording: Option<Vec<Recorded>>,
}

impl Transcript {
    /// Keeps every frame whole from now on (bounded), besides the short transcript.
    pub fn start_recording(&mut self) {
        self.recording.get_or_insert_with(Vec::new);
    }

    /// The full recording, if one was started.
    pub fn recording(&self) -> &[Recorded] {
        self.recording.as_deref().unwrap_or_default()
    }

    pub fn record(&mut self, at: Duration, direction: Direction, kind: &'static str, data: &str) {
        if let Some(recording) = &mut self.recording {
            if recording.len() < RECORDED_KEPT {
                let mut cut = data.len().min(RECORDED_CHARS);
                while !data.is_char_boundary(cut) {
                    cut -= 1;
                }
                recording.push(Recorded { direction, kind, data: data[..cut].to_string() });
            }
        }
        if self.entries.len() == KEPT {
            // Keep the client's last few sends however many broadcasts arrive after them.
            let sends = self.entries.iter().filter(|e| e.direction == Direction::Sent).count();
            let evict = if sends > SENDS_KEPT {
                0
            } else {
                self.entries.iter().position(|e| e.direction == Direction::Received).unwrap_or(0)
            };
            self.entries.remove(evict);
            self.omitted += 1;
        }
        let data = if data.len() > KEPT_CHARS {
            let mut cut = KEPT_CHARS;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}… ({} bytes)", &data[..cut], data.len())
        } else {
            data.to_string()
        };
        self.entries.push_back(TranscriptEntry { at_ms: at.as_millis() as u64, direction, kind, data });
    }

    pub fn entries(&self) -> impl Iterator<Item = &TranscriptEntry> {
        self.entries.iter()
    }

    /// How many earlier entries were dropped to keep the transcript short.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    pub fn last(&self, n: usize) -> impl Iterator<Item = &TranscriptEntry> {
        self.entries.iter().skip(self.entries.len().saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_frames_and_cuts_long_ones() {
        let mut transcript = Transcript::default();
        for i in 0..40 {
            transcript.record(Duration::from_millis(i), Direction::Received, "text", &"é".repeat(300));
        }
        assert_eq!(transcript.entries().count(), KEPT);
        assert_eq!(transcript.omitted(), 8);
        let first = transcript.entries().next().unwrap();
        assert_eq!(first.at_ms, 8);
        assert!(first.data.ends_with("… (600 bytes)"), "{}", first.data);
    }

    #[test]
    fn a_flood_of_received_frames_does_not_push_out_the_last_sends() {
        let mut transcript = Transcript::default();
        for i in 0..10 {
            transcript.record(Duration::from_millis(i), Direction::Sent, "text", &format!("ping {i}"));
        }
        for i in 10..200 {
            transcript.record(Duration::from_millis(i), Direction::Received, "text", "broadcast");
        }
        let sent: Vec<&str> =
            transcript.entries().filter(|e| e.direction == Direction::Sent).map(|e| e.data.as_str()).collect();
        assert_eq!(sent, ["ping 6", "ping 7", "ping 8", "ping 9"]);
        assert_eq!(transcript.entries().count(), KEPT);
        assert_eq!(transcript.entries().last().unwrap().at_ms, 199);
    }
}
