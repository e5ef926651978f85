//! Measuring helpers shared by the bench binaries that print ratios.

use std::time::Instant;

/// Median over `batches` batches of the time per call of `f`, each batch `iters` calls.
pub(crate) fn median_ns(batches: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut per_call: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[batches / 2]
}
