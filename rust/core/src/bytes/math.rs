//! Log-space helpers that never return NaN for all -inf inputs.

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

/// `exp(x)` for `x <= 0` (and NaN-free inputs), accurate to a few ulp; results below
/// `exp(-708)` (≈ 3e-308) are flushed to zero. Branch-free and free of libm calls, so loops
/// over it vectorise.
#[inline]
pub fn exp_neg(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // round-to-nearest through the 1.5 * 2^52 trick (no SSE4.1 needed)
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let xc = x.max(-708.0);
    let kf = (xc * INV_LN2 + MAGIC) - MAGIC;
    let r = (xc - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series to degree 13 on |r| <= ln2/2: truncation error < 2e-17 relative
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
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
    // 2^k: k + 1023 >= 2 for x >= -708
    let scale = f64::from_bits(((kf as i64 + 1023) as u64) << 52);
    let y = p * scale;
    if x < -708.0 {
        0.0
    } else {
        y
    }
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
    }
}
