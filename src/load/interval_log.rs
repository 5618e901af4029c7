//! Reading HdrHistogram interval logs (`.hlog`) back: the benchmarks split one run into
//! phases, and `merge` adds the logs of several shards. Every histogram is decoded in full, so
//! whatever is computed from them is computed from the samples, never from rounded percentiles.

use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// One line of an interval log: the samples of one metric over one interval.
#[derive(Debug, Clone)]
pub struct Interval {
    /// The metric (`push`, `uncorrected`, `connect`, …); untagged lines get `None`.
    pub tag: Option<String>,
    /// Start of the interval after the log's start time.
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// A whole interval log.
#[derive(Debug, Clone, Default)]
pub struct IntervalLog {
    /// `#[StartTime: …]`, seconds since the Unix epoch, when the log has one.
    pub start_time: Option<Duration>,
    /// `#[BaseTime: …]`: interval start times are relative to it when present.
    pub base_time: Option<Duration>,
    pub intervals: Vec<Interval>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntervalLogError {
    #[error("line {line}: not an HdrHistogram interval log line; each interval is `Tag=NAME,START,LENGTH,MAX,BASE64`")]
    Syntax { line: usize },
    #[error("line {line}: the histogram is not valid base64 ({source})")]
    Base64 { line: usize, source: base64::DecodeError },
    #[error("line {line}: the histogram cannot be decoded ({detail})")]
    Histogram { line: usize, detail: String },
}

impl IntervalLog {
    /// Parses a whole log. Comments and the legend line are skipped.
    pub fn parse(text: &[u8]) -> Result<IntervalLog, IntervalLogError> {
        let mut log = IntervalLog::default();
        let mut deserializer = Deserializer::new();
        let line_of = |offset: usize| 1 + text[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count();
        for entry in IntervalLogIterator::new(text) {
            let entry = entry.map_err(|error| match error {
                hdrhistogram::serialization::interval_log::LogIteratorError::ParseError { offset } => {
                    IntervalLogError::Syntax { line: line_of(offset) }
                }
            })?;
            match entry {
                LogEntry::StartTime(time) => log.start_time = Some(time),
                LogEntry::BaseTime(time) => log.base_time = Some(time),
                LogEntry::Interval(interval) => {
                    let encoded = interval.encoded_histogram();
                    let line = line_of(offset_in(text, encoded));
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|source| IntervalLogError::Base64 { line, source })?;
                    let histogram: Histogram<u64> = deserializer
                        .deserialize(&mut bytes.as_slice())
                        .map_err(|error| IntervalLogError::Histogram { line, detail: format!("{error:?}") })?;
                    log.intervals.push(Interval {
                        tag: interval.tag().map(|tag| tag.as_str().to_string()),
                        start: interval.start_timestamp(),
                        length: interval.duration(),
                        histogram,
                    });
                }
            }
        }
        Ok(log)
    }

    /// Every interval of `tag` added into one histogram, and how many intervals there were.
    pub fn total(&self, tag: &str) -> Option<Histogram<u64>> {
        self.add_where(|interval| interval.tag.as_deref() == Some(tag))
    }

    /// The intervals of `tag` that start within `[from, to)` added into one histogram.
    pub fn total_between(&self, tag: &str, from: Duration, to: Duration) -> Option<Histogram<u64>> {
        self.add_where(|interval| interval.tag.as_deref() == Some(tag) && interval.start >= from && interval.start < to)
    }

    fn add_where(&self, keep: impl Fn(&Interval) -> bool) -> Option<Histogram<u64>> {
        let mut total: Option<Histogram<u64>> = None;
        for interval in self.intervals.iter().filter(|interval| keep(interval)) {
            let total = total.get_or_insert_with(|| {
                let mut empty = Histogram::new_from(&interval.histogram);
                // One interval's values may lie beyond another's range: grow, never drop.
                empty.auto(true);
                empty
            });
            // With auto-resize on, adding cannot fail.
            let _ = total.add(&interval.histogram);
        }
        total
    }
}

/// Where `part` (a slice of `whole`) starts in `whole`.
fn offset_in(whole: &[u8], part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    use std::time::SystemTime;

    fn write_log(intervals: &[(&str, f64, &[u64])]) -> Vec<u8> {
        let mut buffer = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("a comment")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buffer, &mut serializer)
            .unwrap();
        for (tag, at, values) in intervals {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for value in *values {
                histogram.record(*value).unwrap();
            }
            writer
                .write_histogram(&histogram, Duration::from_secs_f64(*at), Duration::from_secs(1), Tag::new(tag))
                .unwrap();
        }
        drop(writer);
        buffer
    }

    #[test]
    fn a_written_log_reads_back_sample_for_sample() {
        let log = IntervalLog::parse(&write_log(&[
            ("push", 0.0, &[100, 200]),
            ("connect", 0.0, &[5_000]),
            ("push", 1.0, &[300, 40_000]),
        ]))
        .unwrap();
        assert_eq!(log.start_time, Some(Duration::from_secs(1_700_000_000)));
        assert_eq!(log.intervals.len(), 3);
        let push = log.total("push").unwrap();
        assert_eq!(push.len(), 4);
        assert_eq!(push.max(), push.highest_equivalent(40_000));
        let late = log.total_between("push", Duration::from_millis(500), Duration::from_secs(5)).unwrap();
        assert_eq!(late.len(), 2);
        assert!(log.total("uncorrected").is_none());
    }

    #[test]
    fn a_damaged_line_is_named_by_its_number() {
        let mut text = write_log(&[("push", 0.0, &[100])]);
        text.extend_from_slice(b"Tag=push,1.000,1.000,0.1,@@not base64@@\n");
        let error = IntervalLog::parse(&text).unwrap_err().to_string();
        assert!(error.starts_with("line 6:"), "{error}");
        let error = IntervalLog::parse(b"#[StartTime: 1 (seconds since epoch)]\nnonsense\n").unwrap_err().to_string();
        assert!(error.starts_with("line 2:"), "{error}");
    }
}
