//! A site's daily cycle: its mean request rate in each hour of the day (UTC), learned over days.
//!
//! The rate baseline ([`super::baseline::RateBaseline`]) follows slow changes, but lags a steep
//! daily rise (a site that goes from 5 to 60 requests a second within twenty minutes every
//! morning): without knowing the day, every such morning looks like a surge. [`DailyCycle`]
//! remembers each hour's mean rate, an exponentially weighted mean over the days it saw
//! ([`DAY_WEIGHT`] for the latest), and gives the judge a floor for its expectation: a little
//! below what this hour of the day usually brings ([`FLOOR_FRACTION`]). The floor only raises the
//! expectation, so a quiet hour is judged as before, and an hour that held an incident is not
//! learned, so an attack does not teach the next day to expect it — unless the same hour held one
//! the day before too, with about as many requests ([`REPEAT_RATIO`]): a surge that comes back at
//! the same hour every day is the site's daily peak (a new audience's evening), learned from the
//! second such day, so that it is no incident from the third on (it used to be one every day).
//!
//! Fixed size (about 120 bytes a site); hours without a request are learned in closed form, so an
//! idle site costs nothing per second.

use crate::checkpoint::{Dec, Enc};

/// Weight of the latest day in an hour's mean.
pub const DAY_WEIGHT: f32 = 1.0 / 3.0;
/// The expectation floor is this fraction of the hour's usual rate.
pub const FLOOR_FRACTION: f64 = 0.8;
/// Two disturbed hours of the day in a row are the same surge when their rates differ by at most
/// this factor.
pub const REPEAT_RATIO: f32 = 1.5;
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
    /// Hours of the day disturbed the last time they were counted, and their rates then.
    surges: u32,
    surge_rates: [f32; 24],
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
        let slot = hour.rem_euclid(24) as usize;
        let bit = 1u32 << slot;
        let mut rate = rate as f32;
        if disturbed {
            let before = self.surge_rates[slot];
            let repeated = self.surges & bit != 0 && rate <= REPEAT_RATIO * before && before <= REPEAT_RATIO * rate;
            if !repeated {
                self.surges |= bit;
                self.surge_rates[slot] = rate;
                return;
            }
            // The same surge as yesterday's at this hour: the site's daily pattern.
            self.surges &= !bit;
            rate = rate.min(before);
        } else {
            self.surges &= !bit;
        }
        if self.learned & bit == 0 {
            self.rates[slot] = rate;
            self.learned |= bit;
        } else {
            self.rates[slot] += DAY_WEIGHT * (rate - self.rates[slot]);
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
        e.u32(self.surges);
        for r in self.surge_rates {
            e.u32(r.to_bits());
        }
    }

    /// `with_surges`: the state has the disturbed hours' rates (detector state version 4 on).
    pub fn decode(d: &mut Dec<'_>, with_surges: bool) -> Result<Self, String> {
        let mut c = DailyCycle { hour: d.opt_i64()?, count: d.u64()?, disturbed: d.u8()? != 0, learned: d.u32()?, ..Default::default() };
        for r in &mut c.rates {
            *r = f32::from_bits(d.u32()?);
        }
        if with_surges {
            c.surges = d.u32()?;
            for r in &mut c.surge_rates {
                *r = f32::from_bits(d.u32()?);
            }
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
        assert_eq!(DailyCycle::decode(&mut Dec::new(&bytes), true).unwrap(), c);
    }

    /// Requests of each second of `days` days: 1 a second, and 20 a second from 12:00 to 13:00 on
    /// the days `peak` says; the hour is disturbed (an incident) where `incident` says.
    fn days_with_peaks(days: i64, peak: impl Fn(i64) -> bool, incident: impl Fn(i64) -> bool) -> DailyCycle {
        let mut c = DailyCycle::default();
        for sec in 0..days * 86_400 {
            let (day, hour) = (sec / 86_400, sec.rem_euclid(86_400) / HOUR);
            let at_peak = hour == 12 && peak(day);
            c.count(sec, if at_peak { 20 } else { 1 }, at_peak && incident(day));
        }
        c.count(days * 86_400, 0, false);
        c
    }

    /// Regression: an hour that held an incident was never learned, so a new audience's daily
    /// peak, an incident on its first day, was one every day after.
    #[test]
    fn a_surge_back_at_the_same_hour_the_next_day_is_the_daily_peak() {
        let noon = 12 * HOUR;
        let c = days_with_peaks(2, |_| true, |_| true);
        assert!((c.floor(noon) - FLOOR_FRACTION * 20.0).abs() < 1e-3, "learned from the second day: {}", c.floor(noon));
        let once = days_with_peaks(1, |_| true, |_| true);
        assert_eq!(once.floor(noon), 0.0, "one day's surge is not learned");
        // An attack one day, a calm hour the next: only the calm hour is learned.
        let c = days_with_peaks(2, |d| d == 0, |_| true);
        assert!((c.floor(noon) - FLOOR_FRACTION).abs() < 1e-3, "{}", c.floor(noon));
        // Surges of different sizes two days in a row are not the same surge.
        let mut c = days_with_peaks(1, |_| true, |_| true);
        for sec in 86_400..2 * 86_400i64 {
            let at_peak = sec.rem_euclid(86_400) / HOUR == 12;
            c.count(sec, if at_peak { 60 } else { 1 }, at_peak);
        }
        c.count(2 * 86_400, 0, false);
        assert_eq!(c.floor(noon), 0.0, "{}", c.floor(noon));
    }
}
