//! A deterministic market and paper-trading bot. `step` advances one tick (one simulated
//! market minute) and returns the messages that tick produces; the same seed gives the same
//! market, signals and trades, and only wall-clock timestamps differ between runs.

mod indicators;
mod rng;

use std::collections::VecDeque;

use serde_json::{json, Value};

use crate::config::Profile;
use crate::outbox::Kind;
use rng::SplitMix64;

pub use indicators::{bollinger, macd, rsi};

/// Candle timeframes and how many ticks (market minutes) each spans.
const TIMEFRAMES: [(&str, u64); 6] = [("1m", 1), ("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1440)];
const HISTORY: usize = 120;
const SUBSTEPS: usize = 6;
const VOLATILITY: f64 = 0.0009;
const MINUTE_MS: u64 = 60_000;
const INITIAL_BALANCE: f64 = 10_000.0;
const STRATEGIES: [&str; 4] = ["RSI Strategy", "MACD Strategy", "Bollinger Bands Strategy", "Volume Strategy"];
const MAX_HOLD_TICKS: u64 = 30;
const PAUSE_EVERY: u64 = 150;
const PAUSE_TICKS: u64 = 10;
const GLITCH_EVERY: u64 = 400;
const GLITCH_TICKS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BotStatus {
    Running,
    Paused,
    Stopped,
    Error,
}

impl BotStatus {
    fn as_str(self) -> &'static str {
        match self {
            BotStatus::Running => "RUNNING",
            BotStatus::Paused => "PAUSED",
            BotStatus::Stopped => "STOPPED",
            BotStatus::Error => "ERROR",
        }
    }
}

struct Candle {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

struct Series {
    timeframe: &'static str,
    ticks: u64,
    building: Option<Candle>,
    closes: VecDeque<f64>,
}

struct Market {
    symbol: String,
    price: f64,
    open_24h: f64,
    high_24h: f64,
    low_24h: f64,
    volume_24h: f64,
    series: Vec<Series>,
}

struct Position {
    id: String,
    symbol: String,
    long: bool,
    entry_price: f64,
    current_price: f64,
    quantity: f64,
    leverage: u32,
    stop_loss: f64,
    take_profit: f64,
    entry_time: u64,
    opened_tick: u64,
    signal_id: String,
}

pub struct Simulation {
    profile: Profile,
    rng: SplitMix64,
    tick: u64,
    tick_ms: u64,
    signal_every: u64,
    started_ms: u64,
    market_clock_ms: u64,
    markets: Vec<Market>,
    positions: Vec<Position>,
    balance: f64,
    status: BotStatus,
    orders: u64,
    signals: u64,
    last_signal_ms: u64,
}

/// Starting prices for well-known symbols; others start at 100.
fn initial_price(symbol: &str) -> f64 {
    match symbol {
        "BTCUSDT" => 67_000.0,
        "ETHUSDT" => 3_500.0,
        "BNBUSDT" => 600.0,
        "SOLUSDT" => 150.0,
        _ => 100.0,
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Prices keep 2 decimals, or more for small prices so they never round to zero.
fn price(value: f64) -> f64 {
    let decimals = if value >= 10.0 { 2 } else { 6 };
    round(value, decimals).max(10f64.powi(-decimals))
}

impl Simulation {
    pub fn new(profile: Profile, seed: u64, symbols: &[String], tick_ms: u64, signal_every: u64, now_ms: u64) -> Self {
        let markets = symbols
            .iter()
            .map(|symbol| {
                let start = initial_price(symbol);
                Market {
                    symbol: symbol.clone(),
                    price: start,
                    open_24h: start,
                    high_24h: start,
                    low_24h: start,
                    volume_24h: 0.0,
                    series: TIMEFRAMES
                        .iter()
                        .map(|(timeframe, ticks)| Series {
                            timeframe,
                            ticks: *ticks,
                            building: None,
                            closes: VecDeque::with_capacity(HISTORY),
                        })
                        .collect(),
                }
            })
            .collect();
        Simulation {
            profile,
            rng: SplitMix64::new(seed),
            tick: 0,
            tick_ms: tick_ms.max(1),
            signal_every: signal_every.max(1),
            started_ms: now_ms,
            market_clock_ms: now_ms - now_ms % MINUTE_MS,
            markets,
            positions: Vec::new(),
            balance: INITIAL_BALANCE,
            status: BotStatus::Running,
            orders: 0,
            signals: 0,
            last_signal_ms: now_ms,
        }
    }

    /// Advances one tick. Returns the messages to broadcast, in order.
    pub fn step(&mut self, now_ms: u64) -> Vec<(Kind, Value)> {
        self.tick += 1;
        let mut out = Vec::new();
        let closed_candles = self.move_markets();
        let market_minute = self.market_clock_ms + self.tick * MINUTE_MS;
        if self.profile == Profile::Core {
            for market in &self.markets {
                out.push((Kind::MarketData, market_data(market, now_ms)));
            }
            for (index, timeframe, candle) in &closed_candles {
                let market = &self.markets[*index];
                out.push((Kind::Important, chart_update(market, timeframe, candle, market_minute, now_ms)));
            }
            self.update_status(now_ms, &mut out);
            self.update_positions(now_ms, &mut out);
        }
        if self.tick % self.signal_every == 0 {
            let index = (self.signals % self.markets.len() as u64) as usize;
            self.signals += 1;
            let signal = self.signal(index, now_ms);
            self.last_signal_ms = now_ms;
            out.push((Kind::Important, signal.clone()));
            if self.profile == Profile::Core && self.status == BotStatus::Running {
                self.act_on_signal(index, &signal, now_ms, &mut out);
            }
        }
        out
    }

    /// The final status broadcast before the server closes every connection.
    pub fn stop(&mut self, now_ms: u64) -> Vec<(Kind, Value)> {
        let mut out = Vec::new();
        if self.profile == Profile::Core && self.status != BotStatus::Stopped {
            self.status = BotStatus::Stopped;
            out.push((Kind::Important, self.bot_status(now_ms)));
        }
        out
    }

    /// Random walk for every symbol; returns the candles that closed this tick.
    fn move_markets(&mut self) -> Vec<(usize, &'static str, Candle)> {
        let mut closed = Vec::new();
        let tick = self.tick;
        for (index, market) in self.markets.iter_mut().enumerate() {
            let (open, mut high, mut low) = (market.price, market.price, market.price);
            let mut volume = 0.0;
            for _ in 0..SUBSTEPS {
                market.price = (market.price * (VOLATILITY * self.rng.normal()).exp()).max(1e-6);
                high = high.max(market.price);
                low = low.min(market.price);
                volume += 1.0 + self.rng.unit() * 50.0;
            }
            market.high_24h = market.high_24h.max(high);
            market.low_24h = market.low_24h.min(low);
            market.volume_24h += volume * market.price;
            if tick % 1440 == 0 {
                market.open_24h = market.price;
                market.high_24h = market.price;
                market.low_24h = market.price;
                market.volume_24h = 0.0;
            }
            for series in &mut market.series {
                let candle = series.building.get_or_insert(Candle { open, high, low, close: open, volume: 0.0 });
                candle.high = candle.high.max(high);
                candle.low = candle.low.min(low);
                candle.close = market.price;
                candle.volume += volume;
                if tick % series.ticks == 0 {
                    let candle = series.building.take().expect("just inserted");
                    if series.closes.len() == HISTORY {
                        series.closes.pop_front();
                    }
                    series.closes.push_back(candle.close);
                    closed.push((index, series.timeframe, candle));
                }
            }
        }
        closed
    }

    fn update_status(&mut self, now_ms: u64, out: &mut Vec<(Kind, Value)>) {
        let previous = self.status;
        if self.tick == 1 {
            out.push((Kind::Important, self.bot_status(now_ms)));
        }
        if self.tick % GLITCH_EVERY == GLITCH_EVERY - 100 {
            self.status = BotStatus::Error;
            let symbol = self.markets[0].symbol.clone();
            out.push((
                Kind::Important,
                crate_error(
                    "MARKET_DATA_ERROR",
                    "Market data feed stalled; trading halted until it recovers",
                    "ERROR",
                    json!({"symbol": symbol, "stalled_ticks": GLITCH_TICKS}),
                    true,
                    now_ms,
                ),
            ));
        } else if self.status == BotStatus::Error && self.tick % GLITCH_EVERY == (GLITCH_EVERY - 100 + GLITCH_TICKS) {
            self.status = BotStatus::Running;
        } else if self.status == BotStatus::Running && self.tick % PAUSE_EVERY == 0 {
            self.status = BotStatus::Paused;
        } else if self.status == BotStatus::Paused && self.tick % PAUSE_EVERY == PAUSE_TICKS {
            self.status = BotStatus::Running;
        }
        if self.status != previous {
            out.push((Kind::Important, self.bot_status(now_ms)));
        }
    }

    fn bot_status(&self, now_ms: u64) -> Value {
        let unrealized: f64 = self.positions.iter().map(|p| p.unrealized_pnl()).sum();
        let total_pnl = self.balance - INITIAL_BALANCE + unrealized;
        message(
            "BotStatusUpdate",
            json!({
                "status": self.status.as_str(),
                "mode": "PAPER_TRADING",
                "uptime_seconds": now_ms.saturating_sub(self.started_ms) / 1000,
                "total_positions": self.positions.len(),
                "total_balance": round(self.balance.max(0.0), 2),
                "total_pnl": round(total_pnl, 2),
                "total_pnl_percent": round(total_pnl / INITIAL_BALANCE * 100.0, 3),
                "enabled_strategies": STRATEGIES,
                "last_signal_time": self.last_signal_ms,
                "next_signal_time": self.last_signal_ms + self.signal_every * self.tick_ms,
            }),
            now_ms,
        )
    }

    fn signal(&mut self, index: usize, now_ms: u64) -> Value {
        let market = &self.markets[index];
        let closes: Vec<f64> = market.series[0].closes.iter().copied().collect();
        let rsi_value = rsi(&closes, 14);
        let (macd_line, macd_signal) = macd(&closes);
        let (upper, middle, lower) = bollinger(&closes, 20, 2.0);
        let histogram = (macd_line - macd_signal) / market.price * 10_000.0;
        let (signal, strength) = if rsi_value < 35.0 {
            ("long", (35.0 - rsi_value) / 35.0)
        } else if rsi_value > 65.0 {
            ("short", (rsi_value - 65.0) / 35.0)
        } else if histogram > 0.5 {
            ("long", (histogram / 10.0).min(1.0))
        } else if histogram < -0.5 {
            ("short", (-histogram / 10.0).min(1.0))
        } else {
            ("neutral", 0.0)
        };
        let confidence = round((0.55 + 0.44 * strength).clamp(0.0, 1.0), 2);
        let band_position =
            if upper > lower { ((market.price - lower) / (upper - lower)).clamp(0.0, 1.0) } else { 0.5 };
        let band_width = if middle > 0.0 { (upper - lower) / middle } else { 0.0 };
        let volatility = match band_width {
            w if w < 0.004 => "Low",
            w if w < 0.012 => "Medium",
            _ => "High",
        };
        let trend = match signal {
            "long" => "Bullish",
            "short" => "Bearish",
            _ => "Sideways",
        };
        let stop_distance = 0.01;
        let (stop_loss, take_profit) = match signal {
            "short" => (market.price * (1.0 + stop_distance), market.price * (1.0 - 2.0 * stop_distance)),
            _ => (market.price * (1.0 - stop_distance), market.price * (1.0 + 2.0 * stop_distance)),
        };
        let scores = json!({
            "RSI Strategy": round((rsi_value - 50.0).abs() / 50.0, 2),
            "MACD Strategy": round((histogram.abs() / 10.0).min(1.0), 2),
            "Bollinger Bands Strategy": round((band_position - 0.5).abs() * 2.0, 2),
            "Volume Strategy": round(self.rng.unit(), 2),
        });
        message(
            "AISignalReceived",
            json!({
                "symbol": market.symbol,
                "signal": signal,
                "confidence": confidence,
                "timestamp": now_ms,
                "model_type": "wsprobe-reference-sim",
                "timeframe": "1m",
                "reasoning": format!(
                    "RSI {rsi_value:.1}, MACD histogram {histogram:+.2} bp, price at {:.0}% of the Bollinger band",
                    band_position * 100.0
                ),
                "strategy_scores": scores,
                "market_analysis": {
                    "trend_direction": trend,
                    "trend_strength": round(strength.clamp(0.0, 1.0), 2),
                    "volatility_level": volatility,
                },
                "risk_assessment": {
                    "overall_risk": volatility,
                    "recommended_position_size": round(0.02 + 0.08 * strength.clamp(0.0, 1.0), 3),
                    "stop_loss_suggestion": price(stop_loss),
                    "take_profit_suggestion": price(take_profit),
                },
            }),
            now_ms,
        )
    }

    /// Places an order for a confident directional signal on a symbol with no open position.
    /// Orders fail, are canceled or fill partially on a fixed schedule, so every trade status
    /// appears in a long enough run.
    fn act_on_signal(&mut self, index: usize, signal: &Value, now_ms: u64, out: &mut Vec<(Kind, Value)>) {
        let data = &signal["data"];
        let direction = data["signal"].as_str().unwrap_or("neutral");
        let confidence = data["confidence"].as_f64().unwrap_or(0.0);
        let symbol = self.markets[index].symbol.clone();
        if direction == "neutral" || confidence < 0.6 || self.positions.iter().any(|p| p.symbol == symbol) {
            return;
        }
        self.orders += 1;
        let order = self.orders;
        let long = direction == "long";
        let entry = price(self.markets[index].price);
        let leverage: u32 = if confidence >= 0.8 { 10 } else { 5 };
        let size = data["risk_assessment"]["recommended_position_size"].as_f64().unwrap_or(0.02);
        let quantity = round((self.balance * size * f64::from(leverage) / entry).max(0.000_001), 6);
        let signal_id = format!("signal_{:06}", self.signals);
        let side = if long { "BUY" } else { "SELL" };
        let trade = |status: &str, order_type: &str, executed: f64, executed_price: f64, seq: u32| {
            message(
                "TradeExecuted",
                json!({
                    "trade_id": format!("trade_{order:06}_{seq}"),
                    "order_id": format!("order_{order:06}"),
                    "symbol": symbol,
                    "side": side,
                    "type": order_type,
                    "quantity": quantity,
                    "price": entry,
                    "executed_quantity": executed,
                    "executed_price": executed_price,
                    "commission": round(executed * executed_price * 0.001, 6),
                    "commission_asset": quote_asset(&symbol),
                    "status": status,
                    "timestamp": now_ms,
                    "strategy": STRATEGIES[(order as usize) % STRATEGIES.len()],
                    "ai_signal_id": signal_id,
                }),
                now_ms,
            )
        };
        let required = round(entry * quantity / f64::from(leverage), 2);
        if order % 9 == 4 {
            out.push((Kind::Important, trade("REJECTED", "MARKET", 0.0, 0.0, 1)));
            let (code, text) = if order % 2 == 0 {
                ("INSUFFICIENT_BALANCE", "Insufficient balance for trade execution")
            } else {
                ("TRADE_EXECUTION_FAILED", "Exchange rejected the order")
            };
            let details =
                json!({"required_balance": required, "available_balance": round(required * 0.5, 2), "symbol": symbol});
            out.push((Kind::Important, crate_error(code, text, "WARNING", details, true, now_ms)));
            return;
        }
        if order % 7 == 5 {
            out.push((Kind::Important, trade("CANCELED", "LIMIT", 0.0, 0.0, 1)));
            return;
        }
        if order % 5 == 2 {
            let half = round(quantity / 2.0, 6).max(0.000_001);
            out.push((Kind::Important, trade("PARTIALLY_FILLED", "LIMIT", half, entry, 1)));
            out.push((Kind::Important, trade("FILLED", "LIMIT", quantity, entry, 2)));
        } else {
            out.push((Kind::Important, trade("FILLED", "MARKET", quantity, entry, 1)));
        }
        self.balance -= entry * quantity * 0.001;
        let stop_loss = price(if long { entry * 0.99 } else { entry * 1.01 });
        let take_profit = price(if long { entry * 1.02 } else { entry * 0.98 });
        let position = Position {
            id: format!("pos_{order:06}"),
            symbol: symbol.clone(),
            long,
            entry_price: entry,
            current_price: entry,
            quantity,
            leverage,
            stop_loss,
            take_profit,
            entry_time: now_ms,
            opened_tick: self.tick,
            signal_id,
        };
        out.push((Kind::Important, position_update("OPENED", &position, now_ms)));
        self.positions.push(position);
    }

    /// Marks open positions to market every other tick and closes them at stop-loss,
    /// take-profit or after a maximum holding time.
    fn update_positions(&mut self, now_ms: u64, out: &mut Vec<(Kind, Value)>) {
        let mut still_open = Vec::with_capacity(self.positions.len());
        for mut position in std::mem::take(&mut self.positions) {
            if let Some(market) = self.markets.iter().find(|m| m.symbol == position.symbol) {
                position.current_price = price(market.price);
            }
            let hit_stop = if position.long {
                position.current_price <= position.stop_loss
            } else {
                position.current_price >= position.stop_loss
            };
            let hit_target = if position.long {
                position.current_price >= position.take_profit
            } else {
                position.current_price <= position.take_profit
            };
            let expired = self.tick - position.opened_tick >= MAX_HOLD_TICKS;
            if hit_stop || hit_target || expired {
                self.orders += 1;
                let notional = position.current_price * position.quantity;
                let commission = round(notional * 0.001, 6);
                self.balance += position.unrealized_pnl() - commission;
                out.push((
                    Kind::Important,
                    message(
                        "TradeExecuted",
                        json!({
                            "trade_id": format!("trade_{:06}_1", self.orders),
                            "order_id": format!("order_{:06}", self.orders),
                            "symbol": position.symbol,
                            "side": if position.long { "SELL" } else { "BUY" },
                            "type": "MARKET",
                            "quantity": position.quantity,
                            "price": position.current_price,
                            "executed_quantity": position.quantity,
                            "executed_price": position.current_price,
                            "commission": commission,
                            "commission_asset": quote_asset(&position.symbol),
                            "status": "FILLED",
                            "timestamp": now_ms,
                            "strategy": "Risk Management",
                            "ai_signal_id": position.signal_id,
                        }),
                        now_ms,
                    ),
                ));
                out.push((Kind::Important, position_update("CLOSED", &position, now_ms)));
            } else {
                if (self.tick - position.opened_tick) % 2 == 0 {
                    out.push((Kind::Important, position_update("UPDATED", &position, now_ms)));
                }
                still_open.push(position);
            }
        }
        self.positions = still_open;
    }
}

impl Position {
    fn unrealized_pnl(&self) -> f64 {
        let direction = if self.long { 1.0 } else { -1.0 };
        (self.current_price - self.entry_price) * self.quantity * direction
    }

    fn margin(&self) -> f64 {
        self.entry_price * self.quantity / f64::from(self.leverage)
    }

    /// Isolated margin, no maintenance margin: the price at which the loss equals the margin.
    fn liquidation_price(&self) -> f64 {
        let move_fraction = 1.0 / f64::from(self.leverage);
        if self.long {
            self.entry_price * (1.0 - move_fraction)
        } else {
            self.entry_price * (1.0 + move_fraction)
        }
    }
}

fn quote_asset(symbol: &str) -> &'static str {
    if symbol.ends_with("USDT") {
        "USDT"
    } else {
        "USD"
    }
}

fn message(message_type: &str, data: Value, now_ms: u64) -> Value {
    json!({"type": message_type, "data": data, "timestamp": now_ms})
}

fn crate_error(code: &str, text: &str, severity: &str, details: Value, recoverable: bool, now_ms: u64) -> Value {
    message(
        "Error",
        json!({
            "code": code,
            "message": text,
            "severity": severity,
            "details": details,
            "timestamp": now_ms,
            "recoverable": recoverable,
        }),
        now_ms,
    )
}

fn market_data(market: &Market, now_ms: u64) -> Value {
    let spread = (market.price * 0.000_01).max(0.01);
    message(
        "MarketData",
        json!({
            "symbol": market.symbol,
            "price": price(market.price),
            "change_24h": round((market.price - market.open_24h) / market.open_24h * 100.0, 3),
            "volume_24h": round(market.volume_24h, 2),
            "high_24h": price(market.high_24h),
            "low_24h": price(market.low_24h),
            "bid": price(market.price - spread / 2.0),
            "ask": price(market.price + spread / 2.0),
            "last_update": now_ms,
        }),
        now_ms,
    )
}

fn chart_update(market: &Market, timeframe: &str, candle: &Candle, market_minute: u64, now_ms: u64) -> Value {
    let series = market.series.iter().find(|s| s.timeframe == timeframe).expect("known timeframe");
    let closes: Vec<f64> = series.closes.iter().copied().collect();
    let (macd_line, macd_signal) = macd(&closes);
    let (upper, middle, lower) = bollinger(&closes, 20, 2.0);
    // Candles start at tick 0, so every closed candle spans exactly its timeframe.
    let open_ms = market_minute - series.ticks * MINUTE_MS;
    message(
        "ChartUpdate",
        json!({
            "symbol": market.symbol,
            "timeframe": timeframe,
            "candle": {
                "timestamp": open_ms,
                "open": price(candle.open),
                "high": price(candle.high),
                "low": price(candle.low),
                "close": price(candle.close),
                "volume": round(candle.volume, 4),
                "close_time": market_minute - 1,
            },
            "indicators": {
                "rsi": round(rsi(&closes, 14), 2),
                "macd": round(macd_line, 4),
                "macd_signal": round(macd_signal, 4),
                "bollinger_upper": round(upper, 2),
                "bollinger_middle": round(middle, 2),
                "bollinger_lower": round(lower, 2),
            },
        }),
        now_ms,
    )
}

fn position_update(action: &str, position: &Position, now_ms: u64) -> Value {
    let pnl = position.unrealized_pnl();
    let margin = position.margin();
    message(
        "PositionUpdate",
        json!({
            "action": action,
            "position": {
                "id": position.id,
                "symbol": position.symbol,
                "side": if position.long { "LONG" } else { "SHORT" },
                "entry_price": position.entry_price,
                "current_price": position.current_price,
                "quantity": position.quantity,
                "leverage": position.leverage,
                "unrealized_pnl": round(pnl, 4),
                "unrealized_pnl_percent": round(pnl / margin * 100.0, 4),
                "liquidation_price": price(position.liquidation_price()),
                "margin": round(margin, 4),
                "stop_loss": position.stop_loss,
                "take_profit": position.take_profit,
                "entry_time": position.entry_time,
            },
        }),
        now_ms,
    )
}
