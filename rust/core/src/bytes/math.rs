//! Log-space helpers that never return NaN for all -inf inputs, and the vectorised
//! log-sum-exp kernels that read LM rows.
//!
//! The kernels work on blocks of at most [`BLOCK`] values: one pass for the block maximum
//! (and the NaN / +inf check), one pass summing `exp(v - m)` with independent
//! accumulators, so both loops auto-vectorise (SSE2 everywhere; AVX2 when the CPU has it,
//! selected at run time). A running [`Lse`] rescales its sum when a block raises the
//! maximum, so the result is as safe as a two-pass log-sum-exp. The arithmetic is the same
//! on every code path (no fused multiply-add), so results do not depend on the CPU.

/// `log(exp(a) + exp(b))`.
#[inline]
pub fn logaddexp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// `log(sum(exp(v)))`, -inf for an empty or all -inf slice.
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    if m == f64::INFINITY {
        return m;
    }
    let s: f64 = v.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// Normalise log-weights in place (log-softmax); all -inf stays all -inf.
pub fn log_normalize(v: &mut [f64]) -> f64 {
    let z = logsumexp(v);
    if z.is_finite() {
        for x in v.iter_mut() {
            *x -= z;
        }
    }
    z
}

/// `exp(x)` for `x <= 0` (and NaN-free inputs), relative error below 1e-14; results below
/// `exp(-708)` (≈ 3e-308) are flushed to zero. Branch-free, free of libm calls and of
/// float → integer conversions, so loops over it vectorise.
#[inline(always)]
pub fn exp_neg(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let xc = if x > -708.0 { x } else { -708.0 };
    let xc = if xc < 0.0 { xc } else { 0.0 };
    let t = xc * INV_LN2 + MAGIC;
    let kf = t - MAGIC;
    let r = (xc - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series to degree 11 on |r| <= ln2/2: truncation error < 1e-14 relative (one
    // more degree costs ~10 % of the kernel's time for no visible gain in the sums)
    let mut p = 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^k with k = round(xc / ln2) in [-1022, 0]: the bits of `t` minus those of MAGIC
    let k = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f64::from_bits(k.wrapping_add(1023) << 52);
    let y = p * scale;
    if x < -708.0 {
        0.0
    } else {
        y
    }
}

/// Values of a model row (natural-log probabilities).
pub trait LogProb: Copy + Send + Sync + 'static {
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

impl LogProb for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl LogProb for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Largest block the kernels work on at once.
pub const BLOCK: usize = 256;
const W: usize = 8;

/// `(max, all values are not NaN)` of a block (`-inf` for an empty block).
#[inline(always)]
fn max_ok_generic(v: &[f64]) -> (f64, bool) {
    let mut m = [f64::NEG_INFINITY; W];
    let mut ok = [0.0f64; W];
    let mut it = v.chunks_exact(W);
    for c in &mut it {
        for i in 0..W {
            let x = c[i];
            m[i] = if x > m[i] { x } else { m[i] };
            // count NaNs (+inf is rejected through the maximum)
            ok[i] += if x.is_nan() { 1.0 } else { 0.0 };
        }
    }
    let mut mm = f64::NEG_INFINITY;
    let mut bad = 0.0;
    for &x in it.remainder() {
        mm = if x > mm { x } else { mm };
        bad += if x.is_nan() { 1.0 } else { 0.0 };
    }
    for i in 0..W {
        mm = if m[i] > mm { m[i] } else { mm };
        bad += ok[i];
    }
    (mm, bad == 0.0)
}

/// `sum(exp(v - m))` for a block whose values are all `<= m` (finite `m`).
#[inline(always)]
fn sum_exp_generic(v: &[f64], m: f64) -> f64 {
    let mut acc = [0.0f64; W];
    let mut it = v.chunks_exact(W);
    for c in &mut it {
        for i in 0..W {
            acc[i] += exp_neg(c[i] - m);
        }
    }
    let mut s = 0.0;
    for &x in it.remainder() {
        s += exp_neg(x - m);
    }
    // fixed summation order: deterministic
    let a = (acc[0] + acc[4]) + (acc[2] + acc[6]);
    let b = (acc[1] + acc[5]) + (acc[3] + acc[7]);
    (a + b) + s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_ok(v: &[f64]) -> (f64, bool) {
        super::max_ok_generic(v)
    }
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_exp(v: &[f64], m: f64) -> f64 {
        super::sum_exp_generic(v, m)
    }
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline]
fn max_ok(v: &[f64], avx: bool) -> (f64, bool) {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: the CPU supports AVX2 (checked by the caller with `has_avx2`).
        return unsafe { avx2::max_ok(v) };
    }
    let _ = avx;
    max_ok_generic(v)
}

#[inline]
fn sum_exp(v: &[f64], m: f64, avx: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: as above.
        return unsafe { avx2::sum_exp(v, m) };
    }
    let _ = avx;
    sum_exp_generic(v, m)
}

/// A running log-sum-exp: `m + ln(s)` with `m` the largest value seen so far.
#[derive(Clone, Copy, Debug)]
pub struct Lse {
    m: f64,
    s: f64,
    bad: bool,
    avx: bool,
}

impl Default for Lse {
    fn default() -> Self {
        Self::new()
    }
}

impl Lse {
    /// Nothing summed yet (`value() == -inf`).
    #[inline]
    pub fn new() -> Self {
        Lse {
            m: f64::NEG_INFINITY,
            s: 0.0,
            bad: false,
            avx: has_avx2(),
        }
    }

    /// Whether a NaN or `+inf` was seen.
    #[inline]
    pub fn bad(&self) -> bool {
        self.bad
    }

    /// `log(sum(exp(values seen)))`; `-inf` if empty or all `-inf`.
    #[inline]
    pub fn value(&self) -> f64 {
        if self.bad {
            f64::NAN
        } else if self.s > 0.0 {
            self.m + self.s.ln()
        } else {
            f64::NEG_INFINITY
        }
    }

    fn add_block(&mut self, v: &[f64]) {
        let (cm, ok) = max_ok(v, self.avx);
        if !ok || cm == f64::INFINITY {
            self.bad = true;
            return;
        }
        if cm == f64::NEG_INFINITY {
            return;
        }
        if cm > self.m {
            self.s *= exp_neg(self.m - cm);
            self.m = cm;
        }
        self.s += sum_exp(v, self.m, self.avx);
    }

    /// Add values.
    pub fn add(&mut self, v: &[f64]) {
        for b in v.chunks(BLOCK) {
            self.add_block(b);
        }
    }

    /// Add `row[i]` for every `i` in `idx` (an index past the row counts as `-inf`).
    pub fn add_gather<T: LogProb>(&mut self, row: &[T], idx: &[u32]) {
        let mut buf = [0.0f64; BLOCK];
        for b in idx.chunks(BLOCK) {
            let out = &mut buf[..b.len()];
            gather(row, b, out);
            self.add_block(out);
        }
    }

    /// Add everything another accumulator has seen.
    pub fn merge(&mut self, o: &Lse) {
        self.bad |= o.bad;
        if o.s <= 0.0 {
            return;
        }
        if o.m > self.m {
            self.s = self.s * exp_neg(self.m - o.m) + o.s;
            self.m = o.m;
        } else {
            self.s += o.s * exp_neg(o.m - self.m);
        }
    }
}

/// `out[k] = row[idx[k]]` as `f64` (`-inf` past the end of the row).
#[inline]
pub fn gather<T: LogProb>(row: &[T], idx: &[u32], out: &mut [f64]) {
    for (o, &i) in out.iter_mut().zip(idx) {
        *o = match row.get(i as usize) {
            Some(v) => v.to_f64(),
            None => f64::NEG_INFINITY,
        };
    }
}

/// Log-sum-exp of a slice with the block kernels (`NaN` if it holds NaN or `+inf`).
pub fn lse(v: &[f64]) -> f64 {
    let mut a = Lse::new();
    a.add(v);
    a.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_accuracy() {
        let mut x = 0.0f64;
        while x > -760.0 {
            let a = exp_neg(x);
            let b = x.exp();
            if x >= -708.0 {
                assert!(((a - b) / b).abs() < 1e-14, "{x} {a} {b}");
            } else {
                assert_eq!(a, 0.0, "{x}");
            }
            x -= 0.0137;
        }
        assert_eq!(exp_neg(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-0.0), 1.0);
    }

    #[test]
    fn neg_inf_safe() {
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(logsumexp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert_eq!(
            logaddexp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
        assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        assert!((logaddexp(-1000.0, -1000.0) - (-1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(lse(&[]), f64::NEG_INFINITY);
        assert_eq!(lse(&[f64::NEG_INFINITY; 300]), f64::NEG_INFINITY);
    }

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn block_lse_matches_reference() {
        let mut st = 7u64;
        for &n in &[1usize, 3, 7, 8, 9, 255, 256, 257, 1000, 5003] {
            for &scale in &[1.0, 30.0, 2000.0] {
                let mut v: Vec<f64> = (0..n).map(|_| -lcg(&mut st) * scale).collect();
                if n > 4 {
                    v[n / 2] = f64::NEG_INFINITY;
                    // a late, much larger block maximum forces a rescale
                    v[n - 1] = 50.0;
                }
                let want = logsumexp(&v);
                let got = lse(&v);
                assert!(
                    (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                    "{n} {scale} {got} {want}"
                );
                // gather through a permutation, f32 and f64 rows, and merging halves
                let idx: Vec<u32> = (0..n as u32).rev().collect();
                let mut a = Lse::new();
                a.add_gather(&v, &idx);
                assert!((a.value() - want).abs() <= 1e-13 * want.abs().max(1.0));
                let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let want32 = logsumexp(&v32.iter().map(|&x| x as f64).collect::<Vec<_>>());
                let mut b = Lse::new();
                b.add_gather(&v32, &idx);
                assert!((b.value() - want32).abs() <= 1e-13 * want32.abs().max(1.0));
                let (l, r) = v.split_at(n / 3);
                let mut x = Lse::new();
                x.add(r);
                let mut y = Lse::new();
                y.add(l);
                y.merge(&x);
                assert!((y.value() - want).abs() <= 1e-13 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn bad_values_are_reported() {
        let mut v = vec![-1.0; 100];
        v[37] = f64::NAN;
        assert!(lse(&v).is_nan());
        v[37] = f64::INFINITY;
        assert!(lse(&v).is_nan());
        v[37] = f64::NEG_INFINITY;
        assert!(lse(&v).is_finite());
        let mut a = Lse::new();
        a.add_gather(&v, &[500, 600]);
        assert_eq!(a.value(), f64::NEG_INFINITY);
        assert!(!a.bad());
    }
}
