//! Sampling by time: sampling rates and which sampling instants each decoded frame takes.

use super::{gcd, FrameTiming};

/// Highest sampling rate (frames per second) sampling by time accepts.
pub const MAX_RATE: u32 = 1000;

/// A sampling rate in frames per second, `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    /// A rate of `num / den` frames per second; `None` unless both are positive.
    pub fn new(num: u32, den: u32) -> Option<Self> {
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    /// Parse "25", "29.97" or "30000/1001": a positive rate of at most [`MAX_RATE`] frames per
    /// second with at most 6 decimals.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let rate = if let Some((n, d)) = text.split_once('/') {
            Self::new(n.trim().parse().ok()?, d.trim().parse().ok()?)?
        } else {
            let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
            if whole.is_empty() && frac.is_empty()
                || frac.len() > 6
                || !whole
                    .bytes()
                    .chain(frac.bytes())
                    .all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let den = 10u64.pow(frac.len() as u32);
            let num = whole
                .parse::<u64>()
                .ok()
                .or(whole.is_empty().then_some(0))?
                .checked_mul(den)?
                .checked_add(frac.parse::<u64>().unwrap_or(0))?;
            let g = gcd(num, den).max(1);
            Self::new(u32::try_from(num / g).ok()?, u32::try_from(den / g).ok()?)?
        };
        rate.within_limit().then_some(rate)
    }

    /// Whether the rate is at most [`MAX_RATE`] frames per second.
    pub fn within_limit(&self) -> bool {
        u64::from(self.num) <= u64::from(MAX_RATE) * u64::from(self.den)
    }

    /// Frames per second as a decimal (for messages).
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Nanoseconds from the first sampling instant to instant `m` (rounded down).
    pub fn offset(&self, m: u64) -> u64 {
        let ns = u128::from(m) * 1_000_000_000 * u128::from(self.den) / u128::from(self.num);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Sampling by time: which model frames (sampling instants) each decoded frame takes.
///
/// Decoded frame j has an effective PTS: its PTS, raised to the previous frame's when it goes
/// backwards, or the previous frame's PTS + duration when it has none (0 for a first frame without
/// one). It *reaches* up to `PTS + duration / 2` and takes every instant not yet taken up to
/// there. Instants after the last frame's reach are not covered (at end of stream they count as
/// missing frames of their clip).
#[derive(Clone, Copy, Debug)]
pub struct TimeGrid {
    rate: Rate,
    /// Effective PTS of the first decoded frame.
    t0: Option<u64>,
    /// Effective PTS and end (PTS + duration) of the last decoded frame.
    last: Option<(u64, u64)>,
    /// Instants taken so far: instants 0..covered have a frame.
    covered: u64,
}

impl TimeGrid {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            t0: None,
            last: None,
            covered: 0,
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Instants that have a frame (model frames 0..covered).
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Time of instant `m` (ns); `None` before the first frame.
    pub fn instant(&self, m: u64) -> Option<u64> {
        self.t0.map(|t0| t0.saturating_add(self.rate.offset(m)))
    }

    fn effective(&self, timing: FrameTiming) -> (u64, u64) {
        let pts = match (timing.pts, self.last) {
            (Some(pts), Some((prev, _))) => pts.max(prev),
            (Some(pts), None) => pts,
            (None, Some((_, end))) => end,
            (None, None) => 0,
        };
        let duration = timing.duration.unwrap_or(0);
        (pts, duration)
    }

    /// The first instant after time `t` (ns): the smallest m with t0 + offset(m) > t.
    fn first_after(&self, t0: u64, t: u64) -> u64 {
        let Some(after) = t.checked_sub(t0) else {
            return 0;
        };
        let (num, den) = (u128::from(self.rate.num), u128::from(self.rate.den));
        // offset(m) = ⌊m·1e9·den / num⌋ ≤ after ⇔ m·1e9·den < (after + 1)·num.
        let end = ((u128::from(after) + 1) * num).div_ceil(1_000_000_000 * den);
        u64::try_from(end).unwrap_or(u64::MAX)
    }

    /// The instants a frame with `timing` would take, without taking them. Instants from
    /// `covered()` to the start of the range are skipped: they lie more than [`MAX_REACH`] before
    /// the frame (a gap in the stream) and get no frame.
    pub fn peek(&self, timing: FrameTiming) -> std::ops::Range<u64> {
        let (pts, duration) = self.effective(timing);
        let reach = pts.saturating_add((duration / 2).min(MAX_REACH));
        let t0 = self.t0.unwrap_or(pts);
        let end = self.first_after(t0, reach).max(self.covered);
        let start = pts
            .checked_sub(MAX_REACH + 1)
            .map_or(0, |before| self.first_after(t0, before))
            .clamp(self.covered, end);
        start..end
    }

    /// Account for the next decoded frame; returns the instants it takes.
    pub fn take(&mut self, timing: FrameTiming) -> std::ops::Range<u64> {
        let range = self.peek(timing);
        let (pts, duration) = self.effective(timing);
        self.t0.get_or_insert(pts);
        self.last = Some((pts, pts.saturating_add(duration)));
        self.covered = range.end;
        range
    }
}

/// How far (ns) a decoded frame reaches in sampling by time: instants more than this after its
/// PTS are left to later frames, instants more than this before it get no frame. Bounds the work
/// one frame can cause whatever its duration or the gap before it.
pub const MAX_REACH: u64 = 5_000_000_000;
