//! Finding the next of a few bytes eight at a time, in safe code.
//!
//! `validate` spends much of its time looking for the next quote or bracket in short runs of
//! text. memchr's vector searches pay a set-up cost per call that a run of ten bytes never
//! earns back, and a byte loop costs several instructions a byte. A 64-bit word holds eight
//! bytes, and the classic zero-byte test flags them all in a handful of operations.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` equal to `byte`. Bits above the lowest may be spurious
/// (a borrow carries into the next byte), but the lowest is always exact, and it is the only
/// one callers use.
pub fn matches(word: u64, byte: u8) -> u64 {
    let v = word ^ (ONES * u64::from(byte));
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// The high bit of each byte of `word` below 0x20 (a control character), exact in the same
/// sense as [`matches`].
pub fn controls(word: u64) -> u64 {
    word.wrapping_sub(ONES * 0x20) & !word & HIGHS
}

/// The first position at or after `from` whose byte `flag` marks: `flag` maps a word to the
/// high bits of its marked bytes, and `is_marked` decides the last few bytes one at a time.
pub fn find(bytes: &[u8], from: usize, flag: impl Fn(u64) -> u64, is_marked: impl Fn(u8) -> bool) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = flag(word);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    bytes.get(at..)?.iter().position(|b| is_marked(*b)).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_word_search_agrees_with_a_byte_search(bytes: Vec<u8>, from in 0usize..80, needles: (u8, u8)) {
            let flag = |w: u64| matches(w, needles.0) | matches(w, needles.1) | controls(w);
            let is_marked = |b: u8| b == needles.0 || b == needles.1 || b < 0x20;
            let expected = bytes.get(from..).and_then(|rest| rest.iter().position(|b| is_marked(*b)).map(|i| from + i));
            proptest::prop_assert_eq!(find(&bytes, from, flag, is_marked), expected);
        }
    }

    #[test]
    fn borrows_never_move_the_first_match() {
        // 0x00 borrows into the byte above it; 0x21 and 0x23 sit beside the quote 0x22.
        let bytes = b"\x21\x23\x00\x22\x01\x22\x5c\x5c";
        for from in 0..bytes.len() {
            let expected = bytes[from..].iter().position(|b| *b == b'"').map(|i| from + i);
            assert_eq!(find(bytes, from, |w| matches(w, b'"'), |b| b == b'"'), expected);
        }
    }
}
