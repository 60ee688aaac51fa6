//! An adaptive least-squares predictor (payload version 3's audio stage
//! 1): the weights that minimise the exponentially weighted squared error
//! of the past, re-solved every few samples from a running covariance.
//!
//! It computes in IEEE 754 binary64 with only addition, subtraction,
//! multiplication and division, each correctly rounded by the standard,
//! in one fixed order (no fused multiply-add: Rust never contracts, and
//! no library function), so every conforming machine computes the same
//! bits. docs/FORMAT.md ("media payload", "Version 3") gives the order.

pub struct Ols {
    n: usize,
    /// Samples between solves, and samples since the last.
    interval: u32,
    count: u32,
    lambda: f64,
    /// Added to the diagonal before solving (regularisation).
    nu: f64,
    x: Vec<f64>,
    w: Vec<f64>,
    /// Lower triangle, row-major `n x n`.
    cov: Vec<f64>,
    b: Vec<f64>,
    /// LDL^T factor (unit lower `l`, diagonal `d`) and scratch.
    l: Vec<f64>,
    d: Vec<f64>,
    y: Vec<f64>,
}

impl Ols {
    pub fn new(n: usize, interval: u32, lambda: f64, nu: f64) -> Ols {
        Ols {
            n,
            interval,
            count: 0,
            lambda,
            nu,
            x: vec![0.0; n],
            w: vec![0.0; n],
            cov: vec![0.0; n * n],
            b: vec![0.0; n],
            l: vec![0.0; n * n],
            d: vec![0.0; n],
            y: vec![0.0; n],
        }
    }

    /// The prediction from inputs `x` (`n` of them), kept for `update`.
    pub fn predict(&mut self, x: &[i32]) -> f64 {
        let mut sum = 0.0;
        for ((xi, &v), w) in self.x.iter_mut().zip(x).zip(&self.w) {
            *xi = f64::from(v);
            sum += *xi * *w;
        }
        sum
    }

    /// Learns that the inputs of the last `predict` led to `target`.
    pub fn update(&mut self, target: i32) {
        let n = self.n;
        let lam = self.lambda;
        let g = 1.0 - lam;
        let t = f64::from(target);
        for j in 0..n {
            let xj = self.x[j] * g;
            let row = &mut self.cov[j * n..j * n + j + 1];
            for (c, xi) in row.iter_mut().zip(&self.x) {
                *c = lam * *c + xj * *xi;
            }
            self.b[j] = lam * self.b[j] + xj * t;
        }
        self.count += 1;
        if self.count >= self.interval {
            self.count = 0;
            self.solve();
        }
    }

    /// Solves `(cov + nu I) w = b` by LDL^T; keeps the old weights if the
    /// matrix is not positive definite in this arithmetic.
    fn solve(&mut self) {
        let n = self.n;
        for j in 0..n {
            let mut dj = self.cov[j * n + j] + self.nu;
            for k in 0..j {
                let ljk = self.l[j * n + k];
                dj -= ljk * ljk * self.d[k];
            }
            if dj <= 0.0 || dj.is_nan() {
                return;
            }
            self.d[j] = dj;
            for i in j + 1..n {
                let mut s = self.cov[i * n + j];
                for k in 0..j {
                    s -= self.l[i * n + k] * self.l[j * n + k] * self.d[k];
                }
                self.l[i * n + j] = s / dj;
            }
        }
        // L y = b, then D L^T w = y.
        for i in 0..n {
            let mut s = self.b[i];
            for k in 0..i {
                s -= self.l[i * n + k] * self.y[k];
            }
            self.y[i] = s;
        }
        for i in (0..n).rev() {
            let mut s = self.y[i] / self.d[i];
            for k in i + 1..n {
                s -= self.l[k * n + i] * self.w[k];
            }
            self.w[i] = s;
        }
    }
}
