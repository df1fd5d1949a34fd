//! A site's normal request rate per second, learned online from its own closed seconds.
//!
//! An exponentially weighted mean and variance (half-life [`HALF_LIFE_SECS`]) of the per-second
//! count. Robust to outliers: an update never moves the mean by more than what a second at
//! mean + 3σ would, so a burst barely shifts it while slow changes (the daily cycle) are
//! followed. Quiet seconds are applied in closed form, so an idle site costs nothing per second.
//! The first [`WARMUP_SECS`] seconds of a site only learn (plain running mean, no alerts). When
//! they held an attack (a site first seen under attack, a replay that starts in one), the site
//! learned the attack as its normal: once its traffic stays far below that within its first hour
//! ([`RateBaseline::outgrown`]), the detector learns it afresh (once).
//!
//! A second is judged on its own count and on the last [`WINDOW_SECS`] seconds' sum
//! ([`RecentCounts`]): a surge that builds up slowly (an attack ramp) is not yet anomalous in
//! any single second, whose Poisson noise is large next to a small site's rate, while ten
//! seconds of it already stand far out of the noise. The window needs [`Thresholds::z`]
//! standard deviations of the sum, [`Thresholds::window_ratio_excess`] of the expected sum and
//! [`Thresholds::window_min_excess`] per second on average.

/// Half-life of the mean, in seconds.
pub const HALF_LIFE_SECS: f64 = 300.0;
/// A silence is learned as a quiet spell only until this many requests were expected in it
/// ([`RateBaseline::learnable_silence`]): none of 20 expected requests coming happens by chance
/// about once in 10⁹.
pub const SILENCE_EXPECTED: f64 = 20.0;
/// Half-life of the slow mean: a ramp over minutes cannot drag it along.
pub const SLOW_HALF_LIFE_SECS: f64 = 1800.0;
/// Seconds observed before a site can be judged.
pub const WARMUP_SECS: u32 = 60;
/// A site younger than this (seconds learned) whose traffic stays far below what it learned is
/// learned afresh ([`RateBaseline::outgrown`]).
pub const RELEARN_WITHIN_SECS: u32 = 3600;
/// …far below: every second of the last [`WINDOW_SECS`] under this fraction of the expectation…
pub const RELEARN_FRACTION: f64 = 0.25;
/// …of at least this many requests a second (ten seconds in a row that far below a Poisson mean of
/// 2 happen about once in 10⁹).
pub const RELEARN_MIN_EXPECTED: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBaseline {
    pub mean: f64,
    /// The same mean with [`SLOW_HALF_LIFE_SECS`]; seconds are judged against the smaller.
    pub slow: f64,
    pub var: f64,
    /// Seconds learned (saturating).
    pub seconds: u32,
    /// The least the second being judged is expected to bring, whatever the means say (the
    /// site's daily cycle, [`super::season::DailyCycle::floor`]); set before judging, not learned.
    pub floor: f64,
}

/// Thresholds of an anomalous second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A second is anomalous when it exceeds the mean by at least this many standard deviations…
    pub z: f64,
    /// …and by at least this fraction of the mean…
    pub min_ratio_excess: f64,
    /// …and by at least this many requests.
    pub min_excess: f64,
    /// The last [`WINDOW_SECS`] seconds together are anomalous when they exceed their expected
    /// sum by at least this fraction of it (and `z` standard deviations of a sum, and
    /// `window_min_excess` per second).
    pub window_ratio_excess: f64,
    /// The window's floor: requests a second on average over the expected. Below `min_excess`:
    /// ten seconds of excess are a surer sign than one, and a slow ramp at a small site reaches
    /// the single second's floor on the window's average only seconds after it reached it (the
    /// window trails it by half its length, and the noise of a small site's sum is ±1–2 a second).
    pub window_min_excess: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { z: 6.0, min_ratio_excess: 1.0, min_excess: 10.0, window_ratio_excess: 0.5, window_min_excess: 8.0 }
    }
}

impl Thresholds {
    /// These thresholds with the window's floor that of a single second: an incident under way
    /// goes on, and a second is calm, as before the window's lower floor. The lower floor is for
    /// finding a surge; after an attack, a site's own traffic that stepped up meanwhile crossed it
    /// by chance now and then, and kept re-activating the cooling incident for minutes.
    pub fn at_full_floor(&self) -> Thresholds {
        Thresholds { window_min_excess: self.min_excess, ..*self }
    }
}

/// Seconds of the window a second is also judged on.
pub const WINDOW_SECS: usize = 10;

/// A site's request counts of its last [`WINDOW_SECS`] closed seconds (the seconds without a
/// request count zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentCounts {
    /// The latest second recorded (`None` before the first).
    pub last: Option<i64>,
    /// Counts by second modulo [`WINDOW_SECS`].
    pub counts: [u32; WINDOW_SECS],
    /// Which seconds of the window (bit = index into `counts`) were anomalous on their own. The
    /// window judges the others only: it is for surges no single second shows, and a flood's
    /// seconds in it would only prolong the flood.
    pub spikes: u16,
}

impl RecentCounts {
    /// Record second `sec` (later than every second recorded before) with `n` requests.
    pub fn push(&mut self, sec: i64, n: u64) {
        let w = WINDOW_SECS as i64;
        match self.last {
            Some(last) if sec <= last => return,
            Some(last) if sec - last < w => {
                for s in last + 1..sec {
                    self.counts[s.rem_euclid(w) as usize] = 0;
                    self.spikes &= !(1 << s.rem_euclid(w));
                }
            }
            _ => (self.counts, self.spikes) = ([0; WINDOW_SECS], 0),
        }
        self.counts[sec.rem_euclid(w) as usize] = u32::try_from(n).unwrap_or(u32::MAX);
        self.spikes &= !(1 << sec.rem_euclid(w));
        self.last = Some(sec);
    }

    /// Mark the latest second recorded as anomalous on its own.
    pub fn mark_spike(&mut self) {
        if let Some(last) = self.last {
            self.spikes |= 1 << last.rem_euclid(WINDOW_SECS as i64);
        }
    }

    /// The seconds of the window not anomalous on their own: how many, and their requests.
    pub fn unspiked(&self) -> (usize, f64) {
        (0..WINDOW_SECS).filter(|i| self.spikes & (1 << i) == 0).fold((0, 0.0), |(n, sum), i| (n + 1, sum + f64::from(self.counts[i])))
    }

    /// Requests in the window ending at the latest second recorded.
    pub fn sum(&self) -> f64 {
        self.counts.iter().map(|&c| f64::from(c)).sum()
    }
}

fn alpha() -> f64 {
    1.0 - 0.5f64.powf(1.0 / HALF_LIFE_SECS)
}

fn slow_alpha() -> f64 {
    1.0 - 0.5f64.powf(1.0 / SLOW_HALF_LIFE_SECS)
}

impl Default for RateBaseline {
    fn default() -> Self {
        Self::new()
    }
}

impl RateBaseline {
    pub fn new() -> Self {
        Self { mean: 0.0, slow: 0.0, var: 0.0, seconds: 0, floor: 0.0 }
    }

    pub fn warm(&self) -> bool {
        self.seconds >= WARMUP_SECS
    }

    /// The expected requests of a second: the smaller of the two means (a slow attack ramp
    /// lifts the fast one a little, never the slow one), at least the daily cycle's floor.
    pub fn expected(&self) -> f64 {
        self.mean.min(self.slow).max(self.floor)
    }

    /// Standard deviation of a second's count: at least Poisson's, and at most twice it, so a
    /// slow ramp cannot inflate the spread it is judged by.
    pub fn sigma(&self) -> f64 {
        let e = self.expected();
        self.var.clamp(e, 4.0 * e).max(0.25).sqrt()
    }

    /// The smallest excess over the expected count that makes a second anomalous.
    pub fn excess_needed(&self, t: &Thresholds) -> f64 {
        (t.z * self.sigma()).max(t.min_ratio_excess * self.expected()).max(t.min_excess)
    }

    /// Whether a second with `x` requests is anomalous (never during warm-up).
    pub fn is_anomalous(&self, x: f64, t: &Thresholds) -> bool {
        self.warm() && x - self.expected() >= self.excess_needed(t)
    }

    /// Whether a second with `x` requests is back to normal: below half the anomaly excess.
    pub fn is_calm(&self, x: f64, t: &Thresholds) -> bool {
        x - self.expected() < 0.5 * self.excess_needed(t)
    }

    /// The smallest excess over the expected sum that makes the window anomalous.
    pub fn window_excess_needed(&self, t: &Thresholds) -> f64 {
        self.excess_needed_over(WINDOW_SECS, t)
    }

    /// The smallest excess over the expected sum of `n` seconds of the window that makes them
    /// anomalous.
    fn excess_needed_over(&self, n: usize, t: &Thresholds) -> f64 {
        let n = n as f64;
        (t.z * n.sqrt() * self.sigma()).max(t.window_ratio_excess * n * self.expected()).max(n * t.window_min_excess)
    }

    /// Whether this second, `x` requests, is itself above half the window's average anomaly
    /// excess: the window judges a surge only while it lasts.
    fn is_raised(&self, x: f64, t: &Thresholds) -> bool {
        x - self.expected() >= 0.5 * self.window_excess_needed(t) / WINDOW_SECS as f64
    }

    /// Judge the latest second of `recent`, `x` requests: anomalous on its own, or together with
    /// the window's other seconds not anomalous on their own (at least half the window); never
    /// during warm-up. Records the second in `recent` first, and whether it was anomalous on its
    /// own.
    ///
    /// The window's spikes are left out rather than the window: a slow ramp at a small site has a
    /// second loud enough on its own now and then, and a window that holds one had not been judged
    /// at all, so the ramp went unseen for the ten seconds after each.
    pub fn judge(&self, recent: &mut RecentCounts, sec: i64, x: f64, t: &Thresholds) -> bool {
        recent.push(sec, x as u64);
        if self.is_anomalous(x, t) {
            recent.mark_spike();
            return true;
        }
        if !self.warm() || !self.is_raised(x, t) {
            return false;
        }
        let (n, sum) = recent.unspiked();
        n >= WINDOW_SECS / 2 && sum - n as f64 * self.expected() >= self.excess_needed_over(n, t)
    }

    /// Whether a second with `x` requests is back to normal on both scales.
    pub fn is_calm_in(&self, x: f64, t: &Thresholds) -> bool {
        self.is_calm(x, t) && !self.is_raised(x, t)
    }

    /// Whether what the site learned first no longer describes it: within its first
    /// [`RELEARN_WITHIN_SECS`] seconds, every one of the last [`WINDOW_SECS`] seconds of `recent`
    /// (the second just judged included) below [`RELEARN_FRACTION`] of an expectation of at least
    /// [`RELEARN_MIN_EXPECTED`]. Surges only lift what a warm site expects by a little (the
    /// clamp of [`Self::update`]), so this follows a warm-up that learned one.
    pub fn outgrown(&self, recent: &RecentCounts) -> bool {
        let e = self.expected();
        self.warm()
            && self.seconds < RELEARN_WITHIN_SECS
            && e >= RELEARN_MIN_EXPECTED
            && recent.counts.iter().all(|&c| f64::from(c) < RELEARN_FRACTION * e)
    }

    /// Whether a second is plainly normal traffic (within 2σ): only such seconds teach the
    /// site's traffic profile, so the first minutes of a slow ramp do not become "normal".
    pub fn is_typical(&self, x: f64) -> bool {
        !self.warm() || x - self.expected() <= 2.0 * self.sigma()
    }

    /// Learn one second with `x` requests.
    pub fn update(&mut self, x: f64) {
        if self.seconds < WARMUP_SECS {
            // Running mean and variance of the first seconds.
            let n = f64::from(self.seconds + 1);
            let d = x - self.mean;
            self.mean += d / n;
            self.var += (d * (x - self.mean) - self.var) / n;
            self.slow = self.mean;
            self.seconds = self.seconds.saturating_add(1);
        } else {
            self.update_unclamped(x.min(self.mean.max(self.slow) + 3.0 * self.sigma()));
        }
    }

    /// Learn a second without the outlier clamp (a suspicion that turned out to be the new normal).
    pub fn update_unclamped(&mut self, x: f64) {
        let a = alpha();
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        self.slow += slow_alpha() * (x - self.slow);
        self.seconds = self.seconds.saturating_add(1);
    }

    /// Of `n` seconds in a row without a request, how many to learn: those this rate goes without
    /// a request by chance, until [`SILENCE_EXPECTED`] requests were expected (the mean decaying
    /// as they are learned). The rest of a longer silence — the origin down, a log job stopped,
    /// a site off the network — says nothing of the site's normal rate, which comes back with
    /// its traffic: learned, its minutes of zeros made the return to the usual rate a surge, a
    /// suspicion that no signature confirmed, and an attack in it went unreported.
    pub fn learnable_silence(&self, n: u64) -> u64 {
        let e = self.expected();
        // Expected over k seconds of a mean decaying by (1 - a) a second: e (1 - (1 - a)^k) / a.
        let share = SILENCE_EXPECTED * alpha() / e;
        if share.is_nan() || share >= 1.0 {
            return n;
        }
        let k = ((1.0 - share).ln() / (1.0 - alpha()).ln()).ceil();
        if k >= n as f64 { n } else { k as u64 }
    }

    /// Learn `n` seconds without a request.
    pub fn update_quiet(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let mut left = n;
        while left > 0 && self.seconds < WARMUP_SECS {
            self.update(0.0);
            left -= 1;
        }
        if left > 0 {
            // Zeros never hit the clamp: the mean decays geometrically; the variance is close
            // enough to its value for a decayed mean (quiet sites are judged on the minimums).
            let keep = (1.0 - alpha()).powf(left as f64);
            self.mean *= keep;
            self.var *= keep;
            self.slow *= (1.0 - slow_alpha()).powf(left as f64);
            self.seconds = self.seconds.saturating_add(u32::try_from(left).unwrap_or(u32::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_site_far_below_what_it_learned_has_outgrown_it() {
        let mut b = RateBaseline::new();
        for _ in 0..WARMUP_SECS {
            b.update(100.0);
        }
        let recent = |counts: &[u32]| {
            let mut r = RecentCounts::default();
            for (i, &n) in counts.iter().enumerate() {
                r.push(1_000 + i as i64, u64::from(n));
            }
            r
        };
        assert!(b.outgrown(&recent(&[10; WINDOW_SECS])));
        let mut one_high = [10; WINDOW_SECS];
        one_high[4] = 30;
        assert!(!b.outgrown(&recent(&one_high)), "one second near the expectation");
        assert!(!RateBaseline::new().outgrown(&recent(&[0; WINDOW_SECS])), "still warming up");
        let old = RateBaseline { seconds: RELEARN_WITHIN_SECS, ..b };
        assert!(!old.outgrown(&recent(&[10; WINDOW_SECS])), "an established site");
        let small = RateBaseline { mean: 1.5, slow: 1.5, ..b };
        assert!(!small.outgrown(&recent(&[0; WINDOW_SECS])), "quiet seconds are common at a small site");
    }

    #[test]
    fn learns_a_steady_rate_and_flags_a_burst() {
        let t = Thresholds::default();
        let mut b = RateBaseline::new();
        for i in 0..600 {
            b.update(if i % 2 == 0 { 95.0 } else { 105.0 });
        }
        assert!((b.mean - 100.0).abs() < 2.0, "{}", b.mean);
        assert!(!b.is_anomalous(140.0, &t));
        assert!(b.is_anomalous(300.0, &t));
        // A burst hardly moves the mean.
        for _ in 0..30 {
            b.update(3000.0);
        }
        assert!(b.mean < 130.0, "{}", b.mean);
    }

    #[test]
    fn follows_a_slow_daily_change() {
        let t = Thresholds::default();
        let mut b = RateBaseline::new();
        // 100 → 200 rps over 6 hours (a steep daily rise): never anomalous.
        for s in 0..6 * 3600 {
            let x = 100.0 + 100.0 * f64::from(s) / (6.0 * 3600.0);
            assert!(!b.is_anomalous(x, &t), "second {s}: {x} vs {}", b.mean);
            b.update(x);
        }
    }

    #[test]
    fn only_the_part_of_a_silence_the_rate_explains_is_learned() {
        let at = |rate: f64| {
            let mut b = RateBaseline::new();
            for _ in 0..600 {
                b.update(rate);
            }
            b
        };
        // 20 requests expected: a third of a second at 60 a second, 20 s at 1 a second.
        assert_eq!(at(60.0).learnable_silence(250), 1);
        assert_eq!(at(1.0).learnable_silence(250), 21);
        assert_eq!(at(1.0).learnable_silence(5), 5);
        // A rate whose decaying mean never expects 20 requests learns every quiet second.
        assert_eq!(at(0.02).learnable_silence(100_000), 100_000);
        assert_eq!(RateBaseline::new().learnable_silence(10), 10);
        // What a silence leaves of a busy site's rate: what it was.
        let mut b = at(60.0);
        b.update_quiet(b.learnable_silence(250));
        assert!(b.expected() > 59.0, "{b:?}");
    }

    #[test]
    fn quiet_seconds_decay_in_closed_form() {
        let mut a = RateBaseline::new();
        let mut b = RateBaseline::new();
        for _ in 0..100 {
            a.update(10.0);
            b.update(10.0);
        }
        for _ in 0..50 {
            a.update(0.0);
        }
        b.update_quiet(50);
        assert!((a.mean - b.mean).abs() < 1e-9);
        assert_eq!(a.seconds, b.seconds);
    }

    /// A ramp to twice the rate over four minutes: no single second of it stands out from a
    /// small site's noise, but ten seconds of it do once the extra traffic averages the absolute
    /// floor of 10 requests a second (two thirds of this baseline).
    #[test]
    fn a_window_flags_a_ramp_long_before_single_seconds_do() {
        let t = Thresholds::default();
        let mut b = RateBaseline::new();
        let mut recent = RecentCounts::default();
        // 15 requests a second, with Poisson-like spread.
        let noise = [0.0, 4.0, -3.0, 2.0, -4.0, 3.0, -1.0, 1.0, -2.0, 0.0];
        for s in 0..1200 {
            let x = 15.0 + noise[s % 10];
            assert!(!b.judge(&mut recent, s as i64, x, &t), "second {s}");
            b.update(x);
        }
        let mut window_at = None;
        let mut second_at = None;
        for r in 0..240 {
            let s = 1200 + r;
            let x = (15.0 + noise[r % 10] + 15.0 * r as f64 / 240.0).round();
            if window_at.is_none() && b.judge(&mut recent, s as i64, x, &t) {
                window_at = Some(r);
            }
            if second_at.is_none() && b.is_anomalous(x, &t) {
                second_at = Some(r);
            }
            b.update(x);
        }
        let window_at = window_at.expect("the window flags the ramp");
        // Extra traffic of 8 a second (the window's floor), averaged over the window: at 128 + 5.
        assert!((130..=150).contains(&window_at), "window at {window_at}");
        assert!(second_at.is_none(), "single seconds at {second_at:?}");
    }

    /// Regression: a window holding a second anomalous on its own was not judged for ten seconds,
    /// so a slow ramp's loud second hid the ramp that far. The window leaves it out and judges
    /// the others once it holds five.
    #[test]
    fn a_window_leaves_out_a_loud_second_and_judges_the_others() {
        let t = Thresholds::default();
        let mut b = RateBaseline::new();
        let mut recent = RecentCounts::default();
        for s in 0..600 {
            let x = 4.0 + [0.0, 1.0, -1.0, 2.0, -2.0][s % 5];
            assert!(!b.judge(&mut recent, s as i64, x, &t), "second {s}");
            b.update(x);
        }
        assert!(b.judge(&mut recent, 600, 40.0, &t), "a loud second");
        assert!(!b.is_anomalous(14.0, &t), "10 over the expected is not loud on its own");
        let judged: Vec<bool> = (601..610).map(|s| b.judge(&mut recent, s, 14.0, &t)).collect();
        assert!(judged[..4].iter().all(|j| !j), "{judged:?}: too few seconds yet");
        assert!(judged[7], "{judged:?}: eight seconds of 14 beside the loud one are a surge");
        assert_eq!(recent.unspiked().0, 9, "the loud second is left out until it leaves the window");
    }

    #[test]
    fn recent_counts_zero_the_seconds_without_requests() {
        let mut r = RecentCounts::default();
        for s in 0..10 {
            r.push(s, 5);
        }
        assert_eq!(r.sum(), 50.0);
        r.push(13, 7); // seconds 10–12 had no request
        assert_eq!(r.sum(), 6.0 * 5.0 + 7.0);
        r.push(13, 100); // a second already recorded changes nothing
        assert_eq!(r.sum(), 37.0);
        r.push(40, 2); // a gap longer than the window
        assert_eq!(r.sum(), 2.0);
    }

    #[test]
    fn warmup_never_alerts() {
        let t = Thresholds::default();
        let mut b = RateBaseline::new();
        for _ in 0..WARMUP_SECS - 1 {
            b.update(1.0);
        }
        assert!(!b.is_anomalous(10_000.0, &t));
    }
}
