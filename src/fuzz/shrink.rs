//! Shrinking: the fewest frames, each in its smallest form, that still break the same
//! invariant. Greedy, as delta debugging does it: try each simpler candidate in turn, keep the
//! first that still fails, start again from it, stop when none does or the budget is spent.

use super::frame::{Frame, Payload};

/// Simpler values a member may take, smallest first.
const SIMPLER: [&str; 5] = ["0", "1", "\"\"", "true", "null"];

/// How big an input is: frames first, then how unusual their kinds are, then bytes, then
/// waits. Every candidate is strictly smaller, so shrinking ends.
fn measure(frames: &[Frame]) -> (usize, usize, usize, u128) {
    let rank = |frame: &Frame| match frame.payload {
        Payload::Object(_) | Payload::Text(_) => 0,
        Payload::Binary(_) | Payload::InvalidUtf8(_) => 1,
        Payload::Fragments(_) => 2,
        Payload::FragmentsWithPing(_) => 3,
    };
    (
        frames.len(),
        frames.iter().map(rank).sum(),
        frames.iter().map(Frame::size).sum(),
        frames.iter().map(|f| f.delay.as_millis()).sum(),
    )
}

/// Every one-step simplification of `frames`, each strictly smaller.
pub fn candidates(frames: &[Frame]) -> Vec<Vec<Frame>> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    let with = |index: usize, frame: Frame| {
        let mut next = frames.to_vec();
        next[index] = frame;
        next
    };
    if frames.len() > 1 {
        for index in 0..frames.len() {
            let mut next = frames.to_vec();
            next.remove(index);
            out.push(next);
        }
    }
    for (index, frame) in frames.iter().enumerate() {
        if !frame.delay.is_zero() {
            out.push(with(index, Frame { delay: Default::default(), ..frame.clone() }));
        }
        match &frame.payload {
            Payload::Object(members) => {
                for m in 0..members.len() {
                    let mut fewer = members.clone();
                    fewer.remove(m);
                    out.push(with(index, Frame { payload: Payload::Object(fewer), ..frame.clone() }));
                    for simpler in SIMPLER {
                        if simpler.len() < members[m].1.len() {
                            let mut next = members.clone();
                            next[m].1 = simpler.to_string();
                            out.push(with(index, Frame { payload: Payload::Object(next), ..frame.clone() }));
                        }
                    }
                }
            }
            Payload::Text(text) if text.len() > 1 => {
                let half = text.len() / 2;
                for part in [&text[..floor(text, half)], &text[floor(text, half)..]] {
                    out.push(with(index, Frame { payload: Payload::Text(part.to_string()), ..frame.clone() }));
                }
            }
            Payload::Fragments(parts) | Payload::FragmentsWithPing(parts) => {
                out.push(with(index, Frame { payload: Payload::Text(parts.concat()), ..frame.clone() }));
                if matches!(frame.payload, Payload::FragmentsWithPing(_)) {
                    out.push(with(index, Frame { payload: Payload::Fragments(parts.clone()), ..frame.clone() }));
                }
            }
            Payload::Binary(bytes) | Payload::InvalidUtf8(bytes) if bytes.len() > 1 => {
                let half = bytes.len() / 2;
                let kind = |b: Vec<u8>| match frame.payload {
                    Payload::Binary(_) => Payload::Binary(b),
                    _ => Payload::InvalidUtf8(b),
                };
                for part in [bytes[..half].to_vec(), bytes[half..].to_vec()] {
                    out.push(with(index, Frame { payload: kind(part), ..frame.clone() }));
                }
            }
            _ => {}
        }
    }
    let size = measure(frames);
    out.retain(|candidate| measure(candidate) < size);
    out
}

/// The nearest char boundary at or below `at`.
fn floor(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_candidate_is_smaller_so_a_greedy_shrink_ends_at_the_minimal_input() {
        let ping = Frame::now(Payload::Object(vec![
            ("type".into(), "\"Ping\"".into()),
            ("timestamp".into(), "1697234567000".into()),
            ("extra".into(), "false".into()),
        ]));
        let noise = Frame { payload: Payload::Text("[[[[".into()), delay: Duration::from_millis(9) };
        // Breaks when a frame is an object with a boolean `extra` member.
        let breaks = |frames: &[Frame]| {
            frames.iter().any(|f| match &f.payload {
                Payload::Object(m) => m.iter().any(|(k, v)| k == "extra" && (v == "true" || v == "false")),
                _ => false,
            })
        };
        let mut best = vec![noise.clone(), ping, noise];
        let mut steps = 0;
        while let Some(next) = candidates(&best).into_iter().find(|c| breaks(c)) {
            best = next;
            steps += 1;
            assert!(steps < 100, "shrinking ends");
        }
        assert_eq!(best, vec![Frame::now(Payload::Object(vec![("extra".into(), "true".into())]))]);
    }
}
