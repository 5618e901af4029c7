//! Technical indicators over a series of closes, oldest first. Each returns a finite value for
//! any non-empty series, so a ChartUpdate never carries NaN (which JSON cannot represent).

/// Wilder's RSI over `period` changes; 50 when there is no movement at all.
pub fn rsi(closes: &[f64], period: usize) -> f64 {
    if closes.len() < 2 {
        return 50.0;
    }
    let changes: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let seed = period.min(changes.len());
    let mut gain = changes[..seed].iter().filter(|c| **c > 0.0).sum::<f64>() / seed as f64;
    let mut loss = changes[..seed].iter().filter(|c| **c < 0.0).map(|c| -c).sum::<f64>() / seed as f64;
    for change in &changes[seed..] {
        gain = (gain * (period as f64 - 1.0) + change.max(0.0)) / period as f64;
        loss = (loss * (period as f64 - 1.0) + (-change).max(0.0)) / period as f64;
    }
    if loss == 0.0 {
        return if gain == 0.0 { 50.0 } else { 100.0 };
    }
    100.0 - 100.0 / (1.0 + gain / loss)
}

/// Exponential moving average series, seeded with the first value.
pub fn ema(values: &[f64], period: usize) -> Vec<f64> {
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        out.push(if i == 0 { *v } else { alpha * v + (1.0 - alpha) * out[i - 1] });
    }
    out
}

/// MACD(12, 26) and its signal line, EMA(9) of MACD.
pub fn macd(closes: &[f64]) -> (f64, f64) {
    if closes.is_empty() {
        return (0.0, 0.0);
    }
    let fast = ema(closes, 12);
    let slow = ema(closes, 26);
    let line: Vec<f64> = fast.iter().zip(&slow).map(|(f, s)| f - s).collect();
    let signal = ema(&line, 9);
    (*line.last().unwrap_or(&0.0), *signal.last().unwrap_or(&0.0))
}

/// Bollinger bands (upper, middle, lower) over the last `period` closes at `k` standard deviations.
pub fn bollinger(closes: &[f64], period: usize, k: f64) -> (f64, f64, f64) {
    let window = &closes[closes.len().saturating_sub(period)..];
    if window.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mean = window.iter().sum::<f64>() / window.len() as f64;
    let variance = window.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / window.len() as f64;
    let sd = variance.sqrt();
    (mean + k * sd, mean, mean - k * sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsi_is_100_for_only_gains_0_for_only_losses_and_in_range_otherwise() {
        let up: Vec<f64> = (1..=30).map(f64::from).collect();
        let down: Vec<f64> = up.iter().rev().copied().collect();
        assert_eq!(rsi(&up, 14), 100.0);
        assert_eq!(rsi(&down, 14), 0.0);
        assert_eq!(rsi(&[5.0, 5.0, 5.0], 14), 50.0);
        let zigzag =
            [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28];
        // The classic worked example (Wilder, 14 periods): 70.46 unrounded; published tables
        // show 70.53 because they round the average gain and loss to two places first.
        assert!((rsi(&zigzag, 14) - 70.464).abs() < 0.001, "{}", rsi(&zigzag, 14));
    }

    #[test]
    fn macd_of_a_flat_series_is_zero_and_of_a_rising_one_positive() {
        assert_eq!(macd(&[10.0; 40]), (0.0, 0.0));
        let rising: Vec<f64> = (0..60).map(|i| 100.0 + i as f64).collect();
        let (line, signal) = macd(&rising);
        assert!(line > 0.0 && signal > 0.0 && line >= signal);
    }

    #[test]
    fn bollinger_bands_bracket_the_mean_by_k_standard_deviations() {
        let (upper, middle, lower) = bollinger(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], 20, 2.0);
        assert_eq!(middle, 5.0);
        assert_eq!((upper, lower), (9.0, 1.0), "population sd of this series is 2");
    }
}
