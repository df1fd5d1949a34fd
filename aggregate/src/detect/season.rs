//! A site's daily cycle: its mean request rate in each hour of the day (UTC), learned over days.
//!
//! The rate baseline ([`super::baseline::RateBaseline`]) follows slow changes, but lags a steep
//! daily rise (a site that goes from 5 to 60 requests a second within twenty minutes every
//! morning): without knowing the day, every such morning looks like a surge. [`DailyCycle`]
//! remembers each hour's mean rate, an exponentially weighted mean over the days it saw
//! ([`DAY_WEIGHT`] for the latest), and gives the judge a floor for its expectation: a little
//! below what this hour of the day usually brings ([`FLOOR_FRACTION`]). The floor only raises the
//! expectation, so a quiet hour is judged as before, and an hour that held an incident is not
//! learned, so an attack does not teach the next day to expect it.
//!
//! Fixed size (about 120 bytes a site); hours without a request are learned in closed form, so an
//! idle site costs nothing per second.

use crate::checkpoint::{Dec, Enc};

/// Weight of the latest day in an hour's mean.
pub const DAY_WEIGHT: f32 = 1.0 / 3.0;
/// The expectation floor is this fraction of the hour's usual rate.
pub const FLOOR_FRACTION: f64 = 0.8;
const HOUR: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DailyCycle {
    /// The hour (seconds since the epoch / 3600) being counted; `None` before the first second.
    hour: Option<i64>,
    /// Requests counted in that hour so far.
    count: u64,
    /// Whether that hour held an incident (then it is not learned).
    disturbed: bool,
    /// Mean requests a second of each hour of the day; meaningful where `learned` has its bit.
    rates: [f32; 24],
    learned: u32,
}

impl DailyCycle {
    /// Do not learn the hour being counted (its traffic is not the site's usual).
    pub fn disturb(&mut self) {
        self.disturbed = true;
    }

    /// Count second `sec` (not earlier than the seconds counted before) with `requests`;
    /// `disturbed` when the site has an incident in it.
    pub fn count(&mut self, sec: i64, requests: u64, disturbed: bool) {
        let hour = sec.div_euclid(HOUR);
        match self.hour {
            Some(h) if hour > h => {
                self.learn_hour(h, self.count as f64 / HOUR as f64, self.disturbed);
                // Hours without a request in between (at most a day of them matters).
                for skipped in (h + 1).max(hour - 24)..hour {
                    self.learn_hour(skipped, 0.0, false);
                }
                self.hour = Some(hour);
                self.count = 0;
                self.disturbed = false;
            }
            Some(_) => {}
            None => {
                // The first hour seen is partial: counted, never learned.
                self.hour = Some(hour);
                self.disturbed = true;
            }
        }
        self.count += requests;
        self.disturbed |= disturbed;
    }

    fn learn_hour(&mut self, hour: i64, rate: f64, disturbed: bool) {
        if disturbed {
            return;
        }
        let slot = hour.rem_euclid(24) as usize;
        let bit = 1u32 << slot;
        if self.learned & bit == 0 {
            self.rates[slot] = rate as f32;
            self.learned |= bit;
        } else {
            self.rates[slot] += DAY_WEIGHT * (rate as f32 - self.rates[slot]);
        }
    }

    /// The floor for second `sec`'s expected count: [`FLOOR_FRACTION`] of its hour's usual rate,
    /// or 0 while that hour of the day has not been learned.
    pub fn floor(&self, sec: i64) -> f64 {
        let slot = sec.div_euclid(HOUR).rem_euclid(24) as usize;
        if self.learned & (1 << slot) == 0 { 0.0 } else { FLOOR_FRACTION * f64::from(self.rates[slot]) }
    }

    pub fn encode(&self, e: &mut Enc) {
        e.opt_i64(self.hour);
        e.u64(self.count);
        e.u8(u8::from(self.disturbed));
        e.u32(self.learned);
        for r in self.rates {
            e.u32(r.to_bits());
        }
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Self, String> {
        let mut c = DailyCycle { hour: d.opt_i64()?, count: d.u64()?, disturbed: d.u8()? != 0, learned: d.u32()?, ..Default::default() };
        for r in &mut c.rates {
            *r = f32::from_bits(d.u32()?);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::baseline::{RateBaseline, RecentCounts, Thresholds};
    use super::*;

    /// A site's rate over the day: 5 a second at night, up to 60 within twenty minutes from 08:00,
    /// back down from 20:00.
    fn daily(sec: i64) -> f64 {
        let h = sec.rem_euclid(86_400) as f64 / 3600.0;
        match h {
            h if h < 8.0 => 5.0,
            h if h < 8.0 + 1.0 / 3.0 => 5.0 + 55.0 * (h - 8.0) * 3.0,
            h if h < 20.0 => 60.0,
            h if h < 21.0 => 60.0 - 55.0 * (h - 20.0),
            _ => 5.0,
        }
    }

    /// Anomalous seconds of each day, judged with or without the daily cycle.
    fn anomalous_per_day(days: i64, with_cycle: bool) -> Vec<u32> {
        let t = Thresholds::default();
        let (mut b, mut recent, mut cycle) = (RateBaseline::new(), RecentCounts::default(), DailyCycle::default());
        let noise = [0.0, 2.0, -1.0, 1.0, -2.0, 1.0, 0.0, -1.0, 2.0, -2.0];
        let mut out = vec![0; days as usize];
        for sec in 0..days * 86_400 {
            let x = (daily(sec) * (1.0 + 0.05 * noise[sec.rem_euclid(10) as usize])).round().max(0.0);
            if with_cycle {
                b.floor = cycle.floor(sec);
            }
            if b.judge(&mut recent, sec, x, &t) {
                out[(sec / 86_400) as usize] += 1;
            }
            cycle.count(sec, x as u64, false);
            b.update(x);
        }
        out
    }

    /// Without the cycle, every morning's rise is a surge; with it, only the first morning is.
    #[test]
    fn a_steep_daily_rise_is_expected_from_the_second_day() {
        let without = anomalous_per_day(3, false);
        let with = anomalous_per_day(3, true);
        assert!(without.iter().all(|&n| n > 100), "{without:?}");
        assert_eq!(with[0], without[0], "{with:?} {without:?}");
        assert_eq!(&with[1..], &[0, 0], "{with:?}");
    }

    #[test]
    fn learns_hours_over_days_and_skips_disturbed_and_idle_ones() {
        let mut c = DailyCycle::default();
        // Day 0: hour 0 partial (not learned), hour 1 at 2 a second, hour 2 with an incident.
        for sec in 0..3 * HOUR {
            c.count(sec, 2, (2 * HOUR..2 * HOUR + 10).contains(&sec));
        }
        c.count(3 * HOUR, 0, false);
        assert_eq!(c.floor(0), 0.0);
        assert!((c.floor(HOUR) - FLOOR_FRACTION * 2.0).abs() < 1e-6);
        assert_eq!(c.floor(2 * HOUR), 0.0);
        // Silent until the next day's hour 1: the hours between are learned as idle.
        c.count(86_400 + HOUR, 8, false);
        assert_eq!(c.floor(5 * HOUR), 0.0);
        assert!(c.learned & (1 << 5) != 0);
        // Day 1, hour 1 at 8 a second: the mean moves a third of the way.
        for sec in 86_400 + HOUR + 1..86_400 + 2 * HOUR {
            c.count(sec, 8, false);
        }
        c.count(86_400 + 2 * HOUR, 0, false);
        assert!((c.floor(HOUR) - FLOOR_FRACTION * 4.0).abs() < 1e-4, "{}", c.floor(HOUR));
        let mut e = Enc::new();
        c.encode(&mut e);
        let bytes = e.into_bytes();
        assert_eq!(DailyCycle::decode(&mut Dec::new(&bytes)).unwrap(), c);
    }
}
